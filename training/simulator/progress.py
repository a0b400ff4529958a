"""Progress of long runs on stderr: events written and events per second, about once a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REPORT_INTERVAL_S = 1.0


class Progress:
    """Counts events and prints ``simulate: N/TOTAL events, R events/s`` at most once a second."""

    def __init__(
        self, total: int, what: str = "events", stream: TextIO | None = None, quiet: bool = False
    ) -> None:
        self.total = total
        self.quiet = quiet
        self.what = what
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self.started = time.monotonic()
        self._last = self.started

    def advance(self, count: int) -> None:
        """Record ``count`` more events; report if a second has passed."""
        self.done += count
        now = time.monotonic()
        if now - self._last >= REPORT_INTERVAL_S:
            self._last = now
            self._report(now)

    def close(self) -> float:
        """Print the final line; returns the events per second over the whole run."""
        now = time.monotonic()
        self._report(now)
        return self.rate(now)

    def rate(self, now: float | None = None) -> float:
        """Events per second since the start."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def _report(self, now: float) -> None:
        if self.quiet:
            return
        print(
            f"simulate: {self.done:,}/{self.total:,} {self.what} written, "
            f"{self.rate(now):,.0f} {self.what}/s",
            file=self.stream,
            flush=True,
        )
