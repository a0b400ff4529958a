"""Benchmark: backfill events/s over simulated Parquet history, against the offline reference.

Simulates about ``--events`` transactions (plus their labels) as Parquet partitioned by day, then,
in the same run:

1. the backfill (``jobs.backfill.run``): staging + merge of the files, then the BATCH job (one
   Python call per shard of keys and stage, :mod:`udfs.backfill_passes`) on the mini-cluster at
   the configured parallelism + Parquet output; timed end to end, for staging and for the Flink
   job alone (mini-cluster start-up included);
2. the offline reference: one Python process reads the same Parquet files with pyarrow, validates
   each row against the contract (msgspec) and runs the pure driver
   (:class:`features.compute.FeaturePipeline`) over payments and labels in arrival order.

Prints a table and writes ``bench/results/backfill.json``. Run from the repo root:
``python -m bench.backfill [--events N]``. The target is >= 50k events/s for the backfill.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow.parquet as pq

from core.config import Settings, load_settings
from features.compute import FeaturePipeline
from features.params import FeatureParams
from jobs import backfill
from riskstream.cli import main as cli_main
from schemas.records import Label, Transaction

RESULTS = Path(__file__).parent / "results" / "backfill.json"
DEFAULT_EVENTS = 1_000_000
TARGET_EVENTS_PER_S = 50_000
QUIET_LOAD = 1.5
"""Figures are committed as measured on a quiet machine only below this 1-minute load average."""
SIM_DAYS = 60
TX_PER_CARD_DAY = 2.15
"""Measured transactions per card per day of the realistic profile (to size the simulation)."""
MERCHANTS_PER_CARD = 0.4
SIZE_NOTE = (
    "run below 1M events to save time: each side costs about 0.4-1 ms per payment on this 2-core "
    "machine (see the README for the ~1M-event figures)"
)


def simulate(out: Path, events: int) -> dict[str, Any]:
    """Parquet history of about ``events`` transactions; returns the simulator's manifest."""
    cards = max(50, round(events / (SIM_DAYS * TX_PER_CARD_DAY)))
    merchants = max(20, round(cards * MERCHANTS_PER_CARD))
    args = ["simulate", "--out", str(out), "--format", "parquet", "--days", str(SIM_DAYS)]
    args += ["--cards", str(cards), "--merchants", str(merchants), "--quiet"]
    if cli_main(args) != 0:
        raise SystemExit("simulation failed")
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text("utf-8"))
    return manifest


def reference(source: Path, params: FeatureParams) -> tuple[int, float]:
    """(payments, seconds) of the single-process pyarrow + pure-driver computation."""
    started = time.perf_counter()
    tx_rows: list[dict[str, Any]] = []
    arrival: list[int] = []
    for path in sorted((source / "transactions").glob("day=*/*.parquet")):
        table = pq.read_table(path)
        arrival += table.column("arrival_time").to_pylist()
        tx_rows += table.drop(["arrival_time"]).to_pylist()
    label_rows: list[dict[str, Any]] = []
    for path in sorted((source / "labels").glob("day=*/*.parquet")):
        label_rows += pq.read_table(path).to_pylist()
    events: list[Transaction | Label] = []
    times: list[int] = []
    for row, at in zip(tx_rows, arrival, strict=True):
        try:
            events.append(msgspec.convert(row, Transaction))
            times.append(at)
        except msgspec.ValidationError:
            continue
    for row in label_rows:
        try:
            label = msgspec.convert(row, Label)
        except msgspec.ValidationError:
            continue
        events.append(label)
        times.append(label.event_time)
    order = np.argsort(np.asarray(times, dtype=np.int64), kind="stable")
    pipeline = FeaturePipeline(params)
    payments = 0
    for i in order.tolist():
        event = events[i]
        if isinstance(event, Label):
            pipeline.label(event)
        else:
            pipeline.transaction(event)
            payments += 1
    return payments, time.perf_counter() - started


def _settings(run_dir: Path) -> Settings:
    return load_settings(
        overrides={"paths": {"run_dir": str(run_dir)}, "backfill": {"progress_interval_s": 10.0}},
        environ={},
    )


def measure(events: int) -> dict[str, Any]:
    """Run both computations over the same simulated files."""
    work = Path(tempfile.mkdtemp(prefix="riskstream-bench-backfill-"))
    load_start = os.getloadavg()
    load_before = load_start[0]
    try:
        manifest = simulate(work / "sim", events)
        settings = _settings(work / "run")
        result = backfill.run(settings, work / "sim", work / "out")
        params = FeatureParams.from_settings(settings.features)
        ref_payments, ref_s = reference(work / "sim", params)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]
    payments = result.feature_rows
    backfill_rate = payments / result.elapsed_s
    ref_rate = ref_payments / ref_s
    return {
        "events_per_s": round(backfill_rate),
        "load_average_start": [round(v, 2) for v in load_start],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "quiet_machine": load_start[0] < QUIET_LOAD,
        "figures": {
            "events": payments,
            "labels": result.inputs["labels"],
            "backfill_s": round(result.elapsed_s, 2),
            "backfill_staging_s": round(result.staging_s, 2),
            "backfill_job_s": round(result.job_s, 2),
            "backfill_events_per_s": round(backfill_rate),
            "backfill_job_events_per_s": round(payments / result.job_s),
            "reference_s": round(ref_s, 2),
            "reference_events_per_s": round(ref_rate),
            "ratio": round(backfill_rate / ref_rate, 3),
        },
        "target": {"backfill_events_per_s": TARGET_EVENTS_PER_S},
        "meets_target": backfill_rate >= TARGET_EVENTS_PER_S,
        "setup": {
            "requested_events": events,
            "size_note": SIZE_NOTE if events < DEFAULT_EVENTS else "",
            "simulated_transactions": manifest["transactions"]["records_written"],
            "days": SIM_DAYS,
            "format": "parquet",
            "parallelism": settings.flink.parallelism,
            "execution_mode": settings.flink.execution_mode,
            "state_backend": settings.checkpoint.state_backend,
            "cpus": os.cpu_count(),
            "load_average_1min_before_after": [round(load_before, 1), round(load_after, 1)],
            "python": platform.python_version(),
            "machine": platform.machine(),
            "notes": "backfill_s = staging (Parquet -> lines) + merge of the roles + BATCH Flink "
            "job incl. mini-cluster start-up + Parquet output; reference = pyarrow read + "
            "msgspec validation + pure driver, one process; "
            "ratio = backfill_events_per_s / reference_events_per_s",
        },
    }


def main() -> None:
    """Run, print a table, write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--no-write", action="store_true", help="do not write the JSON result")
    args = parser.parse_args()
    result = measure(args.events)
    figures = result["figures"]
    print(f"{'metric':<30}{'measured':>14}{'target':>14}")
    for key, value in figures.items():
        target = result["target"].get(key, "")
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        print(f"{key:<30}{shown:>14}{target!s:>14}")
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
