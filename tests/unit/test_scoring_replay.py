"""Replays are scored in the mode of their published decision (issue 12.4): the pure parts."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from schemas.feature_set import PAYMENT_FEATURES
from scoring import stacking
from scoring.fields import MODE_FULL, MODE_SHED
from scoring.registry import LoadedModels, load_version
from scoring.replay import remembered_mode, score_batch
from scoring.scorer import Scorer, ScoringPolicy
from training.data import TrainingData
from udfs.decision_memory import DecisionMemory, MemorySource, load
from udfs.decisions import decision_id

BUDGET_MS = 100
OVER, UNDER = BUDGET_MS * 10.0, 0.0


@pytest.fixture(scope="module")
def models(
    tmp_path_factory: pytest.TempPathFactory, fresh_registry: Callable[[Path], Path]
) -> LoadedModels:
    return load_version(fresh_registry(tmp_path_factory.mktemp("replay")), "v0001")


@pytest.fixture(scope="module")
def batch(tiny_data: TrainingData) -> np.ndarray[Any, np.dtype[np.float64]]:
    values: np.ndarray[Any, np.dtype[np.float64]] = tiny_data.frame[
        list(PAYMENT_FEATURES.names)
    ].to_numpy(dtype=np.float64)
    return values[:60]


def _scorer(models: LoadedModels) -> Scorer:
    return Scorer(models, ScoringPolicy(latency_budget_ms=BUDGET_MS, recover_ratio=0.5))


def test_the_mode_of_a_published_decision() -> None:
    assert remembered_mode(False, []) == MODE_FULL
    assert remembered_mode(True, ["rule:r", "degraded:shed"]) == MODE_SHED
    assert remembered_mode(True, ["degraded:rules_only", "model_failed:mlp"]) is None
    assert remembered_mode(True, []) is None  # degraded, mode unknown: scored by its lag


def test_no_memory_is_the_scorer_itself(models: LoadedModels, batch: Any) -> None:
    plain = _scorer(models).score(batch, OVER)
    got = score_batch(_scorer(models), batch, OVER, [None] * len(batch))
    assert got.replayed == 0 and set(got.modes) == {MODE_SHED}
    np.testing.assert_array_equal(got.probability, plain.probability)
    assert list(got.reasons) == list(plain.reasons)


def test_replays_get_their_first_mode_whatever_the_lag_now(
    models: LoadedModels, batch: Any
) -> None:
    """First run: rows 0-29 scored full (quiet), rows 30-59 shed (overload). The replay comes
    during a catch-up (over budget) and must give every row its first score, decision, reasons
    and model scores; the rows' order inside the batch must not matter."""
    first = _scorer(models)
    full = first.score(batch[:30], UNDER)
    shed = first.score(batch[30:], OVER)
    assert full.mode == MODE_FULL and shed.mode == MODE_SHED
    order = np.random.default_rng(3).permutation(len(batch))
    remembered = [MODE_FULL if i < 30 else MODE_SHED for i in order]
    replay = score_batch(_scorer(models), batch[order], OVER, remembered)
    assert replay.replayed == len(batch)
    for j, i in enumerate(order):
        want = full if i < 30 else shed
        k = i if i < 30 else i - 30
        assert replay.modes[j] == want.mode
        assert replay.probability[j] == want.probability[k]
        assert replay.decision[j] == want.decision[k]
        assert replay.reasons[j] == want.reasons[k]
        for name in stacking.STACKED:
            a, b = replay.scores[name][j], want.scores[name][k]
            assert (np.isnan(a) and np.isnan(b)) or a == b, name


def test_new_rows_beside_replays_follow_the_lag_and_replays_leave_the_hysteresis(
    models: LoadedModels, batch: Any
) -> None:
    scorer = _scorer(models)
    remembered = [MODE_SHED] * 10 + [None] * (len(batch) - 10)
    got = score_batch(scorer, batch, UNDER, remembered)
    assert set(got.modes[:10]) == {MODE_SHED} and set(got.modes[10:]) == {MODE_FULL}
    assert got.replayed == 10 and len(got.parts) == 2
    assert not scorer.shedding  # a replayed shed row did not switch the live policy
    scorer.score(batch, OVER)
    assert scorer.shedding
    got = score_batch(scorer, batch, OVER, [MODE_FULL] * len(batch))
    assert set(got.modes) == {MODE_FULL} and scorer.shedding


def test_an_unknown_replay_mode_is_refused(models: LoadedModels, batch: Any) -> None:
    with pytest.raises(ValueError, match="replay_mode"):
        _scorer(models).score(batch, UNDER, "rules_only")


def _published(tx: str, degraded: bool, codes: list[str]) -> bytes:
    return msgspec.json.encode(
        {"decision_id": decision_id(tx, "v0001"), "degraded": degraded, "reason_codes": codes}
    )


def test_the_memory_keeps_the_first_copy_and_skips_what_is_not_a_decision() -> None:
    memory = DecisionMemory()
    memory.remember(
        [
            _published("tx-1", True, ["degraded:shed"]),
            _published("tx-1", False, []),  # a later copy: the first one counts
            _published("tx-2", False, ["rule:large_amount"]),
            _published("tx-3", True, ["degraded:rules_only"]),
            b"not json",
            b'{"decision_id": 3}',
        ]
    )
    assert len(memory) == 2
    assert memory.modes(["tx-1", "tx-2", "tx-3", "tx-4"], "v0001") == [
        MODE_SHED,
        MODE_FULL,
        None,
        None,
    ]
    assert memory.modes(["tx-1"], "v0002") == [None]  # another model: another decision id


def test_memory_off_or_unreadable_leaves_it_empty() -> None:
    from core.config import load_settings

    kafka = load_settings(environ={}).kafka
    assert len(load(None)) == 0
    assert len(load(MemorySource(kafka, "decisions", 0))) == 0
    source = MemorySource(kafka, "decisions", 10)
    assert pickle.loads(pickle.dumps(source)) == source
