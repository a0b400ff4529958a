"""Benchmark: catch-up throughput of the standalone analytics job (`run --job analytics`).

A private broker; a realistic multi-day simulated history (with its late, duplicate and malformed
deliveries) is produced into the transactions topic first, then the analytics job runs bounded on
the mini-cluster and works through it (a catch-up: the watermark trails the data, windows stay
open until it passes). The window results topic is stamped by the broker (LogAppendTime); the
sustained rate is the number of input payments whose event time lies between the windows closed
at the 10th and at the 90th percentile of the output, divided by the append time between them, so
job start-up and the drain at the end are excluded. The machine's load average at start and end goes
into the results (a figure from a busy machine says so).

``--taskmanagers 2`` runs the same job on the standalone session cluster instead, with two
TaskManagers of one slot each at parallelism 2 (one Python interpreter per core, one merchant
shard per subtask: the layout that has no key taking every payment is what lets it spread); the
figures of both layouts go into the results.

Run from the repo root: ``python -m bench.analytics [--taskmanagers 2]``; writes
``bench/results/analytics.json`` (the other layout's figures, if measured before, are kept).
"""

from __future__ import annotations

import argparse
import bisect
import os
import time

import numpy as np
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

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
from core.config import Settings, TopicSettings, replace, with_overrides
from core.errors import SchemaError
from core.progress import Progress
from jobs import analytics
from riskstream.simulate_kafka import produce
from riskstream.support.kafka_io import read_to_end, read_values
from riskstream.support.topics import private_settings
from schemas.validation import decode
from training.simulator.generate import simulate
from udfs.analytics.encode import decode_window

TRAFFIC = {"profile": "realistic", "days": 6, "cards": 6_000, "merchants": 800, "seed": 9}
LOW_Q, HIGH_Q = 10, 90
READ_TIMEOUT_S = 300.0
ADMIN_TIMEOUT_S = 30.0
PARTITIONS = 2
TARGET = 10_000


def _settings(base: Settings, prefix: str, taskmanagers: int) -> Settings:
    roles = {"transactions": PARTITIONS, "late_events": 1, "dead_letter": 1}
    cluster = layout_overrides(taskmanagers)  # one subtask (and shard) per TaskManager
    settings = private_settings(
        base,
        prefix,
        roles,
        analytics={"group_id": f"{prefix}-group", "transactional_id_prefix": f"{prefix}-tx"},
        flink=cluster,
    )
    name = f"{prefix}-analytics"
    admin = AdminClient({**settings.kafka.client_config()})
    topic = NewTopic(name, 1, 1, config={"message.timestamp.type": "LogAppendTime"})
    for future in admin.create_topics([topic]).values():
        future.result(timeout=ADMIN_TIMEOUT_S)
    topics = {**settings.kafka.topics, "analytics": TopicSettings(name=name, partitions=1)}
    return with_overrides(settings, kafka={"topics": topics})


def _event_times(settings: Settings) -> list[int]:
    """Event times of every valid transaction in the topic, sorted."""
    times = []
    for raw in read_values(
        settings, settings.kafka.topic("transactions"), timeout_s=READ_TIMEOUT_S, committed=False
    ):
        try:
            times.append(decode("transaction", raw).event_time)
        except SchemaError:
            continue
    return sorted(times)


def sustained_rate(
    appended_ms: np.ndarray,  # type: ignore[type-arg]
    window_ends: np.ndarray,  # type: ignore[type-arg]
    event_times: list[int],
) -> tuple[float, int, float]:
    """(payments/s, payments counted, seconds) between the LOW_Q and HIGH_Q output percentiles.

    Progress at an output record is the newest window end emitted so far (a running maximum);
    the payments made between two progress points are the work done between their append times.
    """
    order = np.argsort(appended_ms, kind="stable")
    stamps, progress = appended_ms[order], np.maximum.accumulate(window_ends[order])
    low, high = (int(len(stamps) * q / 100) for q in (LOW_Q, HIGH_Q))
    seconds = (stamps[high] - stamps[low]) / 1000.0
    done = bisect.bisect_left(event_times, progress[high]) - bisect.bisect_left(
        event_times, progress[low]
    )
    return done / max(seconds, 1e-9), done, seconds


def main(argv: list[str] | None = None) -> None:
    """Run and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--taskmanagers", type=int, default=1, choices=(1, 2))
    taskmanagers = parser.parse_args(argv).taskmanagers
    load_start = os.getloadavg()
    with bench_settings("analytics") as base, private_broker(base):
        settings = _settings(base, f"an-bench-{int(time.time())}", taskmanagers)
        sim = simulate(replace(base.simulator, **TRAFFIC))
        run = produce(sim, settings.kafka, 1e9, Progress(len(sim.delivery), "produce", "records"))
        with standalone_cluster(settings, taskmanagers):
            started = time.monotonic()
            run_bounded(settings, "analytics", taskmanagers, analytics.main)
            wall = time.monotonic() - started
        records = read_to_end(settings, settings.kafka.topic("analytics"), timeout_s=READ_TIMEOUT_S)
        results = [(r.timestamp, decode_window(r.value)) for r in records if r.value is not None]
        stamps = np.array([t for t, _ in results], dtype=np.int64)
        ends = np.array([w.window_end for _, w in results], dtype=np.int64)
        times = _event_times(settings)
        rate, done, seconds = sustained_rate(stamps, ends, times)
        print(
            table(
                [
                    "taskmanagers",
                    "payments",
                    "window results",
                    "job wall s",
                    "steady s",
                    "payments/s",
                ],
                [[taskmanagers, len(times), len(results), wall, seconds, rate]],
            )
        )
        load_end = os.getloadavg()
        layouts = previous_layouts("analytics")
        layouts[layout_name(taskmanagers)] = layout_entry(
            rate, wall, settings.flink.parallelism, load_start
        )
        path = write_results(
            "analytics",
            {
                "events_per_s": float(rate),
                "job_wall_s": wall,
                **layout_figures(layouts),
            },
            {
                "taskmanagers": taskmanagers,
                "payments": len(times),
                "inputs": run.transactions,
                "window_results": len(results),
                "steady_payments": done,
                "steady_s": seconds,
                "parallelism": settings.flink.parallelism,
                "shards": settings.analytics.shards,
                "partitions": PARTITIONS,
                "guarantee": settings.analytics.guarantee,
                "traffic": TRAFFIC,
                "target_events_per_s": TARGET,
                "load_average_start": [round(x, 2) for x in load_start],
                "load_average_end": [round(x, 2) for x in load_end],
                "layouts": layouts,
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
