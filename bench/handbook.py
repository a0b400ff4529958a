"""Benchmark: our models on the Fraud Detection Handbook's protocol, next to its published tables.

Simulates the Handbook profile (reference size by default: 5,000 customers, 10,000 terminals,
183 days), computes the 15 Handbook features with the project's feature code, and trains and
evaluates every model on each fold of the two published evaluation windows (chapter 3: one test
week from 2018-08-08; chapter 5: four prequential test weeks from 2018-08-08 to 2018-09-04), under
the Handbook's protocol and the project's former one, side by side. It also runs the anomaly-model
study of issue 16 (the ensemble with no anomaly score, with the former isolation forest, with a
cheaper forest, and with the per-card amount deviation the served family uses) and times each
isolation forest's ONNX scoring. Writes
``bench/results/handbook.json``; docs/handbook.md explains every figure. Run from the repo root:
``python -m bench.handbook`` (``--cache FILE`` keeps the computed features for re-runs;
``--customers/--terminals/--days`` for a smaller run).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.config import load_settings
from schemas.feature_set import PAYMENT_FEATURES
from training import export, handbook, models
from training.data import TrainingData, generator_entry, simulated_training_data

RESULTS = Path(__file__).parent / "results" / "handbook.json"
TIMING_ROWS = 20_000
TIMING_BATCH = 1_000
CHEAP_FOREST = (25, 64)


def anomaly_candidates(seed: int) -> dict[str, models.Spec]:
    """The anomaly models the study stacks one at a time (``none`` is added by the study)."""
    trees, samples = CHEAP_FOREST
    return {
        f"isolation_forest_{models.IFOREST_TREES}x{models.IFOREST_MAX_SAMPLES}": models.Spec(
            functools.partial(models.isolation_forest, seed), True
        ),
        f"isolation_forest_{trees}x{samples}": models.Spec(
            functools.partial(models.isolation_forest, seed, trees, samples), True
        ),
    }


def _cache_key(source_settings: dict[str, Any], until_ms: int) -> str:
    return json.dumps({"generator": source_settings, "until_ms": until_ms}, sort_keys=True)


def load_or_compute(settings: Any, until_ms: int, cache: Path | None) -> TrainingData:
    """The training frame up to ``until_ms``, from ``cache`` when it was made with the same
    simulation settings (else computed, and written there)."""
    key = _cache_key(generator_entry(settings.simulator), until_ms)
    if cache is not None and cache.is_file():
        table = pq.read_table(cache)
        meta = table.schema.metadata or {}
        if meta.get(b"riskstream.cache_key", b"").decode() == key:
            print(f"bench.handbook: features from {cache}", file=sys.stderr)
            return TrainingData(
                frame=table.to_pandas(),
                source=meta[b"riskstream.source"].decode(),
                start_ms=int(meta[b"riskstream.start_ms"]),
                end_ms=int(meta[b"riskstream.end_ms"]),
                generator=generator_entry(settings.simulator),
            )
    data = simulated_training_data(settings.simulator, until_ms=until_ms)
    if cache is not None:
        table = pa.Table.from_pandas(data.frame, preserve_index=False)
        table = table.replace_schema_metadata(
            {
                **(table.schema.metadata or {}),
                b"riskstream.cache_key": key.encode(),
                b"riskstream.source": data.source.encode(),
                b"riskstream.start_ms": str(data.start_ms).encode(),
                b"riskstream.end_ms": str(data.end_ms).encode(),
            }
        )
        pq.write_table(table, cache)
    return data


def forest_costs(frame: pd.DataFrame, seed: int) -> dict[str, Any]:
    """Microseconds per row of each isolation forest's ONNX model (batches of 1,000, one thread),
    the cost the scoring job pays; a rough figure next to bench/scoring.py's."""
    x = np.ascontiguousarray(
        frame[list(handbook.HANDBOOK_FEATURES)].to_numpy(dtype=np.float32)[:TIMING_ROWS]
    )
    y = frame["label"].to_numpy()[:TIMING_ROWS].astype(np.int64)
    out: dict[str, Any] = {}
    for trees, samples in ((models.IFOREST_TREES, models.IFOREST_MAX_SAMPLES), CHEAP_FOREST):
        model = models.fit_estimator(models.isolation_forest(seed, trees, samples), x, y, True)
        blob = export.to_onnx(models.ANOMALY, model, handbook.HANDBOOK_FEATURES, PAYMENT_FEATURES)
        session = export.session(blob)
        export.onnx_score(models.ANOMALY, session, x[:TIMING_BATCH])  # warm-up
        started = time.perf_counter()
        for start in range(0, len(x), TIMING_BATCH):
            export.onnx_score(models.ANOMALY, session, x[start : start + TIMING_BATCH])
        elapsed = time.perf_counter() - started
        out[f"isolation_forest_{trees}x{samples}"] = {
            "us_per_row": round(1e6 * elapsed / len(x), 2),
            "onnx_bytes": len(blob),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the tables, write the JSON; exit 0 (the figures are the result)."""
    parser = argparse.ArgumentParser(prog="python -m bench.handbook", description=__doc__)
    parser.add_argument("--customers", type=int, default=handbook.REFERENCE["customers"])
    parser.add_argument("--terminals", type=int, default=handbook.REFERENCE["terminals"])
    parser.add_argument("--days", type=int, default=handbook.REFERENCE["days"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--windows",
        default=",".join(handbook.WINDOWS),
        help="comma-separated evaluation windows (default: chapter_3,chapter_5)",
    )
    parser.add_argument("--cache", type=Path, help="Parquet file keeping the computed features")
    parser.add_argument("--no-anomaly-study", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    windows = [handbook.WINDOWS[w] for w in args.windows.split(",")]
    settings = handbook.protocol_settings(
        load_settings(environ={}), args.customers, args.terminals, args.days, args.seed
    )
    load_start = os.getloadavg()
    started = time.monotonic()
    data = load_or_compute(settings, handbook.data_until(windows), args.cache)
    extra = None if args.no_anomaly_study else anomaly_candidates(settings.training.seed)
    _, summary = handbook.compare(data, settings, windows, quiet=False, extra_anomaly=extra)
    if extra is not None:
        summary["anomaly_study"]["onnx_cost"] = forest_costs(data.frame, settings.training.seed)
    summary["elapsed_s"] = round(time.monotonic() - started, 1)
    summary["loadavg"] = {"start": list(load_start), "end": list(os.getloadavg())}
    summary["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
    for window in windows:
        print(f"\n## {window.key}: chapter {window.chapter}\n")
        print(handbook.comparison_table(summary, window.key))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
