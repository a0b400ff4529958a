"""The pure helpers of the peers benchmark: percentiles, sustained rate, records, ratios."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.peer_loops import caught_up, decision_id, outputs, percentiles, sustained_rate
from bench.peers import HEADLINE_RATE, figures_of
from riskstream.support.factories import payment
from schemas.feature_set import PAYMENT_FEATURES
from schemas.validation import decode
from scoring import stacking
from scoring.fields import MODE_FULL, MODE_SHED
from scoring.scorer import BatchResult
from udfs.decisions import decision_id as job_decision_id


def test_percentiles_of_known_values() -> None:
    values = [float(v) for v in range(1, 101)]
    found = percentiles(values, (50, 99))
    assert found == {"p50_ms": 50.5, "p99_ms": float(np.percentile(values, 99))}


def test_percentiles_of_nothing_are_nan() -> None:
    found = percentiles([], (50, 95, 99))
    assert list(found) == ["p50_ms", "p95_ms", "p99_ms"]
    assert all(math.isnan(v) for v in found.values())


def test_sustained_rate_leaves_out_start_up_and_drain() -> None:
    # 1,000 records/s for 10 s, with a slow start and a long tail around them.
    steady = list(range(10_000, 20_000))
    stamps = [0, 5_000, *steady, 60_000]
    assert abs(sustained_rate(stamps) - 1_000) < 5


def test_sustained_rate_of_too_few_records_is_nan() -> None:
    assert math.isnan(sustained_rate([5]))


def test_decision_ids_are_the_scoring_jobs() -> None:
    assert decision_id("tx-9", "v0003") == job_decision_id("tx-9", "v0003")


def _result(decisions: list[str], mode: str = MODE_FULL) -> BatchResult:
    n = len(decisions)
    scores = {name: np.full(n, 0.25) for name in (stacking.RULES, *stacking.STACKED)}
    scores[stacking.STACKED[0]] = np.full(n, np.nan)
    return BatchResult(
        scores=scores,
        probability=np.array([0.1, 1.5][:n]),
        decision=np.array(decisions, dtype=object),
        reasons=np.array(["rule:large_amount;feature:amount"] * n, dtype=object),
        mode=mode,
    )


def test_outputs_are_valid_decision_and_prediction_log_records() -> None:
    tx = payment("tx-1", 1_700_000_000_000, card="card-7", device="dev-1")
    values = [1.0] * len(PAYMENT_FEATURES.names)
    values[0] = float("nan")
    result = _result(["approve", "block"])
    first = outputs(
        tx,
        values,
        False,
        result,
        0,
        version="v0001",
        source="peer",
        received_ms=1_700_000_000_100,
        now_ms=1_700_000_000_130,
    )
    decision = decode("decision", first.decision)
    log = decode("prediction_log", first.log)
    assert first.key == b"card-7" and not first.blocked
    assert decision.transaction_id == "tx-1" and decision.decision == "approve"
    assert decision.decision_id == job_decision_id("tx-1", "v0001")
    assert decision.received_time == 1_700_000_000_100
    assert decision.processing_latency_ms == 30 and not decision.degraded
    assert decision.reason_codes == ["rule:large_amount", "feature:amount"]
    assert log.features[PAYMENT_FEATURES.names[0]] is None
    assert log.model_scores[stacking.STACKED[0]] is None and not log.duplicate
    shed = _result(["approve", "block"], MODE_SHED)
    second = outputs(tx, values, True, shed, 1, version="v1", source="p", received_ms=5, now_ms=4)
    assert second.blocked
    assert decode("decision", second.decision).score == 1.0  # clamped
    assert decode("decision", second.decision).degraded
    assert decode("decision", second.decision).processing_latency_ms == 0


def test_figures_carry_units_and_ratios() -> None:
    def run(rate: float, p99: float) -> dict[str, Any]:
        at = {"p50_ms": p99 / 2, "p95_ms": p99 * 0.9, "p99_ms": p99}
        return {
            "throughput": {"events_per_s": rate},
            "latency": {HEADLINE_RATE: at, 500: {**at, "p99_ms": 10 * p99}},
        }

    figures = figures_of(
        {"plain": run(4_000, 10), "quix": run(1_000, 40), "riskstream": run(2_000, 20)}
    )
    assert figures["quix_events_per_s"] == 1_000
    assert figures["riskstream_p99_ms"] == 20
    assert figures["riskstream_over_quix_throughput_ratio"] == 2.0
    assert figures["riskstream_over_plain_throughput_ratio"] == 0.5
    assert figures["riskstream_over_quix_p99_ratio"] == 0.5
    assert figures["riskstream_over_plain_p99_ratio"] == 2.0
    assert figures[f"quix_rate{HEADLINE_RATE}_p99_ms"] == 40
    assert figures["quix_rate500_p99_ms"] == 400


def test_caught_up_needs_a_full_window_under_the_limit() -> None:
    start_up = [8_000.0] * 300
    assert not caught_up(start_up, 250, 500.0)
    assert not caught_up([5.0] * 10, 250, 500.0)  # too few decisions yet
    assert caught_up([*start_up, *([5.0] * 130)], 250, 500.0)  # the median is under the limit
