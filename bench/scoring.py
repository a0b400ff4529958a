"""Benchmark: the scoring UDF through Flink, with the job's lean columns, plus a profile of
:meth:`scoring.scorer.Scorer.score` by component.

The UDF is the job's own (:func:`udfs.score_udf.score_function`, the champion models, no load
shedding): ``datagen`` ids and lag stamps on the mini-cluster, feature vectors packed as the job
packs them (one BYTES value, float64 little-endian), taken from a pool of real feature vectors of a
simulated world (``CASE MOD(id, POOL)`` over binary literals, so generation stays in Java), and a
``blackhole`` sink of the UDF's three output columns. Two figures per variant:

- ``udf_rows_per_s``: rows over the time from the first batch's start to the last batch's end,
  measured inside the UDF's worker (the steady rate, what the framework floor of
  ``bench/results/shapes-probes.json`` was measured as);
- ``wall_rows_per_s``: rows over (job wall time minus the same job without the UDF).

The ``columns`` variant hands the UDF one DOUBLE column per feature (uniform 0-100 from datagen,
the former calling convention) and its ``uniform`` twin the same distribution packed, to compare
the two ways in. The profile times each part of ``Scorer.score`` on a batch of 10,000 real rows.

Run from the repo root: ``python -m bench.scoring``; writes ``bench/results/scoring.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyflink.table import DataTypes, StreamTableEnvironment
from pyflink.table.expressions import col
from pyflink.table.udf import FunctionContext, udf

from bench.common import bench_settings, table, write_results
from core.config import Settings, replace, with_overrides
from jobs.env import create_env
from riskstream.demo import ensure_champion
from schemas.feature_set import PAYMENT_FEATURES
from scoring import stacking
from scoring.explain import LinearExplainer
from scoring.fields import RESULT_COLUMNS, pack_features
from scoring.onnx_io import batch_invariant_score, ensemble_probability
from scoring.registry import load_champion
from scoring.scorer import TOP_FEATURES, Scorer, ScoringPolicy
from training.data import simulated_training_data
from udfs.score_udf import RESULT_TYPE, ScoreBatch

ROWS = 1_000_000
POOL = 64
"""Distinct feature vectors the source cycles through."""
PROFILE_ROWS = 10_000
# datagen rows carry computed_time 0, so the measured lag is huge: disable shedding outright.
NO_SHEDDING = ScoringPolicy(latency_budget_ms=10**15)
FEATURE_MAX = 100  # datagen's default range (any double) overflows float32
POOL_WORLD = {"profile": "realistic", "days": 8, "cards": 800, "merchants": 200, "seed": 5}
BUNDLE_TIME_MS = 1_000
"""Capacity, as the framework probe measured it: batches are cut by size, not by the clock (the
job's 10 ms bundle time cuts them smaller when the stream is slower than the UDF)."""
# (name, arrow batch, bundle size, bundle ms, input)
VARIANTS = (
    ("packed, arrow 10000, bundle 10000", 10_000, 10_000, BUNDLE_TIME_MS, "real"),
    ("packed, arrow 10000, bundle 100000", 10_000, 100_000, BUNDLE_TIME_MS, "real"),
    ("packed, arrow 1000, bundle 1000", 1_000, 1_000, BUNDLE_TIME_MS, "real"),
    ("packed, arrow 1000, bundle 1000, 5 ms (flink defaults)", 1_000, 1_000, 5, "real"),
    ("packed uniform 0-100, arrow 10000, bundle 10000", 10_000, 10_000, BUNDLE_TIME_MS, "uniform"),
    (
        "32 DOUBLE columns uniform 0-100, arrow 10000, bundle 10000",
        10_000,
        10_000,
        BUNDLE_TIME_MS,
        "columns",
    ),
)


class MeteredScoreBatch(ScoreBatch):
    """The job's UDF, timing its batches: appends its steady rate to ``meter_path`` at close."""

    def __init__(self, registry_dir: str, policy: ScoringPolicy, meter_path: str) -> None:
        super().__init__(registry_dir, policy)
        self.meter_path = meter_path
        self._rows = self._calls = 0
        self._first = self._last = self._busy = 0.0

    def open(self, function_context: FunctionContext) -> None:
        """Load the models (as the job does) and reset the meter."""
        super().open(function_context)
        self._rows = self._calls = 0
        self._busy = 0.0

    def eval(self, event_id: pd.Series, computed_time: pd.Series, *features: pd.Series) -> Any:
        """Score one batch, timed."""
        started = time.perf_counter()
        if not self._calls:
            self._first = started
        out = super().eval(event_id, computed_time, *features)
        self._last = time.perf_counter()
        self._busy += self._last - started
        self._calls += 1
        self._rows += len(event_id)
        return out

    def close(self) -> None:
        """Write rows, calls and the steady rate."""
        steady = self._last - self._first
        with open(self.meter_path, "a") as out:
            out.write(
                json.dumps(
                    {
                        "rows": self._rows,
                        "calls": self._calls,
                        "steady_s": steady,
                        "busy_s": self._busy,
                        "pid": os.getpid(),
                    }
                )
                + "\n"
            )


def feature_pool(settings: Settings, size: int = POOL, seed: int = 1) -> np.ndarray:  # type: ignore[type-arg]
    """``size`` real feature vectors (``PAYMENT_FEATURES`` order) of a small simulated world."""
    data = simulated_training_data(replace(settings.simulator, **POOL_WORLD), quiet=True)
    frame = data.frame[list(PAYMENT_FEATURES.names)]
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(frame), size=size, replace=False)
    return np.asarray(frame.to_numpy(dtype=np.float64)[picked])


