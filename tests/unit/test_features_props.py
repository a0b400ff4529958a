"""Properties: card windows equal a brute-force reading of the semantics for any arrival order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from features.card import WINDOWS_MS
from features.compute import compute_features
from features.params import FeatureParams
from schemas.feature_set import MS_PER_DAY
from tests.unit.features_helpers import T0, Tx

NO_EVICTION = FeatureParams(allowed_lateness_ms=400 * MS_PER_DAY, dedup_horizon_ms=0)
OFFSETS = st.lists(st.integers(0, 60 * MS_PER_DAY), min_size=1, max_size=30)
LABELS = ("1h", "1d", "7d", "30d")


@settings(max_examples=150, deadline=None)
@given(OFFSETS)
def test_windows_equal_brute_force(offsets: list[int]) -> None:
    events = [Tx(f"e{i}", T0 + off, amount=float(i + 1)) for i, off in enumerate(offsets)]
    rows = compute_features(events, NO_EVICTION)
    for k, (event, row) in enumerate(zip(events, rows, strict=True)):
        seen = [e for e in events[:k] if e.event_time <= event.event_time] + [event]
        values = row.as_dict()
        for length, label in zip(WINDOWS_MS, LABELS, strict=True):
            inside = [e for e in seen if event.event_time - e.event_time < length]
            assert values[f"tx_count_by_card_{label}"] == len(inside)
            assert values[f"amount_sum_by_card_{label}"] == sum(e.amount for e in inside)
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
