"""The scoring policy on the registry's real ONNX models: full, shed, rules-only, breaker."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyflink.common import Row

from core.config import Settings
from core.errors import ConfigError
from schemas.feature_set import PAYMENT_FEATURES
from scoring import stacking
from scoring.explain import LinearExplainer
from scoring.fields import MODE_FULL, MODE_RULES, MODE_SHED, SEVERITY
from scoring.registry import LoadedModels, load_version, sha256
from scoring.scorer import Scorer, ScoringPolicy
from training import train
from training.data import TrainingData

BUDGET_MS = 100


@pytest.fixture(scope="module")
def models(
    tmp_path_factory: pytest.TempPathFactory, fresh_registry: Callable[[Path], Path]
) -> LoadedModels:
    path = fresh_registry(tmp_path_factory.mktemp("policy"))
    return load_version(path, "v0001")


@pytest.fixture(scope="module")
def batch(tiny_data: TrainingData) -> np.ndarray[Any, np.dtype[np.float64]]:
    frame = tiny_data.frame
    values: np.ndarray[Any, np.dtype[np.float64]] = frame[list(PAYMENT_FEATURES.names)].to_numpy(
        dtype=np.float64
    )
    return values[:500]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Failing:
    """Stands in for an onnxruntime session that raises (a corrupt or incompatible model)."""

    def get_inputs(self) -> Any:
        raise RuntimeError("model exploded")


def _policy() -> ScoringPolicy:
    return ScoringPolicy(latency_budget_ms=BUDGET_MS, breaker_failures=2, breaker_cooldown_ms=1000)


def test_full_scoring_equals_the_registry_loader(models: LoadedModels, batch: Any) -> None:
    result = Scorer(models, _policy()).score(batch, lag_ms=0.0)
    expected = models.score(batch)
    assert result.mode == MODE_FULL and not result.degraded
    np.testing.assert_allclose(result.probability, expected.probability, atol=1e-9)
    assert list(result.decision) == list(expected.decision)


def test_shedding_above_budget_and_recovery_with_hysteresis(
    models: LoadedModels, batch: Any
) -> None:
    scorer = Scorer(models, _policy())
    shed = scorer.score(batch, lag_ms=BUDGET_MS + 1)
    assert shed.mode == MODE_SHED and shed.degraded
    assert np.isnan(shed.scores[stacking.MLP]).all()
    assert np.isfinite(shed.scores[stacking.LOGISTIC]).all()
    assert all("degraded:shed" in r for r in shed.reasons)
    assert scorer.score(batch, lag_ms=BUDGET_MS * 0.7).mode == MODE_SHED  # still above recovery
    assert scorer.score(batch, lag_ms=BUDGET_MS * 0.4).mode == MODE_FULL


def test_shed_decision_is_never_milder_than_the_rules(models: LoadedModels, batch: Any) -> None:
    scorer = Scorer(models, _policy())
    shed = scorer.score(batch, lag_ms=BUDGET_MS * 10)
    rules_only = scorer.fallback.decide(shed.scores[stacking.RULES])
    assert all(SEVERITY[a] >= SEVERITY[b] for a, b in zip(shed.decision, rules_only, strict=True))


def test_a_failing_model_decides_by_rules_and_opens_the_breaker(
    models: LoadedModels, batch: Any
) -> None:
    sessions = dict(models.sessions) | {stacking.MLP: _Failing()}
    broken = LoadedModels(**{**models.__dict__, "sessions": sessions})
    clock = _Clock()
    scorer = Scorer(broken, _policy(), clock_ms=clock)
    first = scorer.score(batch, lag_ms=0.0)
    assert first.mode == MODE_RULES and first.failed_models == (stacking.MLP,)
    np.testing.assert_array_equal(first.probability, first.scores[stacking.RULES])
    assert all(f"model_failed:{stacking.MLP}" in r for r in first.reasons)
    scorer.score(batch, lag_ms=0.0)  # second failure in a row opens the breaker
    skipped = scorer.score(batch, lag_ms=0.0)
    assert skipped.mode == MODE_RULES and skipped.failed_models == ()  # not even tried
    assert skipped.open_circuits == (stacking.MLP,)
    assert all(f"circuit_open:{stacking.MLP}" in r for r in skipped.reasons)
    scorer.models = models  # the model is fixed; after the cool-down it is tried again
    clock.now += 1001
    assert scorer.score(batch, lag_ms=0.0).mode == MODE_FULL


def test_unknown_fast_model_is_a_config_error(models: LoadedModels) -> None:
    with pytest.raises(ConfigError, match=r"scoring\.fast_models"):
        Scorer(models, ScoringPolicy(fast_models=("xgboost",)))


def test_reason_features_are_the_largest_linear_contributions(
    models: LoadedModels, batch: Any
) -> None:
    explainer = LinearExplainer.from_onnx(models.model_bytes[stacking.LOGISTIC], models.inputs)
    x = batch[:, list(models.input_index)]
    contributions = explainer.contributions(x)
    logit = np.log(models.score(batch).base[stacking.LOGISTIC])
    logit -= np.log1p(-models.score(batch).base[stacking.LOGISTIC])
    intercept = logit - contributions.sum(axis=1)
    assert np.ptp(intercept) < 1e-3  # contributions + one constant = the model's log-odds
    top = explainer.top(x, 2)
    for i in range(len(x)):
        best = [
            models.inputs[j] for j in np.argsort(-contributions[i])[:2] if contributions[i, j] > 0
        ]
        assert top[i] == best


def test_udf_and_decision_functions_pickle(tmp_path: Path) -> None:
    from udfs.decisions import DecisionOutputs
    from udfs.score_udf import ScoreBatch

    for function in (ScoreBatch(str(tmp_path), _policy()), DecisionOutputs("src")):
        assert type(pickle.loads(pickle.dumps(function))) is type(function)


def test_registry_keeps_verified_bytes(
    tmp_path: Path, fresh_registry: Callable[[Path], Path]
) -> None:
    path = fresh_registry(tmp_path)
    loaded = load_version(path, "v0001")
    for name, data in loaded.model_bytes.items():
        assert sha256(data) == loaded.card["models"][name]["sha256"]


def _scored_row(decision: str) -> Row:
    """A row as the scoring UDF hands it to DecisionOutputs."""
    from udfs.decisions import scored_row
    from udfs.feature_rows import Passthrough

    now = int(time.time() * 1000)
    record = Passthrough(
        "tx-1", now - 50, "c-1", "card-1", "m-1", "5411", False, False, 3, now - 10, now - 40
    )
    return scored_row(
        record,
        [1.0] * len(PAYMENT_FEATURES.names),
        probability=0.9,
        scores=[0.5] * len(stacking.STACKED),
        decision=decision,
        mode=MODE_FULL,
        reasons="",
        model_version="v0001",
    )


@pytest.mark.parametrize("analytics", [True, False])
def test_decision_outputs_feed_analytics_only_when_it_is_attached(analytics: bool) -> None:
    """PyFlink fails the job on a side output nobody consumes, so with `scoring.analytics: false`
    no scored payment may be emitted (a throughput run without analytics died on it)."""
    from udfs.decisions import ALERTS_TAG, PREDICTION_LOG_TAG, SCORED_TAG, DecisionOutputs

    outputs = list(
        DecisionOutputs("src", analytics=analytics).process_element(_scored_row("block"), None)
    )
    tags = [out[0] for out in outputs if isinstance(out, tuple)]
    assert isinstance(outputs[0], str) and json.loads(outputs[0])["transaction_id"] == "tx-1"
    assert tags.count(PREDICTION_LOG_TAG) == 1 and tags.count(ALERTS_TAG) == 1
    assert tags.count(SCORED_TAG) == (1 if analytics else 0)


def test_a_shed_batch_decides_each_fast_model_on_its_own_thresholds(
    models: LoadedModels, tiny_data: TrainingData
) -> None:
    """The ensemble's thresholds are on another probability scale: with them the demo's shed
    stretches blocked only by the rules (its champion's block threshold, 0.995, is out of the
    logistic model's reach). A shed batch now blocks where the fast model crosses its own."""
    features = tiny_data.frame[list(PAYMENT_FEATURES.names)].to_numpy(dtype=np.float64)
    scorer = Scorer(models, _policy())
    shed = scorer.score(features, lag_ms=BUDGET_MS * 10)
    assert shed.mode == MODE_SHED
    logistic = shed.scores[stacking.LOGISTIC]
    own = models.thresholds_of(stacking.LOGISTIC).decide(logistic)
    rules = scorer.fallback.decide(shed.scores[stacking.RULES])
    expected = [max(a, b, key=SEVERITY.__getitem__) for a, b in zip(own, rules, strict=True)]
    assert list(shed.decision) == expected
    on_ensemble_scale = models.thresholds.decide(logistic)
    assert (own != on_ensemble_scale).any()  # the two scales really differ on this data


def test_fast_thresholds_cut_the_configured_shares_of_each_models_own_scores(
    tiny_run: train.TrainingRun, tiny_settings: Settings
) -> None:
    rates = tiny_settings.training
    for name in stacking.LEARNED:
        oof, cut = tiny_run.oof_scores[name], tiny_run.fast_thresholds[name]
        assert np.mean(oof >= cut.block) == pytest.approx(rates.block_rate, abs=0.005), name
        assert np.mean(oof >= cut.step_up) == pytest.approx(
            rates.block_rate + rates.step_up_rate, abs=0.01
        ), name


def test_fast_thresholds_are_cut_per_model_and_stored_in_the_card(models: LoadedModels) -> None:
    assert set(models.card["fast_thresholds"]) == set(stacking.LEARNED)
    own = models.thresholds_of(stacking.LOGISTIC)
    assert own == models.fast_thresholds[stacking.LOGISTIC]
    assert own != models.thresholds and own.step_up <= own.block
    older = LoadedModels(**{**models.__dict__, "fast_thresholds": {}})
    assert older.thresholds_of(stacking.LOGISTIC) == models.thresholds  # cards before the cut