def _case(pool: np.ndarray) -> str:  # type: ignore[type-arg]
    branches = " ".join(
        f"WHEN {i} THEN X'{pack_features(row.tolist()).hex()}'" for i, row in enumerate(pool)
    )
    return f"CAST(CASE MOD(id, {len(pool)}) {branches} END AS BYTES)"


def _job_seconds(
    settings: Settings,
    rows: int,
    kind: str,
    pool: np.ndarray,  # type: ignore[type-arg]
    scorer: Any | None,
) -> float:
    env = create_env(settings, connectors=False)
    t_env = StreamTableEnvironment.create(env)
    names = PAYMENT_FEATURES.names
    doubles = options = ""
    if kind == "columns":
        doubles = "".join(f"`{n}` DOUBLE, " for n in names)
        options = "".join(
            f"'fields.{n}.min'='0', 'fields.{n}.max'='{FEATURE_MAX}', " for n in names
        )
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE src ({doubles}id BIGINT, computed_time BIGINT, event_id STRING) "
        f"WITH ('connector'='datagen', 'number-of-rows'='{rows}', "
        f"'rows-per-second'='100000000', {options}"
        f"'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='{rows}', "
        "'fields.computed_time.min'='0', 'fields.computed_time.max'='1', "
        "'fields.event_id.length'='12')"
    )
    if kind == "columns":
        source = t_env.from_path("src")
        features = [col(n) for n in names]
    else:
        source = t_env.sql_query(
            f"SELECT id, computed_time, event_id, {_case(pool)} AS features FROM src"
        )
        features = [col("features")]
    columns = ", ".join(
        f"`{n}` {'BYTES' if n == RESULT_COLUMNS[0] else 'STRING'}" for n in RESULT_COLUMNS
    )
    t_env.execute_sql(f"CREATE TEMPORARY TABLE sink ({columns}) WITH ('connector'='blackhole')")
    if scorer is None:  # the same source and sink, no UDF
        first = col("event_id").cast(DataTypes.BYTES()) if kind == "columns" else features[0]
        result = source.select(
            *[
                c.alias(n)
                for c, n in zip(
                    (first, col("event_id"), col("event_id")), RESULT_COLUMNS, strict=True
                )
            ]
        )
    else:
        score = udf(scorer, result_type=RESULT_TYPE, func_type="pandas")
        result = source.select(
            score(col("event_id"), col("computed_time"), *features).alias("s")
        ).select(*[col("s").get(c) for c in RESULT_COLUMNS])
    started = time.monotonic()
    result.execute_insert("sink").wait()
    return time.monotonic() - started


def _meter(path: Path) -> dict[str, Any]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        return {}
    rows = sum(m["rows"] for m in lines)
    steady = max(m["steady_s"] for m in lines)
    return {
        "rows": rows,
        "calls": sum(m["calls"] for m in lines),
        "udf_rows_per_s": rows / steady if steady > 0 else None,
        "busy_rows_per_s": rows / sum(m["busy_s"] for m in lines),
    }


def _per_row_us(fn: Callable[[], Any], rows: int, repeats: int = 5) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats / rows * 1e6


