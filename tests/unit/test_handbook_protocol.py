"""The Handbook comparison: its 15 features come from the feature set by name; the benchmark JSON
holds each model's figures."""

from __future__ import annotations

import json
from pathlib import Path

from core.config import load_settings
from schemas.feature_set import PAYMENT_FEATURES
from training import handbook, models

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "handbook.json"


def test_fifteen_handbook_features_in_feature_set_order() -> None:
    assert len(handbook.HANDBOOK_FEATURES) == 15
    order = [PAYMENT_FEATURES.names.index(n) for n in handbook.HANDBOOK_FEATURES]
    assert order == sorted(order)


def test_protocol_settings_pin_the_published_split() -> None:
    s = handbook.protocol_settings(load_settings(environ={}), 5_000, 10_000, 183, 42)
    assert s.simulator.profile == "handbook"
    assert (s.training.test_start, s.training.train_days, s.training.delay_days) == (
        "2018-08-08",
        7,
        7,
    )


def test_committed_benchmark_has_figures_for_every_model() -> None:
    summary = json.loads(RESULTS.read_text("utf-8"))
    for name in models.ALL_MODELS:
        assert set(summary["figures"][name]) == {"auc_roc", "average_precision", "cp_at_100"}
    assert summary["target"] == {"average_precision": 0.687, "cp_at_100": 0.303}
