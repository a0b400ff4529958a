"""A training run on a small simulated history: registry version, ONNX parity, card contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from schemas.feature_set import PAYMENT_FEATURES
from scoring.registry import CANDIDATE, CARD_FILE, SUMS_FILE, load_version, read_card
from training import models, split
from training.data import TrainingData
from training.export import PARITY_TOLERANCE, onnx_score
from training.train import TrainingRun


def test_registry_version_reproduces_sklearn_probabilities(
    tmp_path: Path,
    fresh_registry: Callable[[Path], Path],
    tiny_data: TrainingData,
    tiny_run: TrainingRun,
) -> None:
    run = tiny_run
    root = fresh_registry(tmp_path)
    loaded = load_version(root, "v0001")
    _, test = split.apply(tiny_data.frame, run.split, only_known_labels=True)
    features = test[list(PAYMENT_FEATURES.names)].to_numpy()
    scored = loaded.score(features)
    for name in models.LEARNED:
        gap = np.max(np.abs(scored.base[name] - run.test_scores[name]))
        assert gap <= PARITY_TOLERANCE, (name, gap)
    assert np.array_equal(scored.base[models.RULES], run.test_scores[models.RULES])
    for name in models.DERIVED:  # computed by the serving code from the same float32 inputs
        assert np.array_equal(scored.base[name], run.test_scores[name]), name
    same_input = onnx_score(
        models.ENSEMBLE,
        loaded.sessions[models.ENSEMBLE],
        models.stack_inputs(run.test_scores),
    )
    assert np.max(np.abs(same_input - run.test_scores[models.ENSEMBLE])) <= PARITY_TOLERANCE
    assert set(scored.decision) <= {"approve", "step_up", "block"}
    assert all(
        gap <= PARITY_TOLERANCE for name, gap in run.parity.items() if name in models.ALL_MODELS
    )


def test_model_card_lists_exactly_the_streaming_feature_set(
    tmp_path: Path, fresh_registry: Callable[[Path], Path]
) -> None:
    card = read_card(fresh_registry(tmp_path), "v0001")
    assert card["feature_set"] == {
        "name": PAYMENT_FEATURES.name,
        "version": PAYMENT_FEATURES.version,
        "spec_hash": PAYMENT_FEATURES.spec_hash(),
        "features": list(PAYMENT_FEATURES.names),
    }
    assert card["inputs"] == list(PAYMENT_FEATURES.names)


def test_model_card_fields(tmp_path: Path, fresh_registry: Callable[[Path], Path]) -> None:
    root = fresh_registry(tmp_path)
    card = read_card(root, "v0001")
    assert card["stage"] == CANDIDATE
    assert card["training"]["rows"]["train"] > 0 and card["training"]["rows"]["test"] > 0
    assert card["training"]["label_delay_days"] == 3
    assert set(card["libraries"]) >= {"scikit-learn", "skl2onnx", "onnxruntime", "onnx"}
    assert card["git_commit"] and card["created_utc"].endswith("Z")
    assert set(card["thresholds"]) == {"step_up", "block"}
    assert card["thresholds"]["step_up"] <= card["thresholds"]["block"]
    for name in models.ALL_MODELS:
        metrics = card["metrics"][name]
        assert {"auc_roc", "average_precision", "cp_at_100"} <= set(metrics)
    assert "calibration" in card["metrics"][models.ENSEMBLE]
    assert "thresholds" in card["metrics"][models.ENSEMBLE]
    files = sorted(p.name for p in (root / "v0001").iterdir())
    assert files == sorted(
        [
            CARD_FILE,
            SUMS_FILE,
            *(f"{n}.onnx" for n in (*models.LEARNED, "ensemble")),
        ]
    )


def test_ensemble_beats_chance_on_the_time_split(tiny_run: TrainingRun) -> None:
    metrics = tiny_run.metrics
    assert metrics[models.ENSEMBLE]["auc_roc"] > 0.7
