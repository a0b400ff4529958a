"""The scoring UDF's lean columns (issue 16.3): packed features in, packed results out, and the
vectorized reason codes equal to the former per-row formatting on a real batch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from schemas.feature_set import PAYMENT_FEATURES
from scoring import stacking
from scoring.columns import FEATURE_WIDTH, features_matrix, pack_results, unpack_results
from scoring.explain import LinearExplainer
from scoring.fields import (
    DECISIONS,
    MODE_FULL,
    MODE_RULES,
    MODE_SHED,
    MODES,
    REASON_SEPARATOR,
    RESULT_COLUMNS,
    RESULT_LAYOUT,
    pack_features,
    unpack_features,
    unpack_result,
)
from scoring.reasons import reason_strings, top_indices
from scoring.registry import LoadedModels, load_version
from scoring.replay import score_batch
from scoring.scorer import TOP_FEATURES, BatchResult, Scorer, ScoringPolicy
from training.data import TrainingData

F64 = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def models(
    tmp_path_factory: pytest.TempPathFactory, fresh_registry: Callable[[Path], Path]
) -> LoadedModels:
    return load_version(fresh_registry(tmp_path_factory.mktemp("columns")), "v0001")


@pytest.fixture(scope="module")
def batch(tiny_data: TrainingData) -> F64:
    values: F64 = tiny_data.frame[list(PAYMENT_FEATURES.names)].to_numpy(dtype=np.float64)
    return values[:500]


def _scorer(models: LoadedModels, budget_ms: int = 10**9) -> Scorer:
    explainer = LinearExplainer.from_onnx(models.model_bytes[stacking.LOGISTIC], models.inputs)
    return Scorer(models, ScoringPolicy(latency_budget_ms=budget_ms), explainer=explainer)


# --- the former per-row implementation, kept here as the reference ---------------------------


def _old_top(explainer: LinearExplainer, x: Any, k: int) -> list[list[str]]:
    contrib = explainer.contributions(x)
    order = np.argsort(-contrib, axis=1)[:, :k]  # as it was (ties: unspecified order)
    return [[explainer.names[j] for j in row if contrib[i, j] > 0.0] for i, row in enumerate(order)]


def _old_reasons(
    scorer: Scorer, x: Any, mode: str, failed: Sequence[str], open_circuits: Sequence[str]
) -> list[str]:
    names = [rule.name for rule in scorer.models.rules.rules]
    fired = scorer.models.rules.fired(x)
    assert scorer.explainer is not None
    top = _old_top(scorer.explainer, x, TOP_FEATURES)
    extra = (
        [
            f"degraded:{mode}",
            *(f"model_failed:{m}" for m in failed),
            *(f"circuit_open:{m}" for m in open_circuits),
        ]
        if mode != MODE_FULL
        else []
    )
    out = []
    for i in range(len(x)):
        codes = [f"rule:{names[j]}" for j in np.flatnonzero(fired[i])]
        codes += [f"feature:{name}" for name in top[i]]
        out.append(REASON_SEPARATOR.join(codes + extra))
    return out


# --- packing ---------------------------------------------------------------------------------


def test_features_pack_row_by_row_and_decode_as_one_matrix() -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(7, FEATURE_WIDTH)) * 1e6
    rows[0, 0], rows[1, 1], rows[2, 2], rows[3, 3] = np.nan, np.inf, -0.0, 0.0
    packed = [pack_features(row.tolist()) for row in rows]
    matrix = features_matrix(np.array(packed, dtype=object))
    np.testing.assert_array_equal(matrix, rows)  # bit for bit, NaN and signed zero included
    assert np.signbit(matrix[2, 2])
    assert unpack_features(packed[4]) == tuple(rows[4].tolist())
    assert len(PAYMENT_FEATURES.names) == FEATURE_WIDTH


def test_a_packed_feature_vector_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="bytes per row"):
        features_matrix([pack_features([1.0] * FEATURE_WIDTH), b"\x00" * 8])


def test_results_pack_as_a_batch_and_unpack_row_by_row() -> None:
    rows = 9
    probability = np.linspace(0.0, 1.0, rows)
    scores = {name: np.full(rows, 0.0) for name in stacking.STACKED}
    scores[stacking.MLP] = np.where(np.arange(rows) % 2 == 0, np.nan, 0.25)
    decision = np.array([DECISIONS[i % 3] for i in range(rows)], dtype=object)
    mode = np.array([MODES[i % 3] for i in range(rows)], dtype=object)
    packed = pack_results(probability, scores, decision, mode)
    assert packed.dtype == object and all(isinstance(b, bytes) for b in packed)
    assert {len(b) for b in packed} == {RESULT_LAYOUT.size}  # zeros at the end survive
    for i, blob in enumerate(packed):
        p, model_scores, d, m = unpack_result(blob)
        assert p == probability[i] and (d, m) == (decision[i], mode[i])
        expected = [scores[name][i] for name in stacking.STACKED]
        assert all(
            (math.isnan(a) and math.isnan(b)) or a == b
            for a, b in zip(model_scores, expected, strict=True)
        )
    whole = unpack_results(packed)
    np.testing.assert_array_equal(whole["probability"], probability)
    np.testing.assert_array_equal(whole[stacking.MLP], scores[stacking.MLP])


def test_a_result_of_another_layout_version_is_refused() -> None:
    blob = RESULT_LAYOUT.pack(0.5, *[0.0] * len(stacking.STACKED), 0, 0, 7)
    with pytest.raises(ValueError, match="layout version"):
        unpack_result(blob)


# --- vectorized reason codes -----------------------------------------------------------------


def test_top_indices_equal_a_stable_sort_and_skip_nan() -> None:
    rng = np.random.default_rng(5)
    contrib = rng.normal(size=(300, 12))
    contrib[::7, 3] = np.nan
    contrib[::5] = -np.abs(contrib[::5])  # rows with nothing positive
    contrib[1, :] = 0.5  # ties: the earlier feature first
    got = top_indices(contrib, 3)
    work = np.where(np.isnan(contrib), -np.inf, contrib)
    order = np.argsort(-work, axis=1, kind="stable")[:, :3]
    want = np.where(np.take_along_axis(work, order, axis=1) > 0.0, order, -1)
    np.testing.assert_array_equal(got, want)
    assert got[1].tolist() == [0, 1, 2]


def test_no_rules_or_no_explainer_still_give_one_string_per_row() -> None:
    fired = np.zeros((3, 0), dtype=bool)
    assert (
        reason_strings(fired, [], None, [], ["degraded:rules_only"]).tolist()
        == ["degraded:rules_only"] * 3
    )
    assert reason_strings(np.zeros((0, 2), dtype=bool), ["a", "b"], None, []).tolist() == []


def test_many_rules_take_the_row_wise_path_with_the_same_strings() -> None:
    """Above 62 key bits the distinct rows come from a row-wise unique: same strings."""
    rng = np.random.default_rng(8)
    names = [f"r{j}" for j in range(70)]
    fired = rng.random((200, 70)) < 0.05
    top = np.where(rng.random((200, 2)) < 0.3, -1, rng.integers(0, 5, (200, 2)))
    features = [f"f{j}" for j in range(5)]
    got = reason_strings(fired, names, top, features, ["x"])
    for i in range(200):
        codes = [f"rule:{names[j]}" for j in np.flatnonzero(fired[i])]
        codes += [f"feature:{features[j]}" for j in top[i] if j >= 0]
        assert got[i] == REASON_SEPARATOR.join([*codes, "x"])


@pytest.mark.parametrize(
    ("mode", "failed", "open_circuits"),
    [
        (MODE_FULL, (), ()),
        (MODE_SHED, (), ()),
        (MODE_RULES, (stacking.MLP,), (stacking.BOOSTING,)),
    ],
)
def test_vectorized_reasons_equal_the_per_row_ones(
    models: LoadedModels,
    batch: F64,
    mode: str,
    failed: tuple[str, ...],
    open_circuits: tuple[str, ...],
) -> None:
    scorer = _scorer(models)
    x = models.model_inputs(batch)
    fired = models.rules.fired(x)
    got = scorer._reasons(x, fired, mode, failed, open_circuits)
    want = _old_reasons(scorer, x, mode, failed, open_circuits)
    assert list(got) == want
    assert len(set(want)) > 5  # the fixture batch exercises many combinations


def test_explainer_top_equals_the_per_row_sort(models: LoadedModels, batch: F64) -> None:
    scorer = _scorer(models)
    assert scorer.explainer is not None
    x = models.model_inputs(batch)
    assert scorer.explainer.top(x, TOP_FEATURES) == _old_top(scorer.explainer, x, TOP_FEATURES)


# --- the UDF's eval, without a JVM -----------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n


def _udf(scorer: Scorer) -> Any:
    from collections import defaultdict

    from udfs.score_udf import ScoreBatch

    function = ScoreBatch("unused", scorer.policy)
    function._scorer = scorer
    function._counters = defaultdict(_Counter)
    return function


@pytest.mark.parametrize("budget_ms", [10**9, 0])  # full, shed
def test_the_udf_packs_what_the_scorer_decides(
    models: LoadedModels, batch: F64, budget_ms: int
) -> None:
    udf = _udf(_scorer(models, budget_ms))
    ids = pd.Series([f"tx-{i}" for i in range(len(batch))])
    second_ago = int(time.time() * 1000) - 1000
    stamps = pd.Series(np.full(len(batch), second_ago, dtype=np.int64))
    packed = pd.Series([pack_features(row.tolist()) for row in batch])
    out = udf.eval(ids, stamps, packed)
    assert tuple(out.columns) == RESULT_COLUMNS and len(out) == len(batch)
    want = score_batch(_scorer(models, budget_ms), batch, 1000.0, [None] * len(batch))
    whole = unpack_results(out["result"].to_numpy())
    np.testing.assert_array_equal(whole["probability"], want.probability)
    for name in stacking.STACKED:
        np.testing.assert_array_equal(whole[name], want.scores[name])
    assert [DECISIONS[c] for c in whole["decision"]] == list(want.decision)
    assert {MODES[c] for c in whole["mode"]} == {MODE_SHED if budget_ms == 0 else MODE_FULL}
    assert out["reasons"].tolist() == list(want.reasons)
    assert set(out["model_version"]) == {models.version}
    # one DOUBLE column per feature (the former calling convention) gives the same columns
    columns = [pd.Series(batch[:, j]) for j in range(batch.shape[1])]
    wide = _udf(_scorer(models, budget_ms)).eval(ids, stamps, *columns)
    assert wide["result"].tolist() == out["result"].tolist()


def test_a_batch_result_keeps_its_reasons_as_an_array(models: LoadedModels, batch: F64) -> None:
    result: BatchResult = _scorer(models).score(batch, 0.0)
    assert isinstance(result.reasons, np.ndarray) and len(result.reasons) == len(batch)
