"""Shared benchmark plumbing: a private broker, a trained champion, the results file and table."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.config import Settings, load_settings
from core.net import free_port
from riskstream.infra import jars
from riskstream.infra.kafka import LocalKafka

RESULTS_DIR = Path(__file__).parent / "results"
LOAD_AT_START = os.getloadavg()
"""The machine's load average when the benchmark started (this module is imported first)."""
QUIET_LOAD = 1.5
"""Figures measured above this 1-minute load at the start understate the machine (2-5x)."""


@contextlib.contextmanager
def bench_settings(prefix: str) -> Iterator[Settings]:
    """Settings with a temporary run dir, free ports and a temporary registry."""
    with tempfile.TemporaryDirectory(prefix=f"riskstream-bench-{prefix}-") as tmp:
        settings = load_settings(
            overrides={
                "paths": {"run_dir": tmp},
                "kafka": {"port": free_port(), "controller_port": free_port()},
                "flink": {"local_rest_port": free_port(), "rest_port": free_port()},
                "training": {"registry_dir": str(Path(tmp) / "registry")},
            },
            environ={},
        )
        jars.ensure_jars(settings)
        yield settings


@contextlib.contextmanager
def private_broker(settings: Settings) -> Iterator[LocalKafka]:
    """A real broker for the benchmark's lifetime, stopped afterwards."""
    broker = LocalKafka(settings)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table."""
    cells = [[str(h) for h in headers], *[[_fmt(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def write_results(name: str, figures: Mapping[str, float], details: Mapping[str, Any]) -> Path:
    """``bench/results/<name>.json`` with the figures (keys carry units) and the context."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "benchmark": name,
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m": os.getloadavg()[0],
            "load_average_start": [round(x, 2) for x in LOAD_AT_START],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "quiet_at_start": LOAD_AT_START[0] < QUIET_LOAD,
        },
        "figures": dict(figures),
        "details": dict(details),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
