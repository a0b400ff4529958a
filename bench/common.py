"""Shared benchmark plumbing: a private broker, a trained champion, the results file and table."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.config import Settings, load_settings
from core.net import free_port
from riskstream import jobrunner
from riskstream.infra import jars
from riskstream.infra.cluster import LocalCluster
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


def layout_overrides(taskmanagers: int) -> dict[str, object]:
    """``flink`` settings of a layout: nothing for the mini-cluster (1), else one slot per
    TaskManager and one subtask per TaskManager (one embedded interpreter per core)."""
    if taskmanagers <= 1:
        return {}
    return {"parallelism": taskmanagers, "taskmanager_slots": 1, "rpc_port": free_port()}


def layout_name(taskmanagers: int) -> str:
    """The layout's key in a results file's ``details.layouts``."""
    return "mini-cluster" if taskmanagers <= 1 else f"{taskmanagers} taskmanagers"


@contextlib.contextmanager
def standalone_cluster(settings: Settings, taskmanagers: int) -> Iterator[None]:
    """The standalone session cluster with ``taskmanagers`` TaskManagers (none for 1: the job
    then runs on the mini-cluster); stopped, by its process ids, on the way out."""
    if taskmanagers <= 1:
        yield
        return
    cluster = LocalCluster(settings)
    cluster.start()
    try:
        for _ in range(taskmanagers - 1):
            cluster.start_taskmanager()
        yield
    finally:
        cluster.stop()


def run_bounded(
    settings: Settings, job: str, taskmanagers: int, local: Callable[[Settings, bool], None]
) -> None:
    """Run ``job`` bounded: ``local(settings, True)`` (the job module's ``main``, on the
    mini-cluster) for one TaskManager, else submitted to the standalone cluster of
    :func:`standalone_cluster`."""
    if taskmanagers <= 1:
        local(settings, True)
    else:
        jobrunner.submit_to_cluster(settings, job, bounded=True)


def layout_entry(
    rate: float, wall_s: float, parallelism: int, load_start: Sequence[float]
) -> dict[str, Any]:
    """One layout's figures for ``details.layouts``: rate, wall time, parallelism, when, and the
    load average at the start and now."""
    return {
        "events_per_s": round(float(rate), 1),
        "job_wall_s": round(wall_s, 1),
        "parallelism": parallelism,
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }


def previous_layouts(name: str) -> dict[str, dict[str, Any]]:
    """Figures of each layout already in ``bench/results/<name>.json``, if any."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return {}
    with contextlib.suppress(ValueError, KeyError):
        layouts = json.loads(path.read_text())["details"].get("layouts", {})
        return dict(layouts)
    return {}


def layout_figures(
    layouts: Mapping[str, Mapping[str, Any]], key: str = "events_per_s"
) -> dict[str, float]:
    """``<key>_<layout>`` figures, one per layout (``events_per_s_mini_cluster``, ...)."""
    return {
        f"{key}_{name.replace(' ', '_').replace('-', '_')}": float(figures[key])
        for name, figures in layouts.items()
    }


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
