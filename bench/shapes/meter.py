"""Rate measurement inside a Python operator, for the probes.

A probe job's first Python operator calls :meth:`Meter.tick` per record. The time between record
``skip`` and the last record is the steady processing time of the whole (back-pressured) pipeline,
without job start-up and teardown; ``close`` writes it as JSON to the meter's path.
"""

from __future__ import annotations

import json
import time
from typing import Any


class Meter:
    """Counts records and notes when the ``skip``-th and the last arrived."""

    def __init__(self, path: str, skip: int = 5_000) -> None:
        self.path = path
        self.skip = skip
        self.count = 0
        self.started = 0.0
        self.last = 0.0
        self.facts: dict[str, Any] = {}

    def tick(self) -> None:
        """One record."""
        self.count += 1
        if self.count == self.skip:
            self.started = time.perf_counter()
        self.last = time.perf_counter()

    def close(self) -> None:
        """Write count, steady seconds, records/s and any facts noted."""
        steady = self.last - self.started if self.started else 0.0
        counted = self.count - self.skip
        document = {
            "records": self.count,
            "steady_s": round(steady, 3),
            "records_per_s": round(counted / steady, 1) if steady > 0 else None,
            "us_per_record": round(steady / counted * 1e6, 2) if counted > 0 else None,
            **self.facts,
        }
        with open(self.path, "a") as out:
            out.write(json.dumps(document) + "\n")
