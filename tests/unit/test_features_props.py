"""Properties: card windows equal a brute-force reading of the semantics for any arrival order.

Every windowed card count, sum and mean of the spec is checked against its own window, so a
window added to the spec is covered without editing this file."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from features.compute import compute_features
from features.params import FeatureParams
from schemas.feature_set import MS_PER_DAY, PAYMENT_FEATURES, Aggregation, Key
from tests.unit.features_helpers import T0, Tx

NO_EVICTION = FeatureParams(allowed_lateness_ms=400 * MS_PER_DAY, dedup_horizon_ms=0)
OFFSETS = st.lists(st.integers(0, 60 * MS_PER_DAY), min_size=1, max_size=30)
CARD_WINDOWED = [
    (f.name, f.aggregation, f.window.length_ms)
    for f in PAYMENT_FEATURES.features_of(Key.CARD)
    if f.window is not None
    and f.aggregation in (Aggregation.TX_COUNT, Aggregation.AMOUNT_SUM, Aggregation.AMOUNT_MEAN)
]


def test_the_spec_has_card_windows_to_check() -> None:
    assert {a for _, a, _ in CARD_WINDOWED} == {
        Aggregation.TX_COUNT,
        Aggregation.AMOUNT_SUM,
        Aggregation.AMOUNT_MEAN,
    }


@settings(max_examples=150, deadline=None)
@given(OFFSETS)
def test_windows_equal_brute_force(offsets: list[int]) -> None:
    events = [Tx(f"e{i}", T0 + off, amount=float(i + 1)) for i, off in enumerate(offsets)]
    rows = compute_features(events, NO_EVICTION)
    for k, (event, row) in enumerate(zip(events, rows, strict=True)):
        seen = [e for e in events[:k] if e.event_time <= event.event_time] + [event]
        values = row.as_dict()
        for name, aggregation, length in CARD_WINDOWED:
            inside = [e.amount for e in seen if event.event_time - e.event_time < length]
            expected = {
                Aggregation.TX_COUNT: len(inside),
                Aggregation.AMOUNT_SUM: sum(inside),
                Aggregation.AMOUNT_MEAN: sum(inside) / len(inside),
            }[aggregation]
            assert values[name] == expected, name
        previous = [e.event_time for e in events[:k] if e.event_time <= event.event_time]
        expected_gap = (event.event_time - max(previous)) / 1000 if previous else -1.0
        assert values["seconds_since_prev_by_card"] == expected_gap


WITHIN_DEDUP_HORIZON = st.lists(st.integers(0, MS_PER_DAY - 1), min_size=1, max_size=30)


@settings(max_examples=50, deadline=None)
@given(WITHIN_DEDUP_HORIZON)
def test_duplicates_never_change_later_features(offsets: list[int]) -> None:
    """Retries within the dedup horizon (of the card's newest event) are all recognised."""
    events = [Tx(f"e{i}", T0 + off, amount=float(i + 1)) for i, off in enumerate(offsets)]
    with_dups = [e for e in events for _ in range(2)]
    plain = compute_features(events)
    doubled = compute_features(with_dups)
    assert [r.values for r in doubled[::2]] == [r.values for r in plain]
    assert all(r.duplicate for r in doubled[1::2])
