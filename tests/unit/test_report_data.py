"""The report's data loading: decoded topic records to frames (no Kafka)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.config import load_settings
from core.errors import ServiceError
from riskstream.report import data


def test_a_fraud_label_wins_over_a_legit_one_for_the_same_payment() -> None:
    frame = data.labels_frame(
        [
            {"transaction_id": "t1", "label": "legit"},
            {"transaction_id": "t1", "label": "fraud", "scenario": "card_testing"},
            {"transaction_id": "t2", "label": "legit"},
        ]
    )
    by_id = frame.set_index("transaction_id")
    assert bool(by_id.loc["t1", "is_fraud"]) and by_id.loc["t1", "scenario"] == "card_testing"
    assert not bool(by_id.loc["t2", "is_fraud"])


def test_prediction_log_columns_hold_each_model_and_feature() -> None:
    frame = data.predictions_frame(
        [
            {
                "decision_id": "d1",
                "transaction_id": "t1",
                "score": 0.4,
                "model_scores": {"mlp": 0.5, "gradient_boosting": None},
                "features": {"amount": 12.5, "hour_of_day": None},
            },
            {"decision_id": "d1", "transaction_id": "t1", "score": 0.9},  # a re-send
        ]
    )
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["model:ensemble"] == 0.4 and row["model:mlp"] == 0.5
    assert row["feature:amount"] == 12.5
    assert row["model:gradient_boosting"] != row["model:gradient_boosting"]  # NaN: not run
    assert data.predictions_frame([]).empty


def test_decisions_without_reason_codes_get_an_empty_list() -> None:
    record = {
        "decision_id": "d1",
        "transaction_id": "t1",
        "transaction_time": 1,
        "received_time": 2,
        "decision": "approve",
        "score": 0.01,
        "degraded": False,
        "processing_latency_ms": 3,
        "reason_codes": [],
        "model_version": "v0001",
        "out_of_range_features": [],  # a field a newer contract adds is ignored
    }
    frame = data.decisions_frame([record])
    assert frame.loc[0, "reason_codes"] == []
    assert frame["received_time"].dtype == "int64"


def test_registry_cards_skip_an_unreadable_card(tmp_path: Path) -> None:
    good = tmp_path / "v0001"
    good.mkdir()
    card: dict[str, Any] = {k: {} for k in ("feature_set", "models", "thresholds")}
    card |= {"version": "v0001", "stage": "champion", "inputs": []}
    (good / "model_card.json").write_text(json.dumps(card), "utf-8")
    bad = tmp_path / "v0002"
    bad.mkdir()
    (bad / "model_card.json").write_text("{not json", "utf-8")
    cards, best = data.registry_cards(tmp_path)
    assert [c["version"] for c in cards] == ["v0001"]
    assert best == "v0001"


def test_an_unreachable_broker_is_one_clear_error() -> None:
    settings = load_settings(overrides={"kafka": {"port": 1}}, environ={})
    with pytest.raises(ServiceError, match=r"no Kafka broker answered at 127\.0\.0\.1:1 "):
        data.broker_topics(settings, timeout_s=1.0)


def test_report_check_fails_the_command_on_a_console_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from riskstream.cli import main as cli_main
    from riskstream.infra import browser
    from riskstream.report import write

    page = tmp_path / "report.html"

    def written(settings: object, out: Path, title: str) -> write.Written:
        page.write_text("<html></html>", "utf-8")
        return write.Written(page, 10, {"analytics": "analytics off"})

    def seen(settings: object, path: Path, shot: Path) -> browser.PageCheck:
        assert path == page and shot == tmp_path / "report.png"
        plots = [{"panel": "latency", "traces": 3, "points": 9, "marks": 3}]
        return browser.PageCheck(["console: boom"], plots, 1, shot, b"")

    monkeypatch.setattr(write, "write_report", written)
    monkeypatch.setattr(browser, "check_page", seen)
    assert cli_main(["report", "--out", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert f"report: {page} (9 of 10 plots have data)" in out
    assert "no data for analytics: analytics off" in out
    assert "1 plots drawn in Chromium, 0 empty, 1 console errors" in out
    assert "console: boom" in out
