"""The report's figure builders and page on synthetic frames (no Kafka, no browser)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from riskstream.report import figures, page
from riskstream.report.data import (
    RunData,
    analytics_frame,
    dead_letters_frame,
    decisions_frame,
    labels_frame,
    predictions_frame,
)
from riskstream.report.write import write_page

T0 = 1_767_225_600_000  # 2026-01-01 UTC
MODELS = ("logistic_regression", "gradient_boosting", "mlp")
FEATURES = ("amount", "tx_count_by_card_1h")
N = 600


def _decision(i: int, fraud: bool, rng: np.random.Generator) -> dict[str, Any]:
    score = float(np.clip(rng.beta(5, 2) if fraud else rng.beta(1, 30), 0, 1))
    verdict = "block" if score > 0.8 else "step_up" if score > 0.3 else "approve"
    return {
        "decision_id": f"d{i}",
        "transaction_id": f"t{i}",
        "transaction_time": T0 + i * 500,
        "received_time": T0 + i * 100,
        "decision": verdict,
        "score": score,
        "degraded": i % 97 == 0,
        "processing_latency_ms": int(rng.integers(5, 200)),
        "reason_codes": ["AMOUNT_SPIKE", "NEW_DEVICE"][: i % 3],
        "model_version": "v0001",
    }


def _prediction(d: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    return {
        "decision_id": d["decision_id"],
        "transaction_id": d["transaction_id"],
        "event_time": d["received_time"],
        "latency_ms": 3,
        "model_version": "v0001",
        "score": d["score"],
        "model_scores": {m: float(np.clip(d["score"] + rng.normal(0, 0.05), 0, 1)) for m in MODELS},
        "features": {"amount": float(rng.lognormal(3, 1)), "tx_count_by_card_1h": 1.0},
    }


CARD = {
    "version": "v0001",
    "stage": "champion",
    "created_utc": "2026-01-01T00:00:00Z",
    "training": {"data": "synthetic"},
    "thresholds": {"step_up": 0.3, "block": 0.8},
    "expected_decisions": {"approve": 0.98, "step_up": 0.015, "block": 0.005, "source": "test"},
    "metrics": {"ensemble": {"average_precision": 0.9, "auc_roc": 0.99}},
    "feature_ranges": {
        "quantiles": [0.001, 0.999],
        "features": {
            "amount": {"low": 1.0, "high": 100.0, "min": 0.5, "max": 500.0},
            "tx_count_by_card_1h": {"low": 1.0, "high": 5.0, "min": 1.0, "max": 9.0},
        },
    },
}


def synthetic_run(seed: int = 1) -> RunData:
    """A run of ``N`` decisions with every source filled."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(N) < 0.05
    decisions = [_decision(i, bool(f), rng) for i, f in enumerate(fraud)]
    labels = [
        {
            "transaction_id": d["transaction_id"],
            "label": "fraud" if f else "legit",
            "label_type": "chargeback" if f else "confirmed_legitimate",
            "scenario": "card_testing" if f and i % 2 else ("account_takeover" if f else None),
            "event_time": d["transaction_time"] + 1,
        }
        for i, (d, f) in enumerate(zip(decisions, fraud, strict=True))
        if f or i % 20 == 0
    ]
    letters = [
        {"record_type": "transaction", "reason": "expected `str`, got `int` - at `$.card_id`"},
        {"record_type": "label", "reason": "event_time 9 is 400000 ms ahead of the wall clock"},
        {"record_type": "transaction", "reason": "expected `str`, got `int` - at `$.card_id`"},
    ]
    windows = [
        {
            "window_kind": "tumbling",
            "window_size_ms": 60_000,
            "key_kind": "global",
            "key": "all",
            "window_start": T0 + m * 60_000,
            "window_end": T0 + (m + 1) * 60_000,
            "revision": revision,
            "transactions": 100 + revision,
            "decisions": {"approve": 98, "step_up": 1 + revision, "block": 1},
            "mean_score": 0.05,
        }
        for m in range(5)
        for revision in (1, 2)
    ]
    return RunData(
        decisions=decisions_frame(decisions + decisions[:5]),  # re-sent copies are dropped
        predictions=predictions_frame([_prediction(d, rng) for d in decisions]),
        labels=labels_frame(labels),
        dead_letters=dead_letters_frame(letters),
        analytics=analytics_frame(windows),
        cards=[CARD],
        champion="v0001",
        configured={"approve": 0.988, "step_up": 0.01, "block": 0.002},
        topics={"decisions": "decisions"},
    )


def _points(fig: Any) -> int:
    total = 0
    for trace in fig.data:
        values = trace.x if trace.x is not None else trace.y
        total += 0 if values is None else len(values)
    return total


def test_every_panel_has_a_figure_with_points_when_every_source_has_data() -> None:
    built = figures.panels(synthetic_run())
    assert [p.key for p in built] == [
        "latency", "throughput", "shares", "fraud", "scores", "pr", "reasons", "dead_letters",
        "drift", "analytics",
    ]  # fmt: skip
    for panel in built:
        assert panel.missing is None, panel.key
        assert panel.figure is not None and _points(panel.figure) > 0, panel.key


def test_frames_keep_the_first_decision_and_the_newest_window_revision() -> None:
    run = synthetic_run()
    assert len(run.decisions) == N
    assert len(run.analytics) == 5
    assert (run.analytics["revision"] == 2).all()
    assert set(run.dead_letters["reason_label"]) == {"schema", "future_event_time"}


