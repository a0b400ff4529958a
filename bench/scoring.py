"""Benchmark: the scoring UDF alone, vectorized (pandas/Arrow) against row-at-a-time.

Both UDFs score with the same champion models through the same :class:`scoring.scorer.Scorer`; only
the calling convention differs. Rows come from Flink's ``datagen`` connector and go to a
``blackhole`` sink on the mini-cluster, so Kafka and the feature stages are out of the picture. Each
job's wall time minus that of the same job without a UDF (start-up, generation) gives the UDF's
rows/s.

Run from the repo root: ``python -m bench.scoring``; writes ``bench/results/scoring.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from pyflink.table import DataTypes, StreamTableEnvironment
from pyflink.table.expressions import col
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from bench.common import bench_settings, table, write_results
from core.config import Settings, with_overrides
from jobs.env import create_env
from riskstream.demo import ensure_champion
from schemas.feature_set import PAYMENT_FEATURES
from scoring.registry import load_champion
from scoring.scorer import Scorer, ScoringPolicy
from udfs.score_udf import score_function

VECTOR_ROWS = 200_000
ROW_ROWS = 20_000
# datagen rows carry computed_time 0, so the measured lag is huge: disable shedding outright.
NO_SHEDDING = ScoringPolicy(latency_budget_ms=10**15)
ARROW_BATCHES = (1_000, 10_000)
FEATURE_MAX = 100  # datagen's default range (any double) overflows float32


class ScoreRow(ScalarFunction):  # type: ignore[misc]
    """Row-at-a-time scoring: the same Scorer, called with one row per call."""

    def __init__(self, registry_dir: str) -> None:
        self.registry_dir = registry_dir
        self._scorer: Scorer | None = None

    def open(self, function_context: FunctionContext) -> None:
        """Load the champion once."""
        self._scorer = Scorer(load_champion(Path(self.registry_dir)), NO_SHEDDING)

    def eval(self, computed_time: int, *features: float) -> float:
        """Score one row."""
        assert self._scorer is not None
        x = np.asarray([features], dtype=np.float64)
        return float(self._scorer.score(x, 0.0).probability[0])


def _job_seconds(settings: Settings, rows: int, scorer: Any | None) -> float:
    env = create_env(settings, connectors=False)
    t_env = StreamTableEnvironment.create(env)
    names = PAYMENT_FEATURES.names
    columns = ", ".join(f"`{n}` DOUBLE" for n in names)
    ranges = ", ".join(f"'fields.{n}.min'='0', 'fields.{n}.max'='{FEATURE_MAX}'" for n in names)
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE src ({columns}, computed_time BIGINT, event_id STRING) WITH ("
        f"'connector'='datagen', 'number-of-rows'='{rows}', 'rows-per-second'='100000000', "
        f"{ranges}, 'fields.computed_time.min'='0', 'fields.computed_time.max'='1', "
        "'fields.event_id.length'='12')"
    )
    t_env.execute_sql("CREATE TEMPORARY TABLE sink (p DOUBLE) WITH ('connector'='blackhole')")
    source = t_env.from_path("src")
    args = [col("computed_time"), *[col(n) for n in names]]
    if scorer is None:
        result = source.select(col(names[0]))
    elif isinstance(scorer, ScoreRow):
        result = source.select(udf(scorer, result_type=DataTypes.DOUBLE())(*args))
    else:  # the pandas UDF also takes the payment's id (its replay memory is keyed by it)
        result = source.select(scorer(col("event_id"), *args).get("probability"))
    started = time.monotonic()
    result.execute_insert("sink").wait()
    return time.monotonic() - started


def main() -> None:
    """Run and report."""
    with bench_settings("scoring") as base:
        ensure_champion(base)
        rows: list[list[Any]] = []
        figures: dict[str, float] = {}
        for batch in ARROW_BATCHES:
            settings = with_overrides(base, flink={"arrow_batch_size": batch, "bundle_size": batch})
            empty = _job_seconds(settings, VECTOR_ROWS, None)
            full = _job_seconds(
                settings, VECTOR_ROWS, score_function(settings.registry, NO_SHEDDING)
            )
            rate = VECTOR_ROWS / max(full - empty, 1e-9)
            rows.append([f"pandas UDF, arrow batch {batch}", VECTOR_ROWS, full, empty, rate])
            figures[f"vectorized_batch{batch}_rows_per_s"] = rate
        empty = _job_seconds(base, ROW_ROWS, None)
        full = _job_seconds(base, ROW_ROWS, ScoreRow(str(base.registry)))
        rate = ROW_ROWS / max(full - empty, 1e-9)
        rows.append(["row-at-a-time UDF", ROW_ROWS, full, empty, rate])
        figures["row_at_a_time_rows_per_s"] = rate
        figures["speedup_batch1000_x"] = figures["vectorized_batch1000_rows_per_s"] / rate
        print(table(["UDF", "rows", "job s", "no-UDF job s", "UDF rows/s"], rows))
        path = write_results(
            "scoring",
            figures,
            {
                "models": "rules + amount deviation + LR + gradient boosting + MLP + ensemble",
                "source": "datagen -> UDF -> blackhole, mini-cluster, parallelism 1",
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
