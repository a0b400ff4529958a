"""A gauge whose value lives on the Java side, for functions running in PyFlink thread mode.

PyFlink's ``MetricGroup.gauge(name, callable)`` makes Flink's metrics thread call back into Python
whenever the metrics are queried (the web UI, the REST API, a reporter). In thread mode that call
crosses into the embedded interpreter from a foreign thread; a query racing a task's teardown
crashed the TaskManager with SIGSEGV (``pemja PyObject.invokeMethodNoArgs`` on a
``flink-metrics`` thread, taking every job on it down). The embedded ``distribution`` metric is a
plain Java gauge holding the last value it was given, so the task thread pushes values instead and
the metrics thread never enters Python.
"""

from __future__ import annotations

from typing import Any


class JavaGauge:
    """``set(value)`` from the task thread; Flink reports the last value set."""

    def __init__(self, group: Any, name: str, initial: int) -> None:
        self._metric = group.distribution(name)
        self._value: int | None = None
        self.set(initial)

    def set(self, value: int) -> None:
        """Publish ``value`` (one JNI call, only when it changed)."""
        if value != self._value:
            self._value = value
            self._metric.update(int(value))
