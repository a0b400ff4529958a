"""Benchmark: simulator throughput to files (target >= 200k events/s) and to Kafka (>= 50k/s).

Events are all records written: delivered transactions (with duplicates and malformed records) plus
labels; the time includes generation. The Kafka figure runs against a local broker started here
with the project's own code (``riskstream.infra.kafka.LocalKafka``) on free ports in a temporary
run directory, with the rate limit set far above what the producer can reach.
Wall-clock figures depend on what else the machine runs; events per CPU-second (this process and
its file-writing workers) are reported next to them for that reason.
Run from the repo root: ``python -m bench.simulate``.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from core.config import Settings, SimulatorSettings, load_settings, replace
from core.net import free_port
from core.progress import Progress
from riskstream.infra import jars
from riskstream.infra.kafka import LocalKafka
from riskstream.simulate_kafka import produce
from training.simulator.generate import simulate
from training.simulator.writers import write_files

RESULTS = Path(__file__).parent / "results" / "simulate.json"
FILE_TARGET, KAFKA_TARGET = 200_000, 50_000
FILE_RUNS: tuple[tuple[str, str], ...] = (
    ("realistic", "jsonl"),
    ("realistic", "parquet"),
    ("handbook", "jsonl"),
)
KAFKA_DAYS = 30  # ~320k transactions: long enough to reach steady state
UNTHROTTLED = 1e9
WORKERS = os.cpu_count() or 1  # the CLI's default


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the file-writing workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _file_run(profile: str, fmt: str) -> dict[str, Any]:
    settings = replace(SimulatorSettings(), profile=profile, format=fmt)
    cpu_started = _cpu_seconds()
    started = time.perf_counter()
    sim = simulate(settings)
    events = len(sim.delivery) + len(sim.labels)
    with tempfile.TemporaryDirectory() as out:
        write_files(sim, Path(out), fmt, Progress(events, "simulate", quiet=True), workers=WORKERS)
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_started
    return {
        "profile": profile,
        "format": fmt,
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds),
        "cpu_seconds": round(cpu, 2),
        "events_per_cpu_s": round(events / cpu),
    }


def _kafka_run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as run_dir:
        settings: Settings = load_settings(
            overrides={
                "paths": {"run_dir": run_dir},
                "kafka": {"port": free_port(), "controller_port": free_port()},
            },
            environ={},
        )
        jars.ensure_jars(settings, quiet=True)
        broker = LocalKafka(settings)
        broker.start()
        try:
            sim = simulate(replace(SimulatorSettings(), days=KAFKA_DAYS))
            events = len(sim.delivery) + len(sim.labels)
            quiet = Progress(events, "simulate", quiet=True)
            run = produce(sim, settings.kafka, UNTHROTTLED, quiet)
        finally:
            broker.stop()
    return {
        "profile": "realistic",
        "events": events,
        "seconds": round(run.seconds, 2),
        "events_per_s": round(run.events_per_s),
        "includes": "produce + flush (acks=all)",
    }


def main() -> None:
    """Run, print a table, write the JSON result."""
    files = [_file_run(*run) for run in FILE_RUNS]
    kafka = _kafka_run()
    result = {
        "figures": {
            "file_events_per_s": files[0]["events_per_s"],
            "file_events_per_cpu_s": files[0]["events_per_cpu_s"],
            "kafka_events_per_s": kafka["events_per_s"],
        },
        "target": {"file_events_per_s": FILE_TARGET, "kafka_events_per_s": KAFKA_TARGET},
        "runs": {"files": files, "kafka": kafka},
        "setup": {
            "defaults": SimulatorSettings().model_dump(),
            "file_workers": WORKERS,
            "cpus": os.cpu_count(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
    }
    print(f"{'run':<32}{'events':>12}{'seconds':>10}{'events/s':>12}{'events/cpu-s':>14}")
    for run in files:
        name = f"files {run['profile']} {run['format']}"
        print(
            f"{name:<32}{run['events']:>12,}{run['seconds']:>10}{run['events_per_s']:>12,}"
            f"{run['events_per_cpu_s']:>14,}"
        )
    print(f"{'kafka realistic':<32}{kafka['events']:>12,}{kafka['seconds']:>10}"
          f"{kafka['events_per_s']:>12,}")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
