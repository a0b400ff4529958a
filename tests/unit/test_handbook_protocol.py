"""The Handbook comparison: its 15 features come from the feature set by name; the benchmark JSON
holds each model's figures."""

from __future__ import annotations

import json
from pathlib import Path

from core.config import load_settings
from schemas.feature_set import PAYMENT_FEATURES
from training import handbook, models, split

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


def test_protocol_settings_use_the_handbooks_known_compromised_rule() -> None:
    s = handbook.protocol_settings(load_settings(environ={}), 5_000, 10_000, 183, 42)
    assert s.training.known_compromised == "handbook"
    assert (
        handbook.PROTOCOLS["handbook"].handbooks
        and handbook.PROTOCOLS["handbook"].cp_removes_detected
    )
    assert not handbook.PROTOCOLS["former"].handbooks


def test_chapter_5_window_is_four_prequential_weeks_not_the_chapter_3_week() -> None:
    assert handbook.CHAPTER_3.test_starts == ("2018-08-08",)
    assert handbook.CHAPTER_5.test_starts == (
        "2018-08-08",
        "2018-08-15",
        "2018-08-22",
        "2018-08-29",
    )
    assert handbook.data_until([handbook.CHAPTER_5]) == split.day_ms("2018-09-05")


def test_committed_benchmark_has_both_protocols_for_every_model_and_window() -> None:
    summary = json.loads(RESULTS.read_text("utf-8"))
    names = (*models.ALL_MODELS, handbook.LEARNED_ENSEMBLE)
    for protocol in handbook.PROTOCOLS:
        for window in handbook.WINDOWS:
            figures = summary["figures"][protocol][window]
            for name in names:
                assert set(figures[name]) == {"auc_roc", "average_precision", "cp_at_100"}
    assert summary["protocols"]["handbook"]["handbooks"] is True
    assert summary["groups"]["simulator_logic"] == [models.RULES, models.ENSEMBLE]
    assert summary["target"]["average_precision"] == 0.687
    study = summary["anomaly_study"]["chapter_5"]["mean"]
    assert {"none", "isolation_forest_100x256", f"{models.DEVIATION} (served)"} <= set(study)
