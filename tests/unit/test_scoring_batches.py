"""Scores do not depend on batching: a payment scored alone and again inside a larger batch (the
replay after a restore from a checkpoint) gets the same score, bit for bit, so its re-sent
decision is identical to the first one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from schemas.feature_set import PAYMENT_FEATURES
from scoring.registry import load_version
from scoring.scorer import Scorer, ScoringPolicy
from training.data import TrainingData

ROWS = 240
NO_SHEDDING_MS = 3_600_000


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16])
def test_scores_are_the_same_in_any_batch_size(
    tmp_path: Path, size: int, fresh_registry: Callable[[Path], Path], tiny_data: TrainingData
) -> None:
    models = load_version(fresh_registry(tmp_path), "v0001")
    x = tiny_data.frame[list(PAYMENT_FEATURES.names)].to_numpy(dtype=np.float64)[:ROWS]
    scorer = Scorer(models, ScoringPolicy(latency_budget_ms=NO_SHEDDING_MS))
    whole = scorer.score(x, 0.0)
    parts = [scorer.score(x[i : i + size], 0.0) for i in range(0, ROWS, size)]
    assert np.array_equal(np.concatenate([p.probability for p in parts]), whole.probability)
    assert [r for p in parts for r in p.reasons] == list(whole.reasons)
    assert list(np.concatenate([p.decision for p in parts])) == list(whole.decision)


@pytest.mark.parametrize("size", [1, 2, 7])
def test_the_offline_loader_scores_like_the_udf_in_any_batch_size(
    tmp_path: Path, size: int, fresh_registry: Callable[[Path], Path], tiny_data: TrainingData
) -> None:
    """``LoadedModels.score`` (training evaluation, the offline check of the scoring job) and the
    UDF's full-mode scoring are one scorer: the same bits, batch by batch."""
    models = load_version(fresh_registry(tmp_path), "v0001")
    x = tiny_data.frame[list(PAYMENT_FEATURES.names)].to_numpy(dtype=np.float64)[:ROWS]
    udf = Scorer(models, ScoringPolicy(latency_budget_ms=NO_SHEDDING_MS))
    for i in range(0, ROWS, size):
        offline, online = models.score(x[i : i + size]), udf.score(x[i : i + size], 0.0)
        assert np.array_equal(offline.probability, online.probability)
        assert all(np.array_equal(offline.base[m], online.scores[m]) for m in offline.base)
        assert list(offline.decision) == list(online.decision)
