"""The decision step with its guardrails (udfs/decisions.py + udfs/guardrails.py), without a JVM:
the out-of-range field, the safe mode on the decision and prediction log, the alert side output,
and the gauges and counters under the names of the metric table."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle  # type: ignore[import-untyped]
import pytest
from pyflink.common import Row

from schemas.feature_set import PAYMENT_FEATURES
from schemas.validation import decode
from scoring import stacking
from scoring.guardrails import SAFE_MODE_REASON, GuardrailPolicy, read_limits
from udfs import metrics
from udfs.decisions import (
    ALERTS_TAG,
    GUARDRAIL_TAG,
    PREDICTION_LOG_TAG,
    DecisionOutputs,
    scored_row,
)
from udfs.feature_rows import Passthrough
from udfs.guardrails import DecisionGuard

MINUTE = 60_000
T0 = 1_800_000_000_000
ROWS = 20


class FakeMetric:
    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n

    def update(self, value: int) -> None:
        self.value = value


class FakeGroup:
    """Records metrics under their Prometheus names, as Flink's reporter builds them."""

    def __init__(self, registry: dict[str, FakeMetric], path: tuple[str, ...] = ()) -> None:
        self.registry, self.path = registry, path

    def add_group(self, name: str, extra: str | None = None) -> FakeGroup:
        return FakeGroup(self.registry, (*self.path, name))

    def counter(self, name: str) -> FakeMetric:
        return self.registry.setdefault(metrics.operator_metric(name, *self.path), FakeMetric())

    distribution = counter


class Context:
    def __init__(self, registry: dict[str, FakeMetric]) -> None:
        self.registry = registry

    def get_metrics_group(self) -> FakeGroup:
        return FakeGroup(self.registry)

    def get_index_of_this_subtask(self) -> int:
        return 0


def _row(event_time: int, decision: str, features: dict[str, float]) -> Row:
    record = Passthrough(
        f"tx-{event_time}",
        event_time,
        "c-1",
        "card-1",
        "m-1",
        "5411",
        False,
        False,
        3,
        event_time,
        event_time,
    )
    return scored_row(
        record,
        [features[name] for name in PAYMENT_FEATURES.names],
        probability=0.9 if decision == "block" else 0.01,
        scores=[0.5] * len(stacking.STACKED),
        decision=decision,
        mode="full",
        reasons="rule:large_amount",
        model_version="v0001",
    )


@pytest.fixture
def step(
    tmp_path: Path, fresh_registry: Callable[[Path], Path]
) -> Iterator[tuple[DecisionOutputs, dict[str, FakeMetric], dict[str, float]]]:
    registry = fresh_registry(tmp_path)
    limits = read_limits(registry, "v0001")
    inside = {name: (low + high) / 2 for name, low, high in limits.ranges}
    features = {name: inside.get(name, 0.0) for name in PAYMENT_FEATURES.names}
    policy = GuardrailPolicy(window_ms=MINUTE, min_rows=ROWS, trip_ms=0)
    guard = DecisionGuard(policy, str(registry), "src")
    function = DecisionOutputs("src", analytics=False, guard=guard, guardrail_alerts=True)
    function = cloudpickle.loads(cloudpickle.dumps(function))  # as Flink ships it
    registry_metrics: dict[str, FakeMetric] = {}
    function.open(Context(registry_metrics))
    yield function, registry_metrics, features


def _minute(
    function: DecisionOutputs, minute: int, decision: str, features: dict[str, float]
) -> list[Any]:
    out: list[Any] = []
    for i in range(ROWS):
        out += function.process_element(_row(T0 + minute * MINUTE + i, decision, features), None)
    return out


def test_a_shifted_stream_is_marked_and_trips_the_safe_mode(
    step: tuple[DecisionOutputs, dict[str, FakeMetric], dict[str, float]],
) -> None:
    function, registry, inside = step
    shifted = {**inside, "amount": inside["amount"] * 1_000}
    first = _minute(function, 0, "block", shifted)
    decisions = [json.loads(o) for o in first if isinstance(o, str)]
    assert all(d["decision"] == "block" and not d["degraded"] for d in decisions)
    assert all(d["out_of_range_features"] == ["amount"] for d in decisions)
    second = _minute(function, 1, "block", inside)  # its first row closes minute 0: trips
    decisions = [json.loads(o) for o in second if isinstance(o, str)]
    assert all(d["decision"] == "step_up" and d["degraded"] for d in decisions)
    assert all(d["reason_codes"][0] == SAFE_MODE_REASON for d in decisions)
    assert all(d["out_of_range_features"] == [] for d in decisions)
    assert all(decode("decision", json.dumps(d)) for d in decisions)
    tags = [o[0] for o in second if isinstance(o, tuple)]
    assert ALERTS_TAG not in tags  # nothing is blocked in safe mode
    logs = [json.loads(o[1]) for o in second if isinstance(o, tuple) and o[0] == PREDICTION_LOG_TAG]
    assert all(log["decision"] == "step_up" and log["degraded"] for log in logs)
    alerts = [decode("guardrail_alert", o[1]) for o in second if o[0:1] == (GUARDRAIL_TAG,)]
    assert [a.kind for a in alerts] == ["safe_mode_on", "out_of_range"]
    assert alerts[0].block_share == 1.0 and alerts[1].out_of_range_features == {"amount": ROWS}

    def metric(name: str, *labels: str) -> int:
        return registry[metrics.operator_metric(name, metrics.GROUP, *labels)].value

    assert metric(metrics.GUARDRAIL_SAFE_MODE) == 1
    assert metric(metrics.GUARDRAIL_BLOCK_SHARE) == 1_000_000
    assert metric(metrics.GUARDRAIL_OUT_OF_RANGE_SHARE) == 1_000_000
    assert metric(metrics.GUARDRAIL_WINDOW_ROWS) == ROWS
    assert metric(metrics.GUARDRAIL_SAFE_MODE_DECISIONS) == ROWS
    assert metric(metrics.GUARDRAIL_ALERTS, metrics.LABEL_KIND) == 2
    documented = {m.name for m in metrics.METRICS}
    assert {k for k in registry if "guardrail" in k} <= documented


def test_without_guardrails_the_decision_has_no_range_field() -> None:
    from tests.unit.test_scoring_policy import _scored_row

    out = list(DecisionOutputs("src", analytics=False).process_element(_scored_row("block"), None))
    assert "out_of_range_features" not in json.loads(out[0])
