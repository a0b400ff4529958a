"""File output: JSON Lines or Parquet, transactions and labels, partitioned by arrival day (UTC).

Layout: ``OUT/transactions/day=YYYY-MM-DD/part-0.{jsonl,parquet}``, the same under ``labels/``,
and ``OUT/manifest.json`` with the counts. Rows in a file are in arrival order, so reading the
partitions in day order replays the stream as delivered (out of order, late, with duplicates).

Malformed records exist only in JSON Lines. Parquet columns are typed, so Parquet output skips them
and counts them under ``transactions.malformed_skipped`` in the manifest; Parquet transaction files
carry one extra column, ``arrival_time`` (epoch ms), which is delivery metadata, not contract.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from training.simulator import encode
from training.simulator.columns import (
    DELIVERY_CODE,
    DELIVERY_KINDS,
    I64,
    MALFORMED_KINDS,
    MS_PER_DAY,
    SCENARIOS,
)
from training.simulator.generate import Simulation
from training.simulator.malformed import corrupt
from training.simulator.progress import Progress

PART_NAME = "part-0"
MANIFEST = "manifest.json"


def day_name(epoch_day: int) -> str:
    """Partition directory name of a UTC day number.

    >>> day_name(17622)
    'day=2018-04-01'
    """
    return "day=" + datetime.fromtimestamp(epoch_day * MS_PER_DAY / 1000, UTC).strftime("%Y-%m-%d")


def _day_slices(times: I64) -> list[tuple[int, int, int]]:
    """(UTC day, start, stop) of each run of equal days in ascending ``times``."""
    days = times // MS_PER_DAY
    cuts = np.flatnonzero(np.diff(days)) + 1
    starts = np.concatenate([[0], cuts]).astype(np.int64)
    stops = np.concatenate([cuts, [len(days)]]).astype(np.int64)
    return [(int(days[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b > a]


def transaction_lines(sim: Simulation, start: int, stop: int) -> list[bytes]:
    """Delivered transaction lines ``start:stop`` in arrival order, malformed ones corrupted."""
    plan = sim.delivery
    rows = plan.source[start:stop]
    records = encode.transactions(
        sim.transactions, sim.entities, rows, sim.run, sim.settings.source
    )
    lines = encode.lines(records)
    for i in np.flatnonzero(plan.kind[start:stop] == DELIVERY_CODE["malformed"]).tolist():
        j = start + i
        lines[i] = corrupt(lines[i], int(plan.malformed_kind[j]), int(plan.variant[j]))
    return lines


def label_lines(sim: Simulation, start: int, stop: int) -> list[bytes]:
    """Label lines ``start:stop`` in label-time (= arrival) order."""
    rows = np.arange(start, stop, dtype=np.int64)
    records = encode.labels_records(
        sim.labels, sim.transactions, sim.entities, rows, run=sim.run, source=sim.settings.source
    )
    return encode.lines(records)


def _write_jsonl(path: Path, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")


def write_files(sim: Simulation, out: Path, fmt: str, progress: Progress) -> dict[str, Any]:
    """Write a simulation under ``out``; returns (and writes) the manifest."""
    plan, source = sim.delivery, sim.settings.source
    malformed = plan.kind == DELIVERY_CODE["malformed"]
    for day, start, stop in _day_slices(plan.arrival_time):
        path = out / "transactions" / day_name(day) / f"{PART_NAME}.{fmt}"
        if fmt == "jsonl":
            _write_jsonl(path, transaction_lines(sim, start, stop))
        else:
            keep = np.arange(start, stop)[~malformed[start:stop]]
            columns = encode.transaction_columns(
                sim.transactions, sim.entities, plan.source[keep], sim.run
            )
            table = encode.arrow_table(columns, source, {"arrival_time": plan.arrival_time[keep]})
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
        progress.advance(stop - start)
    for day, start, stop in _day_slices(sim.labels.event_time):
        path = out / "labels" / day_name(day) / f"{PART_NAME}.{fmt}"
        if fmt == "jsonl":
            _write_jsonl(path, label_lines(sim, start, stop))
        else:
            rows = np.arange(start, stop, dtype=np.int64)
            columns = encode.label_columns(
                sim.labels, sim.transactions, sim.entities, rows, sim.run
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(encode.arrow_table(columns, source, {}), path)
        progress.advance(stop - start)
    manifest = summary(sim, fmt)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", "utf-8")
    return manifest


def summary(sim: Simulation, fmt: str) -> dict[str, Any]:
    """Counts of what a simulation holds and what was written."""
    plan, tx = sim.delivery, sim.transactions
    kinds = np.bincount(plan.kind, minlength=len(DELIVERY_KINDS))
    malformed = plan.malformed_kind[plan.kind == DELIVERY_CODE["malformed"]]
    scenarios = np.bincount(tx.scenario, minlength=len(SCENARIOS))
    skipped = int(kinds[DELIVERY_CODE["malformed"]]) if fmt == "parquet" else 0
    return {
        "profile": sim.settings.profile,
        "seed": sim.settings.seed,
        "run": sim.run,
        "format": fmt,
        "start_ms": sim.start_ms,
        "end_ms": sim.end_ms,
        "transactions": {
            "distinct": len(tx),
            "records_written": len(plan) - skipped,
            "malformed_skipped": skipped,
            "delivery": {k: int(kinds[i]) for i, k in enumerate(DELIVERY_KINDS)},
            "malformed": {k: int((malformed == i).sum()) for i, k in enumerate(MALFORMED_KINDS)},
            "fraud": int(tx.fraud.sum()),
            "fraud_by_scenario": {
                name: int(scenarios[i]) for i, name in enumerate(SCENARIOS) if i and scenarios[i]
            },
        },
        "labels": {
            "records_written": len(sim.labels),
            "fraud": int(sim.labels.fraud.sum()),
            "legit": int((~sim.labels.fraud).sum()),
        },
    }
