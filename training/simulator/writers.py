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
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from core.progress import Progress
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

PART_NAME = "part-0"
TRANSACTIONS, LABELS = "transactions", "labels"
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


@dataclass(frozen=True)
class Part:
    """One output file: a stream, a UTC day and the rows ``start:stop`` of that stream."""

    stream: str  # "transactions" or "labels"
    day: int
    start: int
    stop: int


_FORKED: Simulation | None = None  # the simulation, inherited by forked workers


def parts(sim: Simulation) -> list[Part]:
    """Every file of a simulation, transactions first, each stream in day order."""
    return [Part(TRANSACTIONS, *s) for s in _day_slices(sim.delivery.arrival_time)] + [
        Part(LABELS, *s) for s in _day_slices(sim.labels.event_time)
    ]


def write_part(sim: Simulation, part: Part, out: Path, fmt: str) -> int:
    """Write one file; returns how many rows it covers (malformed included)."""
    path = out / part.stream / day_name(part.day) / f"{PART_NAME}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    start, stop, source = part.start, part.stop, sim.settings.source
    if fmt == "jsonl":
        encoder = transaction_lines if part.stream == TRANSACTIONS else label_lines
        lines = encoder(sim, start, stop)
        path.write_bytes(b"\n".join(lines) + b"\n")
    elif part.stream == TRANSACTIONS:
        plan = sim.delivery
        keep = np.arange(start, stop)[plan.kind[start:stop] != DELIVERY_CODE["malformed"]]
        columns = encode.transaction_columns(
            sim.transactions, sim.entities, plan.source[keep], sim.run
        )
        extra = {"arrival_time": plan.arrival_time[keep]}
        pq.write_table(encode.arrow_table(columns, source, extra), path)
    else:
        rows = np.arange(start, stop, dtype=np.int64)
        columns = encode.label_columns(sim.labels, sim.transactions, sim.entities, rows, sim.run)
        pq.write_table(encode.arrow_table(columns, source, {}), path)
    return stop - start


def _write_forked(part: Part, out: Path, fmt: str) -> int:
    if _FORKED is None:
        raise RuntimeError("workers must be forked after _FORKED is set")
    return write_part(_FORKED, part, out, fmt)


def write_files(
    sim: Simulation, out: Path, fmt: str, progress: Progress, workers: int = 1
) -> dict[str, Any]:
    """Write a simulation under ``out``; returns (and writes) the manifest.

    With ``workers > 1`` files are written by forked processes (each file is independent, so the
    bytes do not depend on the number of workers).
    """
    global _FORKED  # noqa: PLW0603 - handed to forked workers without pickling the arrays
    todo = parts(sim)
    if workers <= 1:
        for part in todo:
            progress.advance(write_part(sim, part, out, fmt))
    else:
        _FORKED = sim
        try:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                for done in pool.map(_write_forked, todo, repeat(out), repeat(fmt)):
                    progress.advance(done)
        finally:
            _FORKED = None
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
        "settings": sim.settings.model_dump(mode="json"),
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
