"""Progress of long-running commands: one small wrapper around tqdm, used by every command.

``simulate``, ``train``, ``backfill``, ``archive``, ``replay`` and the demo's warm-up show a
tqdm bar on stderr while they run. The bar is off when stdout or stderr is not a terminal
(pipes, CI logs, tests) or with ``--quiet``; the counts are kept either way, so
:meth:`Progress.close` always returns the same :class:`Summary` (items done, seconds, rate).

Work that blocks the calling thread (a Flink job run in this process) is followed with
:meth:`Progress.poll`: a daemon thread reads a count (end offsets, rows written) every few
seconds, only while the bar is shown.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

MIN_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Summary:
    """What a finished :class:`Progress` counted."""

    done: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Items per second over the whole run."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def shown(quiet: bool = False, stream: TextIO | None = None) -> bool:
    """Whether progress is displayed: not ``quiet`` and both stdout and ``stream`` (stderr) are
    terminals."""
    return not quiet and _is_terminal(sys.stdout) and _is_terminal(stream or sys.stderr)


class Progress:
    """Counts items of one step; shows them as a tqdm bar when :func:`shown`.

    ``total`` may be ``None`` (unknown: a counter without a bar). Use it as a context manager or
    call :meth:`close` once.
    """

    def __init__(
        self,
        total: int | None,
        label: str,
        unit: str = "events",
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.label, self.unit = total, label, unit
        self.done = 0
        self.started = time.monotonic()
        self.enabled = shown(quiet, stream)
        self._lock = threading.Lock()
        self._summary: Summary | None = None
        self._bar: tqdm[Any] | None = None
        if self.enabled:
            self._bar = tqdm(
                total=total,
                desc=label,
                unit=f" {unit}",
                file=stream or sys.stderr,
                mininterval=MIN_INTERVAL_S,
                dynamic_ncols=True,
            )

    def advance(self, count: int = 1) -> None:
        """Record ``count`` more items."""
        with self._lock:
            self.done += count
            if self._bar is not None:
                self._bar.update(count)

    def update_to(self, done: int) -> None:
        """Set the count (for counts read from elsewhere: end offsets, rows written)."""
        with self._lock:
            step = done - self.done
            self.done = done
            if self._bar is not None and step:
                self._bar.update(step)

    def describe(self, text: str) -> None:
        """Extra text after the bar (e.g. the event time reached)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def write(self, line: str) -> None:
        """Print one line on stderr without breaking the bar."""
        tqdm.write(line, file=sys.stderr)

    @contextmanager
    def poll(self, count: Callable[[], int | None], interval_s: float = 2.0) -> Iterator[None]:
        """While the block runs, set the count from ``count()`` every ``interval_s`` (in a
        daemon thread, only when the bar is shown; ``None`` or an exception skips a reading)."""
        if not self.enabled:
            yield
            return
        stop = threading.Event()

        def follow() -> None:
            while not stop.wait(interval_s):
                try:
                    value = count()
                except Exception:
                    continue
                if value is not None:
                    self.update_to(value)

        thread = threading.Thread(target=follow, name=f"progress-{self.label}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def close(self) -> Summary:
        """Finish the bar; returns what was counted (the same on every call)."""
        with self._lock:
            if self._summary is None:
                self._summary = Summary(self.done, time.monotonic() - self.started)
                if self._bar is not None:
                    self._bar.close()
            return self._summary

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def note(message: str, quiet: bool = False) -> None:
    """One step line on stderr (a step without a count); nothing with ``quiet``."""
    if not quiet:
        tqdm.write(message, file=sys.stderr)
