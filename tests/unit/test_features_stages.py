"""The per-stage entry points: driven by the spec, every feature set by name, exactly once."""

from __future__ import annotations

import math
import pickle

import pytest

from core.errors import FeatureSpecError
from features import card, device, stages, terminal
from features.params import FeatureParams
from features.plan import stage_features
from schemas.feature_set import (
    PAYMENT_FEATURES,
    Aggregation,
    FeatureValues,
    Key,
    PaymentFeatureValues,
)
from tests.unit.features_helpers import T0, Tx, online

PARAMS = FeatureParams()


def _unset() -> FeatureValues:
    """A value struct whose every field is NaN, so a feature no stage sets stays visible."""
    return PaymentFeatureValues(**dict.fromkeys(PAYMENT_FEATURES.names, math.nan))


def _run(tx: Tx, values: FeatureValues) -> None:
    card_state, terminal_state = card.CardState(), terminal.TerminalState()
    stages.event_values(tx, values)
    card.process(card_state, tx, PARAMS, values)
    stages.device_stage(tx, False, values, PARAMS, lambda _: device.DeviceState())
    stages.terminal_stage(terminal_state, tx, False, values, PARAMS)


@pytest.mark.parametrize("tx", [Tx("p", T0), online("o", T0, "d1")])
def test_the_stages_set_every_feature_of_the_spec(tx: Tx) -> None:
    values = _unset()
    _run(tx, values)
    unset = [n for n, v in values.as_dict().items() if math.isnan(v)]
    assert unset == []


def test_each_stage_writes_exactly_its_keys_features() -> None:
    assert set(stages.EVENT_NAMES) == {f.name for f in PAYMENT_FEATURES.features_of(Key.EVENT)}
    stage_names = (
        (Key.CARD, card.NAMES),
        (Key.DEVICE, device.NAMES),
        (Key.TERMINAL, terminal.NAMES),
    )
    for key, written_by in stage_names:
        assert written_by == tuple(f.name for f in PAYMENT_FEATURES.features_of(key))
    values = _unset()
    card.process(card.CardState(), Tx("p", T0), PARAMS, values)
    written = {n for n, v in values.as_dict().items() if not math.isnan(v)}
    assert written == set(card.NAMES)


def test_windows_and_retention_are_read_from_the_spec() -> None:
    def windows(key: Key, *aggregations: Aggregation) -> set[tuple[int, int]]:
        return {
            (f.window.length_ms, f.window.delay_ms)
            for f in PAYMENT_FEATURES.features_of(key)
            if f.window is not None and f.aggregation in aggregations
        }

    amount = (Aggregation.TX_COUNT, Aggregation.AMOUNT_SUM, Aggregation.AMOUNT_MEAN)
    assert {(w.length_ms, 0) for w in card.AMOUNT_WINDOWS} == windows(
        Key.CARD, *amount, Aggregation.AMOUNT_RATIO
    )
    all_card = windows(Key.CARD, *Aggregation)
    assert max(length for length, _ in all_card) == card.LONGEST_WINDOW_MS
    delayed = windows(Key.TERMINAL, *Aggregation)
    assert {(w.length_ms, w.delay_ms) for w in terminal.WINDOWS} == delayed
    assert max(length + delay for length, delay in delayed) == terminal.RETENTION_MS
    assert {(n, 0) for n, _ in device.DISTINCT_WINDOWS} == windows(
        Key.DEVICE, Aggregation.DISTINCT_CARDS
    )


def test_a_spec_feature_the_stage_cannot_compute_is_refused() -> None:
    with pytest.raises(FeatureSpecError, match="the card stage computes"):
        stage_features(Key.CARD, (Aggregation.TX_COUNT,))


def test_a_payment_without_a_device_reads_no_device_state() -> None:
    def load(device_id: str) -> device.DeviceState:
        raise AssertionError(f"loaded {device_id}")

    values = PaymentFeatureValues()
    assert stages.device_stage(Tx("p", T0), False, values, PARAMS, load) is None
    assert values.as_dict()["distinct_cards_by_device_1d"] == 1.0
    assert values.as_dict()["fraud_seen_by_device"] == 0.0
    state = device.DeviceState()
    with_device = online("o", T0, "d1")
    assert stages.device_stage(with_device, False, values, PARAMS, lambda _: state) is state
    assert stages.device_stage(with_device, True, values, PARAMS, lambda _: state) is None


def test_stage_records_pickle_between_operators() -> None:
    values, duplicate = stages.card_stage(card.CardState(), online("o", T0, "d1"), PARAMS)
    record = (online("o", T0, "d1"), values, duplicate, False, -1)
    assert pickle.loads(pickle.dumps(record)) == record
    assert stages.device_key(online("o", T0, "d1")) == "d1"
    assert stages.device_key(Tx("p", T0, card_id="c9")) == "card:c9"