def test_latency_percentiles_are_ordered_and_bucketed() -> None:
    fig = figures.latency(synthetic_run().decisions).figure
    p50, p95, p99 = (np.asarray(t.y) for t in fig.data)
    assert (p50 <= p95).all() and (p95 <= p99).all()
    assert len(p50) <= figures.MAX_BUCKETS


def test_throughput_counts_every_decision() -> None:
    run = synthetic_run()
    panel = figures.throughput(run.decisions)
    width_s = (
        figures.bucket_ms(
            int(run.decisions["received_time"].min()), int(run.decisions["received_time"].max())
        )
        / 1000
    )
    assert sum(panel.figure.data[0].y) * width_s == pytest.approx(N)


def test_decision_shares_draw_the_configured_and_expected_rates() -> None:
    run = synthetic_run()
    fig = figures.decision_shares(run.decisions, run.configured, {"block": 0.005}).figure
    lines = sorted(round(shape.y0, 4) for shape in fig.layout.shapes)
    assert lines == [0.2, 0.5, 1.0]  # configured block and step-up, expected block (percent)


def test_fraud_caught_and_missed_add_up_to_the_fraud_labels() -> None:
    run = synthetic_run()
    fig = figures.fraud_caught(run.decisions, run.labels).figure
    total = sum(sum(trace.y) for trace in fig.data)
    assert total == int(run.labels["is_fraud"].sum())
    assert set(fig.data[0].x) == {"card_testing", "account_takeover"}


def test_score_histograms_are_shares_of_each_group() -> None:
    run = synthetic_run()
    fig = figures.score_distribution(run.decisions, run.labels).figure
    assert len(fig.data) == 2
    for trace in fig.data:
        assert sum(trace.y) == pytest.approx(1.0)


def test_precision_recall_curve_of_each_model_names_its_average_precision() -> None:
    run = synthetic_run()
    fig = figures.precision_recall(run.predictions, run.labels, CARD).figure
    names = [t.name for t in fig.data]
    assert names[0].startswith("ensemble (AP ") and "test period 0.900" in names[0]
    assert {n.split(" ")[0] for n in names} == {"ensemble", *MODELS}
    for trace in fig.data:
        assert len(trace.x) <= figures.MAX_CURVE_POINTS
        assert max(trace.x) == pytest.approx(1.0)  # every fraud found at the lowest score


def test_pr_curve_matches_a_hand_count() -> None:
    recall, precision, ap = figures.pr_curve(np.array([0, 1, 1, 0]), np.array([0.9, 0.8, 0.8, 0.1]))
    assert list(recall) == [0.0, 1.0, 1.0]
    assert list(precision) == pytest.approx([0.0, 2 / 3, 0.5])
    assert ap == pytest.approx(2 / 3)


def test_reason_codes_are_counted_per_class() -> None:
    run = synthetic_run()
    fig = figures.reason_codes(run.decisions).figure
    total = sum(sum(t.x) for t in fig.data)
    assert total == sum(len(c) for c in run.decisions["reason_codes"])


def test_feature_drift_is_the_share_outside_the_card_range() -> None:
    run = synthetic_run()
    fig = figures.feature_drift(run.predictions, CARD).figure
    amounts = run.predictions["feature:amount"]
    expected = 100 * ((amounts < 1.0) | (amounts > 100.0)).mean()
    assert list(fig.data[0].x) == list(FEATURES)
    assert fig.data[0].y[0] == pytest.approx(expected)
    assert fig.data[0].y[1] == 0.0


def test_a_panel_without_data_says_why() -> None:
    empty = decisions_frame([])
    assert figures.latency(empty).missing == "no decisions: the decisions topic is empty"
    no_fraud = labels_frame([{"transaction_id": "t1", "label": "legit"}])
    run = synthetic_run()
    assert figures.fraud_caught(run.decisions, no_fraud).missing
    assert figures.feature_drift(run.predictions, {"version": "v9"}).missing == (
        "the model card records no feature ranges"
    )
    assert figures.windowed_analytics(analytics_frame([])).figure is None


def test_a_run_with_no_data_has_every_panel_saying_so() -> None:
    empty = figures.panels_order()
    assert [p.key for p in empty] == list(figures.SOURCES)
    assert all(p.figure is None and p.missing for p in empty)


def test_missing_sources_name_their_reason_on_the_page(tmp_path: Path) -> None:
    run = synthetic_run()
    bare = RunData(
        decisions=run.decisions,
        predictions=run.predictions,
        labels=run.labels,
        dead_letters=run.dead_letters,
        analytics=analytics_frame([]),
        cards=[],
        champion=None,
        configured=run.configured,
        missing={"analytics": "analytics off", "registry": "no model card in /nowhere"},
    )
    written = write_page(bare, tmp_path)
    text = written.path.read_text("utf-8")
    assert written.missing == {
        "drift": "the registry has no card of the model that decided",
        "analytics": "no window results: the analytics topic is empty (analytics off)",
    }
    assert "No data: no window results" in text
    assert "No data: no model card in /nowhere" in text


def test_the_page_is_self_contained(tmp_path: Path) -> None:
    written = write_page(synthetic_run(), tmp_path)
    text = written.path.read_text("utf-8")
    assert written.missing == {}
    assert text.count('<div class="plot"') == 10
    assert "<script src=" not in text and "<link" not in text  # plotly.js is inline
    assert len(text) < 8_000_000  # plotly.js (~4.7 MB) and aggregates only
    assert page.summary_rows(synthetic_run())[0] == ("decisions (first per decision_id)", f"{N:,}")
