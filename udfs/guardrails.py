"""The decision step's side of the guardrails: :mod:`scoring.guardrails` plus its Flink metrics.

:class:`DecisionGuard` is built in the job client (settings only), shipped to the workers with
the decision function, and opened there: it reads the champion's limits from the model card (a
JSON read), registers the gauges and counters of :mod:`udfs.metrics` and, for each payment,
returns the :class:`scoring.guardrails.Verdict`. Gauges are :class:`udfs.java_gauge.JavaGauge`
(thread mode: the task thread pushes values, the metrics thread never enters Python).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from scoring.guardrails import GuardrailPolicy, Guardrails, Verdict, Window, read_limits, share_ppm
from udfs import metrics
from udfs.java_gauge import JavaGauge

_ENCODER = msgspec.json.Encoder()


class DecisionGuard:
    """Guardrails of one instance of the decision step, with their metrics."""

    def __init__(self, policy: GuardrailPolicy, registry_dir: str, source: str) -> None:
        self.policy = policy
        self.registry_dir = registry_dir
        self.source = source
        self._guard: Guardrails | None = None
        self._gauges: dict[str, JavaGauge] = {}
        self._switched: Any = None
        self._alerts: metrics.LabelledCounters | None = None
        self._shown: Window | None = None

    def open(self, runtime_context: Any) -> None:
        """Build the state (empty windows, safe mode off) and register the metrics."""
        self._guard = self._new(subtask_index(runtime_context))
        root = runtime_context.get_metrics_group()
        group = root.add_group(metrics.GROUP)
        self._gauges = {
            key: JavaGauge(group, name, 0)
            for key, name in (
                ("block", metrics.GUARDRAIL_BLOCK_SHARE),
                ("step_up", metrics.GUARDRAIL_STEP_UP_SHARE),
                ("out_of_range", metrics.GUARDRAIL_OUT_OF_RANGE_SHARE),
                ("rows", metrics.GUARDRAIL_WINDOW_ROWS),
                ("safe_mode", metrics.GUARDRAIL_SAFE_MODE),
            )
        }
        self._switched = group.counter(metrics.GUARDRAIL_SAFE_MODE_DECISIONS)
        self._alerts = metrics.LabelledCounters(root, metrics.GUARDRAIL_ALERTS, metrics.LABEL_KIND)

    def _new(self, subtask: int) -> Guardrails:
        load = partial(read_limits, Path(self.registry_dir))
        return Guardrails(self.policy, load, self.source, subtask)

    def check(
        self,
        event_time_ms: int,
        model_version: str,
        decision: str,
        features: Mapping[str, Any],
        full: bool = True,
    ) -> Verdict:
        """The verdict on one decision of the model; publishes a closed window's shares.
        ``full``: the champion decided it in full mode (see :meth:`Guardrails.observe`)."""
        guard = self._guard
        if guard is None:  # not opened (a unit test calling process_element directly)
            guard = self._guard = self._new(0)
        verdict = guard.observe(event_time_ms, model_version, decision, features, full)
        if verdict.safe_mode and self._switched is not None:
            self._switched.inc()
        if guard.last is not self._shown or verdict.alerts:
            self._shown = guard.last
            self._publish(guard)
        if self._alerts is not None:
            for alert in verdict.alerts:
                self._alerts.inc(alert.kind)
        return verdict

    def _publish(self, guard: Guardrails) -> None:
        for key, value in guard.gauges.items():
            gauge = self._gauges.get(key)
            if gauge is not None:
                gauge.set(int(value) if key in ("rows", "safe_mode") else share_ppm(value))


def subtask_index(runtime_context: Any) -> int:
    """This instance's subtask index (0 if it cannot be read).

    PyFlink 2.2's thread-mode context calls ``getIndexOfThisSubtask``, which Flink 2 removed from
    the Java ``RuntimeContext``; Flink 2 has it on ``getTaskInfo()``.
    """
    try:
        return int(runtime_context.get_index_of_this_subtask())
    except AttributeError:
        pass
    java = getattr(runtime_context, "_runtime_context", None)
    try:
        return int(java.getTaskInfo().getIndexOfThisSubtask())  # type: ignore[union-attr]
    except Exception:  # a missing index must not stop the job: the alert ids only need it
        return 0


def encode_alerts(verdict: Verdict) -> list[str]:
    """The verdict's alert records as JSON strings (``guardrail_alert.v1.json``)."""
    return [_ENCODER.encode(alert).decode() for alert in verdict.alerts]
