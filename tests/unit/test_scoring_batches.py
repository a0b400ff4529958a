"""Scores do not depend on batching: a payment scored alone and again inside a larger batch (the
replay after a restore from a checkpoint) gets the same score, bit for bit, so its re-sent
decision is identical to the first one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from schemas.feature_set import PAYMENT_FEATURES
from scoring.registry import load_version
from scoring.scorer import Scorer, ScoringPolicy
from tests.unit.test_training_support import fresh_registry, tiny_data

ROWS = 240
NO_SHEDDING_MS = 3_600_000


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16])
def test_scores_are_the_same_in_any_batch_size(tmp_path: Path, size: int) -> None:
    models = load_version(fresh_registry(tmp_path), "v0001")
    x = tiny_data().frame[list(PAYMENT_FEATURES.names)].to_numpy(dtype=np.float64)[:ROWS]
    scorer = Scorer(models, ScoringPolicy(latency_budget_ms=NO_SHEDDING_MS))
    whole = scorer.score(x, 0.0)
    parts = [scorer.score(x[i : i + size], 0.0) for i in range(0, ROWS, size)]
    assert np.array_equal(np.concatenate([p.probability for p in parts]), whole.probability)
    assert [r for p in parts for r in p.reasons] == list(whole.reasons)
    assert list(np.concatenate([p.decision for p in parts])) == list(whole.decision)
