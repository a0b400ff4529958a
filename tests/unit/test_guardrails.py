"""The guardrails' pure logic (scoring/guardrails.py) with explicit event times: out-of-range
inputs, windows, the safe mode and its hysteresis, alerts, and the model card's limits."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from core.config import GuardrailSettings
from core.errors import ConfigError, RegistryError
from schemas.validation import decode
from scoring.fields import APPROVE, BLOCK, STEP_UP
from scoring.guardrails import (
    OUT_OF_RANGE,
    SAFE_MODE_OFF,
    SAFE_MODE_ON,
    GuardrailPolicy,
    Guardrails,
    ModelLimits,
    Verdict,
    out_of_range,
    read_limits,
)

MINUTE = 60_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % MINUTE
LIMITS = ModelLimits(
    model_version="v0001",
    ranges=(("amount", 1.0, 400.0), ("count_1h", 0.0, 5.0)),
    expected_block=0.01,
    expected_step_up=0.05,
)
POLICY = GuardrailPolicy(
    window_ms=MINUTE,
    min_rows=100,
    trip_multiple=5.0,
    trip_ms=2 * MINUTE,
    recover_multiple=2.0,
    out_of_range_share=0.25,
)
NORMAL = {"amount": 50.0, "count_1h": 1.0}
SHIFTED = {"amount": 500.0, "count_1h": 1.0}


def _guard(policy: GuardrailPolicy = POLICY) -> Guardrails:
    return Guardrails(policy, lambda version: LIMITS, "test", subtask=1)


def _minute(
    guard: Guardrails,
    minute: int,
    blocks: int,
    *,
    rows: int = 200,
    features: dict[str, float] = NORMAL,
    full: bool = True,
) -> list[Verdict]:
    """``rows`` decisions spread over one minute of event time, the first ``blocks`` blocked
    (``full``: decided by the champion in full mode, not degraded)."""
    start = T0 + minute * MINUTE
    step = MINUTE // rows
    return [
        guard.observe(start + i * step, "v0001", BLOCK if i < blocks else APPROVE, features, full)
        for i in range(rows)
    ]


def _alerts(verdicts: list[Verdict]) -> list[str]:
    return [a.kind for v in verdicts for a in v.alerts]


def test_out_of_range_names_the_inputs_outside_their_training_range() -> None:
    ranges = LIMITS.ranges
    assert out_of_range(NORMAL, ranges) == []
    assert out_of_range({"amount": 1.0, "count_1h": 5.0}, ranges) == []  # bounds are inside
    assert out_of_range({"amount": 0.5, "count_1h": 6.0}, ranges) == ["amount", "count_1h"]
    assert out_of_range({"amount": float("nan"), "count_1h": None}, ranges) == [
        "amount",
        "count_1h",
    ]
    assert out_of_range({"count_1h": 1.0}, ranges) == ["amount"]  # missing: never seen


def test_a_decision_carries_its_out_of_range_inputs() -> None:
    guard = _guard()
    assert guard.observe(T0, "v0001", APPROVE, SHIFTED).out_of_range == ["amount"]
    assert guard.observe(T0 + 1, "v0001", APPROVE, NORMAL).out_of_range == []


def test_a_sustained_block_share_trips_the_safe_mode_after_trip_ms() -> None:
    guard = _guard()
    assert _alerts(_minute(guard, 0, blocks=2)) == []  # 1% = expected
    assert _alerts(_minute(guard, 1, blocks=20)) == []  # 10% > 5 x 1%: closes minute 0
    assert not guard.safe_mode
    minute_2 = _minute(guard, 2, blocks=20)  # closes minute 1: hot for 1 minute only
    assert _alerts(minute_2) == [] and not guard.safe_mode
    assert all(v.decision in (BLOCK, APPROVE) and not v.safe_mode for v in minute_2)
    minute_3 = _minute(guard, 3, blocks=20)  # closes minute 2: hot for 2 minutes = trip_ms
    assert _alerts(minute_3) == [SAFE_MODE_ON]
    assert guard.safe_mode
    # the first decision of minute 3 closed minute 2; from it on, blocks become step-ups
    assert minute_3[0].decision == STEP_UP and minute_3[0].safe_mode
    assert all(v.decision != BLOCK for v in minute_3)
    assert sum(v.safe_mode for v in minute_3) == 20 == guard.safe_mode_decisions
    alert = next(a for v in minute_3 for a in v.alerts)
    assert (alert.window_start, alert.window_end) == (T0 + 2 * MINUTE, T0 + 3 * MINUTE)
    assert alert.rows == 200 and alert.block_share == pytest.approx(0.1)
    assert alert.expected_block_share == 0.01 and alert.held_ms == 2 * MINUTE
    assert alert.safe_mode and alert.subtask == 1 and alert.model_version == "v0001"
    assert "safe mode on" in alert.message
    assert guard.gauges["block"] == pytest.approx(0.1)  # the model's share, before safe mode
    assert guard.gauges["safe_mode"] == 1.0


def test_degraded_decisions_neither_trip_nor_clear_the_safe_mode() -> None:
    """A shed stretch (a warm start's catch-up) blocked on the fast models and rules, tripped
    the safe mode, and at the demo's density nothing cleared it: the live minute blocked 0."""
    guard = _guard()
    for minute in range(5):
        _minute(guard, minute, blocks=40, full=False)  # 20% of degraded decisions blocked
    assert not guard.safe_mode
    for minute in range(5, 9):
        _minute(guard, minute, blocks=20)  # the champion's own: 10% > 5 x 1%
    assert guard.safe_mode
    shed = _minute(guard, 9, blocks=10, full=False)
    assert sum(v.safe_mode for v in shed) == 10  # still turned into step-ups
    for minute in range(10, 15):
        _minute(guard, minute, blocks=0, full=False)  # calm, but not the champion's
    assert guard.safe_mode


def test_the_safe_mode_ends_only_after_trip_ms_of_calm_windows() -> None:
    guard = _guard()
    for minute in range(3):
        _minute(guard, minute, blocks=30)
    assert guard.safe_mode  # tripped on closing minute 1 (hot for 2 minutes)
    _minute(guard, 3, blocks=3)  # closes minute 2: the model still blocks 15%, not calm
    # 3% is below the trip level but above recover_multiple x 1%: no recovery, streak reset
    assert _alerts(_minute(guard, 4, blocks=6)) == []  # closes minute 3 (1.5%): calm 1 min
    assert _alerts(_minute(guard, 5, blocks=1)) == []  # closes minute 4 (3%): not calm
    assert _alerts(_minute(guard, 6, blocks=1)) == []  # closes minute 5: calm 1 min
    assert guard.safe_mode
    leaving = _minute(guard, 7, blocks=1)  # closes minute 6: calm 2 min
    assert _alerts(leaving) == [SAFE_MODE_OFF]
    assert not guard.safe_mode
    assert leaving[0].decision == BLOCK and not leaving[0].safe_mode


def test_windows_with_too_few_rows_are_shown_but_not_judged() -> None:
    guard = _guard()
    for minute in range(5):
        assert _alerts(_minute(guard, minute, blocks=50, rows=99)) == []
    assert not guard.safe_mode
    assert guard.gauges["block"] == pytest.approx(50 / 99) and guard.gauges["rows"] == 99


def test_late_payments_count_in_the_open_window_and_the_clock_never_goes_back() -> None:
    guard = _guard()
    guard.observe(T0 + 5 * MINUTE, "v0001", APPROVE, NORMAL)
    guard.observe(T0, "v0001", BLOCK, NORMAL)  # late: counted in the open window
    window = guard.window
    assert window is not None and window.start_ms == T0 + 5 * MINUTE
    assert (window.rows, window.blocks) == (2, 1)


def test_a_shifted_stream_raises_one_out_of_range_alert_and_keeps_decisions() -> None:
    guard = _guard()
    verdicts = []
    for minute in range(5):
        verdicts += _minute(guard, minute, blocks=2, features=SHIFTED)
    kinds = _alerts(verdicts)
    assert kinds == [OUT_OF_RANGE]  # once while it lasts, not every window
    assert not guard.safe_mode
    assert sum(v.decision == BLOCK for v in verdicts) == 10
    alert = next(a for v in verdicts for a in v.alerts)
    assert alert.out_of_range_share == 1.0 and alert.out_of_range_features == {"amount": 200}
    assert guard.gauges["out_of_range"] == 1.0
    # it re-arms when the traffic comes back in range
    _minute(guard, 5, blocks=2)
    _minute(guard, 6, blocks=2, features=SHIFTED)
    later = [k for m in range(7, 10) for k in _alerts(_minute(guard, m, 2, features=SHIFTED))]
    assert later == [OUT_OF_RANGE]


def test_alerts_are_valid_contract_records_with_deterministic_ids() -> None:
    def run() -> list[bytes]:
        guard = _guard(GuardrailPolicy(window_ms=MINUTE, min_rows=10, trip_ms=0))
        verdicts = _minute(guard, 0, blocks=100, features=SHIFTED)
        verdicts += _minute(guard, 1, blocks=0)
        return [msgspec.json.encode(a) for v in verdicts for a in v.alerts]

    first = run()
    assert first == run()
    kinds = [decode("guardrail_alert", raw).kind for raw in first]
    assert kinds == [SAFE_MODE_ON, OUT_OF_RANGE]


def test_a_new_model_version_starts_fresh() -> None:
    loaded: list[str] = []

    def load(version: str) -> ModelLimits:
        loaded.append(version)
        return ModelLimits(version, LIMITS.ranges, 0.01, 0.05)

    guard = Guardrails(GuardrailPolicy(window_ms=MINUTE, min_rows=10, trip_ms=0), load, "t")
    _minute(guard, 0, blocks=100)
    _minute(guard, 1, blocks=0)
    assert guard.safe_mode
    verdict = guard.observe(T0 + 2 * MINUTE, "v0002", BLOCK, NORMAL)
    assert verdict.decision == BLOCK and not guard.safe_mode
    assert loaded == ["v0001", "v0002"]


def test_a_card_without_expected_shares_never_trips() -> None:
    empty = ModelLimits("v0001", (), 0.0, 0.0)
    guard = Guardrails(POLICY, lambda v: empty, "t")
    for minute in range(6):
        verdicts = _minute(guard, minute, blocks=200, features=SHIFTED)
        assert _alerts(verdicts) == [] and all(v.out_of_range == [] for v in verdicts)
    assert not guard.safe_mode


def test_limits_come_from_the_model_card(
    tmp_path: Path, fresh_registry: Callable[[Path], Path]
) -> None:
    registry = fresh_registry(tmp_path)
    limits = read_limits(registry, "v0001")
    assert limits.model_version == "v0001"
    names = [name for name, _, _ in limits.ranges]
    assert "amount" in names and len(names) == len(set(names))
    assert all(low <= high for _, low, high in limits.ranges)
    assert limits.expected_block > 0 and limits.expected_step_up > 0
    assert "shared_device" in limits.rules_never_fired
    with pytest.raises(RegistryError, match="cannot read model card"):
        read_limits(registry, "v0099")


def test_expected_shares_fall_back_to_the_out_of_fold_ones() -> None:
    card = {
        "version": "v0007",
        "inputs": ["amount"],
        "feature_ranges": {"features": {"amount": {"low": 1.0, "high": 9.0}}},
        "expected_decisions": {
            "block": 0.0,
            "step_up": 0.02,
            "train_out_of_fold": {"block": 0.002, "step_up": 0.01},
        },
    }
    limits = ModelLimits.from_card(card)
    assert (limits.expected_block, limits.expected_step_up) == (0.002, 0.02)
    assert limits.ranges == (("amount", 1.0, 9.0),)


def test_policy_from_settings_and_hysteresis_check() -> None:
    settings = GuardrailSettings(window_ms=30_000, trip_multiple=4.0, recover_multiple=1.5)
    policy = GuardrailPolicy.from_settings(settings)
    assert (policy.window_ms, policy.trip_multiple, policy.recover_multiple) == (30_000, 4.0, 1.5)
    with pytest.raises(ConfigError, match="recover_multiple"):
        GuardrailSettings(trip_multiple=2.0, recover_multiple=3.0)


def test_the_policy_pickles() -> None:
    """The decision step carries the policy to the workers; its state is built in open()."""
    assert pickle.loads(pickle.dumps(POLICY)) == POLICY
