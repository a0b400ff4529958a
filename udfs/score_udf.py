"""The vectorized (pandas/Arrow) scoring UDF: one onnxruntime call per model per Arrow batch.

Models are loaded once per worker in ``open()`` from the registry (checksums and the feature-set
contract verified); each ``eval`` gets a batch of packed feature vectors (one BYTES column,
:mod:`scoring.columns`) and returns three columns per row (:data:`scoring.fields.RESULT_COLUMNS`):
the packed numbers (ensemble probability, every model's score, decision and degraded mode), the
joined reason codes and the model version (:mod:`scoring.scorer`). A payment the job already
decided before a failure (remembered from the decisions topic, :mod:`udfs.decision_memory`) is
scored in the mode it was first scored in (:mod:`scoring.replay`). Counters go to Flink's metric
system.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyflink.table import DataTypes
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from scoring import stacking
from scoring.columns import codes, features_matrix, pack_results
from scoring.explain import LinearExplainer
from scoring.fields import DECISIONS, MODE_SHED, RESULT_COLUMNS
from scoring.registry import load_champion
from scoring.replay import score_batch
from scoring.scorer import Scorer, ScoringPolicy
from udfs import decision_memory, metrics
from udfs.decision_memory import DecisionMemory, MemorySource

RESULT_FIELDS = tuple(
    zip(RESULT_COLUMNS, (DataTypes.BYTES(), DataTypes.STRING(), DataTypes.STRING()), strict=True)
)
LOG = logging.getLogger(__name__)
RESULT_TYPE = DataTypes.ROW([DataTypes.FIELD(name, kind) for name, kind in RESULT_FIELDS])


class ScoreBatch(ScalarFunction):  # type: ignore[misc]
    """Scores Arrow batches: ``eval(event_id, ingest_time, features)``, ``features`` packed
    (:func:`scoring.columns.features_matrix`; one DOUBLE column per feature in
    ``PAYMENT_FEATURES`` order also works); ``memory`` says where published decisions are read
    back from."""

    def __init__(
        self, registry_dir: str, policy: ScoringPolicy, memory: MemorySource | None = None
    ) -> None:
        self.registry_dir = registry_dir
        self.policy = policy
        self.memory = memory
        self._scorer: Scorer | None = None
        self._published = DecisionMemory()
        self._counters: dict[str, Any] = {}
        self._decisions: metrics.LabelledCounters | None = None
        self._open_circuits = 0

    def open(self, function_context: FunctionContext) -> None:
        """Load and verify the champion models once per worker; register the counters."""
        started = time.monotonic()
        models = load_champion(Path(self.registry_dir))
        explainer = None
        if stacking.LOGISTIC in models.model_bytes:
            explainer = LinearExplainer.from_onnx(
                models.model_bytes[stacking.LOGISTIC], models.inputs
            )
        self._scorer = Scorer(models, self.policy, explainer=explainer)
        LOG.info(
            "scoring UDF: champion %s loaded in %.1f s", models.version, time.monotonic() - started
        )
        self._published = decision_memory.load(self.memory)
        group = function_context.get_metric_group().add_group("scoring")
        for name in ("rows", "degradedRows", "shedBatches", "modelFailures", "replayedRows"):
            self._counters[name] = group.counter(name)
        root = function_context.get_metric_group()
        self._decisions = metrics.LabelledCounters(
            root, metrics.DECISIONS, metrics.LABEL_DECISION, fixed=DECISIONS
        )
        # Process mode (pandas UDF): the callback runs in this worker; Java keeps the value.
        root.add_group(metrics.GROUP).gauge(metrics.BREAKER_OPEN, lambda: self._open_circuits)

    def eval(
        self, event_id: pd.Series, ingest_time: pd.Series, *features: pd.Series
    ) -> pd.DataFrame:
        """Score one batch; the lag that drives load shedding is measured on its oldest row,
        from the time the job read it (``ingest_time``: the queues in front of the feature
        stages count)."""
        scorer = self._scorer
        if scorer is None:
            raise RuntimeError("ScoreBatch.eval called before open()")
        if len(features) == 1:
            x = features_matrix(features[0].to_numpy())
        else:
            x = np.column_stack([f.to_numpy(dtype=np.float64) for f in features])
        lag_ms = time.time() * 1000.0 - float(ingest_time.min())  # the lag that drives shedding
        remembered = self._published.modes(event_id.tolist(), scorer.models.version)
        result = score_batch(scorer, x, lag_ms, remembered)
        rows = len(x)
        self._counters["rows"].inc(rows)
        for part in result.parts:
            if part.degraded:
                self._counters["degradedRows"].inc(len(part.probability))
            if part.mode == MODE_SHED:
                self._counters["shedBatches"].inc()
            if part.failed_models:
                self._counters["modelFailures"].inc(len(part.failed_models))
        self._open_circuits = max(len(part.open_circuits) for part in result.parts)
        if result.replayed:
            self._counters["replayedRows"].inc(result.replayed)
        if self._decisions is not None:
            counts = np.bincount(codes(result.decision, DECISIONS), minlength=len(DECISIONS))
            for outcome, count in zip(DECISIONS, counts.tolist(), strict=True):
                if count:
                    self._decisions.inc(outcome, count)
        packed = pack_results(result.probability, result.scores, result.decision, result.modes)
        version = np.full(rows, scorer.models.version, dtype=object)
        columns = (packed, result.reasons, version)
        return pd.DataFrame(dict(zip(RESULT_COLUMNS, columns, strict=True)))


def score_function(
    registry: Path, policy: ScoringPolicy, memory: MemorySource | None = None
) -> Any:
    """The pandas UDF over ``event_id``, ``ingest_time`` and the packed ``features`` column."""
    function = ScoreBatch(str(registry), policy, memory)
    return udf(function, result_type=RESULT_TYPE, func_type="pandas")
