"""The vectorized (pandas/Arrow) scoring UDF: one onnxruntime call per model per Arrow batch.

Models are loaded once per worker in ``open()`` from the registry (checksums and the feature-set
contract verified); each ``eval`` gets a batch of feature columns and returns one struct per row:
every model's score, the ensemble probability, the decision, its reason codes and whether it was
decided in a degraded mode (:mod:`scoring.scorer`). Counters go to Flink's metric system.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from scoring import stacking
from scoring.explain import LinearExplainer
from scoring.fields import APPROVE, BLOCK, MODE_SHED, RESULT_NAMES, SCORE_PREFIX, STEP_UP
from scoring.registry import load_champion
from scoring.scorer import Scorer, ScoringPolicy
from udfs import metrics

_STRINGS = {"decision", "mode", "reasons", "model_version"}
RESULT_FIELDS = tuple(
    (name, DataTypes.STRING() if name in _STRINGS else DataTypes.DOUBLE()) for name in RESULT_NAMES
)
RESULT_TYPE = DataTypes.ROW([DataTypes.FIELD(name, kind) for name, kind in RESULT_FIELDS])


class ScoreBatch(ScalarFunction):  # type: ignore[misc]
    """Scores Arrow batches: ``eval(computed_time, *features)`` in ``PAYMENT_FEATURES`` order."""

    def __init__(self, registry_dir: str, policy: ScoringPolicy) -> None:
        self.registry_dir = registry_dir
        self.policy = policy
        self._scorer: Scorer | None = None
        self._counters: dict[str, Any] = {}
        self._decisions: metrics.LabelledCounters | None = None
        self._open_circuits = 0

    def open(self, function_context: FunctionContext) -> None:
        """Load and verify the champion models once per worker; register the counters."""
        models = load_champion(Path(self.registry_dir))
        explainer = None
        if stacking.LOGISTIC in models.model_bytes:
            explainer = LinearExplainer.from_onnx(
                models.model_bytes[stacking.LOGISTIC], models.inputs
            )
        self._scorer = Scorer(models, self.policy, explainer=explainer)
        group = function_context.get_metric_group().add_group("scoring")
        for name in ("rows", "degradedRows", "shedBatches", "modelFailures"):
            self._counters[name] = group.counter(name)
        root = function_context.get_metric_group()
        self._decisions = metrics.LabelledCounters(
            root, metrics.DECISIONS, metrics.LABEL_DECISION, fixed=(APPROVE, STEP_UP, BLOCK)
        )
        # Process mode (pandas UDF): the callback runs in this worker; Java keeps the value.
        root.add_group(metrics.GROUP).gauge(metrics.BREAKER_OPEN, lambda: self._open_circuits)

    def eval(self, computed_time: pd.Series, *features: pd.Series) -> pd.DataFrame:
        """Score one batch; the lag that drives load shedding is measured on its oldest row."""
        scorer = self._scorer
        if scorer is None:
            raise RuntimeError("ScoreBatch.eval called before open()")
        x = np.column_stack([f.to_numpy(dtype=np.float64) for f in features])
        lag_ms = time.time() * 1000.0 - float(computed_time.min())
        result = scorer.score(x, lag_ms)
        rows = len(x)
        self._counters["rows"].inc(rows)
        if result.degraded:
            self._counters["degradedRows"].inc(rows)
        if result.mode == MODE_SHED:
            self._counters["shedBatches"].inc()
        if result.failed_models:
            self._counters["modelFailures"].inc(len(result.failed_models))
        self._open_circuits = len(result.open_circuits)
        if self._decisions is not None:
            for outcome, count in Counter(result.decision.tolist()).items():
                self._decisions.inc(str(outcome), count)
        frame = {
            "probability": result.probability,
            "decision": result.decision.astype(str),
            "mode": np.full(rows, result.mode),
            "reasons": result.reasons,
            "model_version": np.full(rows, scorer.models.version),
        }
        for name in stacking.STACKED:
            frame[SCORE_PREFIX + name] = result.scores[name]
        return pd.DataFrame(frame)


def score_function(registry: Path, policy: ScoringPolicy) -> Any:
    """The pandas UDF over ``computed_time`` and every feature column."""
    return udf(ScoreBatch(str(registry), policy), result_type=RESULT_TYPE, func_type="pandas")
