"""Progress of long training steps on stderr: ``STEP: done/total WHAT, rate/s`` about once a second.

Training writes nothing else to stderr, so a user sees which step is running and how far it is.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

REPORT_INTERVAL_S = 1.0


class Progress:
    """Counts work items of one step and reports at most once per ``REPORT_INTERVAL_S``."""

    def __init__(
        self,
        total: int,
        step: str,
        what: str,
        stream: TextIO | None = None,
        quiet: bool = False,
    ) -> None:
        self.total, self.step, self.what, self.quiet = total, step, what, quiet
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self.started = time.monotonic()
        self._last = self.started

    def advance(self, count: int) -> None:
        """Record ``count`` more items; report if a second has passed since the last report."""
        self.done += count
        now = time.monotonic()
        if now - self._last >= REPORT_INTERVAL_S:
            self._last = now
            self._report(now)

    def close(self) -> float:
        """Print the final line; returns the elapsed seconds."""
        now = time.monotonic()
        self._report(now)
        return now - self.started

    def _report(self, now: float) -> None:
        if self.quiet:
            return
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        print(
            f"{self.step}: {self.done:,}/{self.total:,} {self.what}, "
            f"{rate:,.0f}/s, {elapsed:.0f} s",
            file=self.stream,
            flush=True,
        )


def note(message: str, quiet: bool = False) -> None:
    """One progress line on stderr (a step that has no count)."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)
