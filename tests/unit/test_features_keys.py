"""Device and terminal features, driven by label events that arrive days later; pickling."""

from __future__ import annotations

import pickle

import pytest

from features import card, device, stages, terminal
from features.compute import FeaturePipeline, FeatureRow, compute_features
from features.params import FeatureParams
from schemas.feature_set import PaymentFeatureValues
from tests.unit.features_helpers import MIN, T0, D, H, Label, Tx, online


def by_id(events: list[Tx | Label]) -> dict[str, dict[str, float]]:
    return {r.event_id: r.as_dict() for r in compute_features(events)}


def test_distinct_cards_per_device_over_24h() -> None:
    rows = by_id(
        [
            online("a1", T0, "d", card_id="A"),
            online("b1", T0 + H, "d", card_id="B"),
            online("a2", T0 + 2 * H, "d", card_id="A"),
            online("z1", T0 + 30 * MIN, "d", card_id="Z"),  # out of order: sees only a1
            online("c1", T0 + 25 * H, "d", card_id="C"),
        ]
    )
    assert rows["a1"]["distinct_cards_by_device_1d"] == 1
    assert rows["a2"]["distinct_cards_by_device_1d"] == 2
    assert rows["c1"]["distinct_cards_by_device_1d"] == 2  # b1 is exactly 24 h older: out
    assert rows["z1"]["distinct_cards_by_device_1d"] == 2
    card_present = by_id([Tx("p", T0)])["p"]
    assert card_present["distinct_cards_by_device_1d"] == 1
    assert card_present["fraud_seen_by_device"] == 0


def test_device_fraud_label_counts_after_it_is_known_and_has_arrived() -> None:
    events: list[Tx | Label] = [
        online("a1", T0, "d", card_id="A"),
        online("early", T0 + 4 * D, "d", card_id="B"),  # arrives before the label
        Label(T0 + 3 * D, "a1", T0, device_id="d"),
        online("before_known", T0 + 2 * D, "d", card_id="B"),  # label known only at T0 + 3 d
        online("after", T0 + 4 * D, "d", card_id="C"),
        online("other_device", T0 + 4 * D, "e", card_id="C"),
    ]
    rows = by_id(events)
    assert rows["early"]["fraud_seen_by_device"] == 0
    assert rows["before_known"]["fraud_seen_by_device"] == 0
    assert rows["after"]["fraud_seen_by_device"] == 1
    assert rows["other_device"]["fraud_seen_by_device"] == 0


def test_legit_labels_change_nothing() -> None:
    events: list[Tx | Label] = [
        online("a1", T0, "d"),
        Label(T0 + D, "a1", T0, device_id="d", label="legit"),
        online("a2", T0 + 8 * D, "d"),
    ]
    row = by_id(events)["a2"]
    assert row["fraud_seen_by_device"] == 0 and row["fraud_rate_by_terminal_1d_delay7d"] == 0


def test_terminal_delayed_windows_and_fraud_rate_from_late_labels() -> None:
    events: list[Tx | Label] = [
        Tx("a", T0, card_id="A"),
        Tx("b", T0 + 12 * H, card_id="B"),
        Tx("c", T0 - 3 * D, card_id="C"),
        Tx("q_before", T0 + 7 * D + 13 * H, card_id="Q"),  # before the label arrives
        Label(T0 + 5 * D, "b", T0 + 12 * H),  # chargeback known 4.5 days after the payment
        Label(T0 + 6 * D, "b", T0 + 12 * H),  # a repeated label for b counts once
        Tx("q", T0 + 7 * D + 13 * H, card_id="Q"),
        Label(T0 + 8 * D, "a", T0),
        Tx("q_same", T0 + 7 * D + 13 * H, card_id="Q"),  # a's label became known after t
        Tx("q_later", T0 + 8 * D + 1 * H, card_id="Q"),
    ]
    rows = by_id(events)
    q = rows["q"]  # windows end at T0 + 13 h
    assert (q["tx_count_by_terminal_1d_delay7d"], q["fraud_rate_by_terminal_1d_delay7d"]) == (
        2,
        0.5,
    )
    assert q["tx_count_by_terminal_7d_delay7d"] == 3
    assert q["fraud_rate_by_terminal_7d_delay7d"] == pytest.approx(1 / 3)
    assert rows["q_before"]["fraud_rate_by_terminal_1d_delay7d"] == 0
    assert rows["q_before"]["tx_count_by_terminal_1d_delay7d"] == 2
    assert rows["q_same"]["fraud_rate_by_terminal_7d_delay7d"] == pytest.approx(1 / 3)
    later = rows["q_later"]  # windows end at T0 + 1 d + 1 h
    assert (
        later["tx_count_by_terminal_1d_delay7d"],
        later["fraud_rate_by_terminal_1d_delay7d"],
    ) == (1, 1.0)
    assert later["fraud_rate_by_terminal_7d_delay7d"] == pytest.approx(2 / 3)
    assert rows["a"]["tx_count_by_terminal_30d_delay7d"] == 0


def test_terminal_state_evicts_payments_and_labels_by_event_time() -> None:
    params = FeatureParams(allowed_lateness_ms=H)
    state = terminal.TerminalState()
    stages.terminal_stage(state, Tx("a", T0), False, PaymentFeatureValues(), params)
    terminal.add_label(state, Label(T0 + D, "a", T0), params)
    assert "a" in state.frauds
    stages.terminal_stage(state, Tx("b", T0 + 38 * D), False, PaymentFeatureValues(), params)
    assert list(state.times) == [T0 + 38 * D] and state.frauds == {}
    assert terminal.decode(terminal.encode(state)) == state


def test_duplicates_do_not_count_in_device_or_terminal_state() -> None:
    rows = compute_features(
        [
            online("a", T0, "d", card_id="A"),
            online("a", T0, "d", card_id="A"),
            online("b", T0 + 8 * D, "d", card_id="A"),
        ]
    )
    assert rows[1].duplicate
    assert rows[2].as_dict()["tx_count_by_terminal_7d_delay7d"] == 1


def test_results_do_not_depend_on_labels_for_unrelated_keys() -> None:
    base: list[Tx | Label] = [online("a", T0, "d"), online("b", T0 + 9 * D, "d")]
    noisy: list[Tx | Label] = [
        base[0],
        Label(T0 + D, "x", T0, terminal_id="t9", device_id="d9"),
        base[1],
    ]
    assert [r.values for r in compute_features(base)] == [r.values for r in compute_features(noisy)]


def test_pickle_round_trip_of_everything_shipped_to_workers() -> None:
    pipeline = FeaturePipeline()
    pipeline.transaction(online("a", T0, "d"))
    pipeline.label(Label(T0 + D, "a", T0, device_id="d"))
    shipped: list[object] = [
        FeatureParams(allowed_lateness_ms=5),
        pipeline.cards["c1"],
        pipeline.devices["d"],
        pipeline.terminals["t1"],
        FeatureRow("a", T0, "c1", (1.0, 2.0), duplicate=True),
    ]
    for obj in shipped:
        assert pickle.loads(pickle.dumps(obj)) == obj
    assert card.decode(card.encode(pipeline.cards["c1"])) == pipeline.cards["c1"]
    assert device.decode(device.encode(pipeline.devices["d"])) == pipeline.devices["d"]