def profile(settings: Settings, batch: np.ndarray) -> dict[str, float]:  # type: ignore[type-arg]
    """Microseconds per row of each part of ``Scorer.score`` (full mode) on ``batch``."""
    models = load_champion(settings.registry)
    explainer = LinearExplainer.from_onnx(models.model_bytes[stacking.LOGISTIC], models.inputs)
    scorer = Scorer(models, NO_SHEDDING, explainer=explainer)
    rows = len(batch)
    x = models.model_inputs(batch)
    fired = models.rules.fired(x)
    scores = {stacking.RULES: models.rules.score(x), **stacking.derived_scores(x, models.inputs)}
    for name in stacking.LEARNED:
        scores[name] = batch_invariant_score(name, models.sessions[name], x)
    parts: dict[str, Callable[[], Any]] = {
        "total": lambda: scorer.score(batch, 0.0),
        "model_inputs": lambda: models.model_inputs(batch),
        "rules": lambda: (models.rules.score(x), models.rules.fired(x)),
        "amount_deviation": lambda: stacking.derived_scores(x, models.inputs),
        **{
            name: partial(batch_invariant_score, name, models.sessions[name], x)
            for name in stacking.LEARNED
        },
        "ensemble": lambda: ensemble_probability(models.sessions[stacking.ENSEMBLE], scores),
        "thresholds": lambda: models.thresholds.decide(scores[stacking.MLP]),
        "reason_codes": lambda: scorer._reasons(x, fired, "full", (), ()),
        "reason_codes_top_features": lambda: explainer.top_indices(x, TOP_FEATURES),
    }
    return {name: _per_row_us(fn, rows) for name, fn in parts.items()}


def main(argv: Sequence[str] | None = None) -> None:
    """Run and report (``--rows`` and ``--variants`` for a quick check: no result file then)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--variants", type=int, default=len(VARIANTS), help="the first N only")
    args = parser.parse_args(argv)
    committed = args.rows == ROWS and args.variants == len(VARIANTS)
    with bench_settings("scoring") as base, tempfile.TemporaryDirectory() as tmp:
        ensure_champion(base)
        real = feature_pool(base)
        uniform = np.random.default_rng(2).uniform(0, FEATURE_MAX, (POOL, real.shape[1]))
        components = profile(base, feature_pool(base, PROFILE_ROWS, seed=4))
        print(table(["Scorer.score part", "us per row"], [[k, v] for k, v in components.items()]))
        rows_out: list[list[Any]] = []
        figures: dict[str, float] = {f"score_{k}_us_per_row": v for k, v in components.items()}
        variants: dict[str, Any] = {}
        for name, batch, bundle, bundle_ms, kind in VARIANTS[: args.variants]:
            flink = {"arrow_batch_size": batch, "bundle_size": bundle, "bundle_time_ms": bundle_ms}
            settings = with_overrides(base, flink=flink)
            pool = uniform if kind == "uniform" else real
            empty = _job_seconds(settings, args.rows, kind, pool, None)
            meter = Path(tmp) / f"{kind}-{batch}-{bundle}-{bundle_ms}.jsonl"
            scorer = MeteredScoreBatch(str(settings.registry), NO_SHEDDING, str(meter))
            full = _job_seconds(settings, args.rows, kind, pool, scorer)
            metered = _meter(meter)
            wall_rate = args.rows / max(full - empty, 1e-9)
            udf_rate = metered.get("udf_rows_per_s") or 0.0
            rows_out.append([name, args.rows, full, empty, wall_rate, udf_rate])
            key = f"{kind}_batch{batch}_bundle{bundle}_{bundle_ms}ms"
            figures[f"{key}_udf_rows_per_s"] = udf_rate
            figures[f"{key}_wall_rows_per_s"] = wall_rate
            variants[key] = {"job_s": full, "no_udf_job_s": empty, **metered}
        print(
            table(
                ["UDF", "rows", "job s", "no-UDF job s", "wall rows/s", "in-UDF steady rows/s"],
                rows_out,
            )
        )
        if not committed:
            return
        path = write_results(
            "scoring",
            figures,
            {
                "models": "rules + amount deviation + LR + gradient boosting + MLP + ensemble",
                "source": "datagen -> pandas UDF -> blackhole, mini-cluster, parallelism 1",
                "columns_in": "event_id, computed_time, features (BYTES, packed float64)",
                "columns_out": list(RESULT_COLUMNS),
                "pool": f"{POOL} feature vectors of a simulated world {POOL_WORLD}",
                "profile_rows": PROFILE_ROWS,
                "variants": variants,
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
