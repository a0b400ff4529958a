"""Benchmark: maximum sustained end-to-end throughput of the scoring job.

A private broker; a realistic simulated history (with its duplicates and malformed records) is
produced into the input topic first, then the scoring job runs bounded on the mini-cluster. The
sustained rate is taken from the decisions' Kafka append times (LogAppendTime) between the 10th and
90th percentile of the output, so job start-up and the drain at the end are excluded.

``--taskmanagers 2`` runs the same job on the standalone session cluster instead, with two
one-slot TaskManagers at parallelism 2 (one embedded interpreter per core: issue 16's layout (c)).

Run from the repo root: ``python -m bench.throughput [--taskmanagers 2]``; writes
``bench/results/throughput.json`` (each layout's figure kept under ``details.layouts``).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench.common import (
    bench_settings,
    layout_entry,
    layout_figures,
    layout_name,
    layout_overrides,
    previous_layouts,
    private_broker,
    run_bounded,
    standalone_cluster,
    table,
    write_results,
)
from core.config import Settings, replace, with_overrides
from core.progress import Progress
from jobs import scoring
from riskstream.demo import ensure_champion
from riskstream.live import live_topics
from riskstream.simulate_kafka import produce
from riskstream.support.kafka_io import read_to_end
from training.simulator.generate import simulate

TRAFFIC = {"profile": "realistic", "days": 6, "cards": 6_000, "merchants": 800, "seed": 9}
NO_SHEDDING_MS = 3_600_000
LOW_Q, HIGH_Q = 10, 90
READ_TIMEOUT_S = 300.0


def decision_times(settings: Settings) -> np.ndarray:  # type: ignore[type-arg]
    """Append times of every decision record."""
    records = read_to_end(
        settings, settings.kafka.topic("decisions"), timeout_s=READ_TIMEOUT_S, committed=False
    )
    return np.sort(np.array([r.timestamp for r in records]))


def main(argv: list[str] | None = None) -> None:
    """Run and report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--taskmanagers", type=int, default=1, choices=(1, 2))
    taskmanagers = parser.parse_args(argv).taskmanagers
    load_start = os.getloadavg()
    with bench_settings("throughput") as defaults, private_broker(defaults):
        base = with_overrides(defaults, flink=layout_overrides(taskmanagers))
        ensure_champion(base)
        # Inputs keep their simulated event times (CreateTime), as in production; only the
        # decisions are stamped by the broker, to time the output.
        settings = live_topics(
            base, f"tp-{int(time.time())}", partitions=2, append_time=("decisions",)
        )
        settings = with_overrides(
            settings,
            scoring={
                "latency_budget_ms": NO_SHEDDING_MS,
                "prediction_log_guarantee": "AT_LEAST_ONCE",
                # Windowed analytics off: on a 6-day catch-up their per-key window state (one
                # pickled value holding every open window) grows with the watermark lag and each
                # payment re-reads all of it; that run crawled at ~40 payments/s (see README).
                "analytics": False,
            },
        )
        sim = simulate(replace(base.simulator, **TRAFFIC))
        records = len(sim.delivery) + len(sim.labels)
        run = produce(sim, settings.kafka, 1e9, Progress(records, "produce", "records"))
        with standalone_cluster(settings, taskmanagers):
            started = time.monotonic()
            run_bounded(settings, "scoring", taskmanagers, scoring.main)
            wall = time.monotonic() - started
        stamps = decision_times(settings)
        low, high = np.percentile(stamps, [LOW_Q, HIGH_Q])
        inside = ((stamps >= low) & (stamps <= high)).sum()
        sustained = inside / max((high - low) / 1000.0, 1e-9)
        print(
            table(
                ["taskmanagers", "inputs", "decisions", "job wall s", "sustained decisions/s"],
                [[taskmanagers, run.transactions, len(stamps), wall, sustained]],
            )
        )
        layouts = previous_layouts("throughput")
        layouts[layout_name(taskmanagers)] = layout_entry(
            sustained, wall, settings.flink.parallelism, load_start
        )
        path = write_results(
            "throughput",
            {"events_per_s": float(sustained), "job_wall_s": wall, **layout_figures(layouts)},
            {
                "taskmanagers": taskmanagers,
                "layouts": layouts,
                "inputs": run.transactions,
                "labels": run.labels,
                "decisions": len(stamps),
                "parallelism": settings.flink.parallelism,
                "analytics": False,
                "target_events_per_s": 15_000,
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
