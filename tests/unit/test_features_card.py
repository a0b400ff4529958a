"""Exact card features on hand-built sequences: order, windows, duplicates, lateness, eviction."""

from __future__ import annotations

import pytest

from features import card, stages
from features.compute import compute_features
from features.params import FeatureParams, is_late
from schemas.feature_set import MISSING
from tests.unit.features_helpers import MIN, T0, D, H, Tx, online

ONE_DEGREE_KM = 111.19508


def rows_by_id(events: list[Tx]) -> dict[str, dict[str, float]]:
    return {r.event_id: r.as_dict() for r in compute_features(events)}


def test_in_order_windows_include_the_current_payment() -> None:
    rows = rows_by_id(
        [
            Tx("e1", T0, amount=10),
            Tx("e2", T0 + 30 * MIN, amount=20),
            Tx("e3", T0 + 2 * H, amount=40),
        ]
    )
    e3 = rows["e3"]
    assert (e3["tx_count_by_card_1h"], e3["amount_sum_by_card_1h"]) == (1, 40)
    assert e3["amount_mean_by_card_1h"] == 40
    assert (e3["tx_count_by_card_1d"], e3["amount_sum_by_card_1d"]) == (3, 70)
    assert e3["amount_mean_by_card_30d"] == pytest.approx(70 / 3)
    assert e3["amount_ratio_by_card_30d"] == pytest.approx(40 / (70 / 3))
    assert e3["seconds_since_prev_by_card"] == 5400.0
    first = rows["e1"]
    assert first["tx_count_by_card_30d"] == 1
    assert first["seconds_since_prev_by_card"] == MISSING
    assert first["km_from_prev_cp_by_card"] == MISSING
    assert first["km_from_usual_by_card_30d"] == MISSING
    assert (first["hour_of_day"], first["is_weekend"], first["is_night"]) == (12, 0, 0)


def test_out_of_order_uses_only_earlier_arrivals_not_after_the_event() -> None:
    rows = rows_by_id(
        [
            Tx("e1", T0, amount=10),
            Tx("e3", T0 + 2 * H, amount=40),
            Tx("e2", T0 + 30 * MIN, amount=20),
        ]
    )
    assert (rows["e3"]["tx_count_by_card_1d"], rows["e3"]["amount_sum_by_card_1d"]) == (2, 50)
    assert rows["e3"]["seconds_since_prev_by_card"] == 7200.0
    # e3 arrived first but lies after e2: it is not part of e2's features.
    assert (rows["e2"]["tx_count_by_card_1d"], rows["e2"]["amount_sum_by_card_1d"]) == (2, 30)
    assert rows["e2"]["seconds_since_prev_by_card"] == 1800.0


def test_window_boundaries_are_half_open() -> None:
    rows = rows_by_id([Tx("a", T0), Tx("b", T0 + H), Tx("c", T0 + 2 * H - 1)])
    assert rows["b"]["tx_count_by_card_1h"] == 1  # a is exactly 1 h older: (t - 1h, t] excludes it
    assert rows["c"]["tx_count_by_card_1h"] == 2
    same_time = rows_by_id([Tx("a", T0), Tx("b", T0)])
    assert same_time["b"]["tx_count_by_card_1h"] == 2
    assert same_time["b"]["seconds_since_prev_by_card"] == 0.0
    day = rows_by_id([Tx("a", T0), Tx("b", T0 + D), Tx("c", T0 + 30 * D)])
    assert day["b"]["tx_count_by_card_1d"] == 1 and day["b"]["tx_count_by_card_7d"] == 2
    assert day["c"]["tx_count_by_card_30d"] == 2  # b is 29 d older, a exactly 30 d


def test_duplicates_are_flagged_and_never_counted_twice() -> None:
    rows = compute_features(
        [
            Tx("e1", T0, amount=10),
            Tx("e2", T0 + MIN, amount=20),
            Tx("e1", T0, amount=10),
            Tx("e3", T0 + 2 * MIN, amount=5),
        ]
    )
    flags = [r.duplicate for r in rows]
    assert flags == [False, False, True, False]
    dup = rows[2].as_dict()
    assert (dup["tx_count_by_card_1h"], dup["amount_sum_by_card_1h"]) == (1, 10)
    e3 = rows[3].as_dict()
    assert (e3["tx_count_by_card_1h"], e3["amount_sum_by_card_1h"]) == (3, 35)


def test_duplicate_after_the_dedup_horizon_counts_as_new() -> None:
    params = FeatureParams(dedup_horizon_ms=H)
    rows = compute_features([Tx("e1", T0), Tx("e2", T0 + 2 * H), Tx("e1", T0)], params)
    assert [r.duplicate for r in rows] == [False, False, False]
    assert rows[2].as_dict()["tx_count_by_card_1d"] == 2  # e1 again, e2 is after it


def test_late_beyond_allowed_lateness_is_still_computed_and_flagged() -> None:
    params = FeatureParams(allowed_lateness_ms=H)
    watermark = T0 + 5 * H
    late = Tx("late", T0 + 3 * H, amount=7)
    assert is_late(late.event_time, watermark, params.allowed_lateness_ms)
    assert not is_late(T0 + 4 * H, watermark, params.allowed_lateness_ms)
    rows = rows_by_id([Tx("a", T0 + 2 * H + 30 * MIN), Tx("b", T0 + 5 * H), late])
    assert rows["late"]["tx_count_by_card_1h"] == 2  # a and itself; b is after it
    assert rows["late"]["amount_sum_by_card_1d"] == 17


def test_eviction_by_event_time_and_what_a_very_late_event_then_sees() -> None:
    params = FeatureParams(allowed_lateness_ms=H)
    state = card.CardState()
    for tx in (Tx("a", T0), Tx("b", T0 + 10 * D), Tx("c", T0 + 30 * D + 2 * H)):
        stages.card_stage(state, tx, params)
    assert list(state.times) == [T0 + 10 * D, T0 + 30 * D + 2 * H]  # a fell out of 30d + lateness
    very_late = Tx("z", T0 + H)
    values, duplicate = stages.card_stage(state, very_late, params)
    out = values.as_dict()
    assert not duplicate and out["tx_count_by_card_1d"] == 1  # a is gone: only itself
    assert "a" not in state.ids


def test_profile_and_dedup_entries_are_evicted() -> None:
    params = FeatureParams(profile_retention_ms=10 * D, dedup_horizon_ms=D)
    state = card.CardState()
    stages.card_stage(state, Tx("a", T0, mcc="1111"), params)
    stages.card_stage(state, Tx("b", T0 + 11 * D, mcc="2222"), params)
    assert set(state.mccs) == {"2222"} and set(state.ids) == {"b"}


def test_location_speed_and_usual_place() -> None:
    rows = rows_by_id(
        [
            Tx("a", T0, latitude=0.0, longitude=0.0),
            online("o", T0 + 30 * MIN, "d1", latitude=50.0, longitude=50.0),
            Tx("b", T0 + H, latitude=0.0, longitude=1.0),
            Tx("c", T0 + H, latitude=0.0, longitude=1.0),
        ]
    )
    b = rows["b"]
    assert b["km_from_prev_cp_by_card"] == pytest.approx(ONE_DEGREE_KM, rel=1e-6)
    assert b["kmh_from_prev_cp_by_card"] == pytest.approx(ONE_DEGREE_KM, rel=1e-6)
    assert b["km_from_usual_by_card_30d"] == pytest.approx(ONE_DEGREE_KM, rel=1e-6)
    assert rows["o"]["km_from_prev_cp_by_card"] == MISSING  # online: no card-present distance
    assert rows["o"]["km_from_usual_by_card_30d"] > 5000
    c = rows["c"]  # same second as b: distance 0, speed uses the 60 s floor
    assert c["km_from_prev_cp_by_card"] == 0.0 and c["kmh_from_prev_cp_by_card"] == 0.0
    assert c["km_from_usual_by_card_30d"] == pytest.approx(ONE_DEGREE_KM / 2, rel=1e-3)


def test_new_merchant_category_and_new_device() -> None:
    rows = rows_by_id(
        [
            Tx("a", T0, mcc="5411"),
            online("b", T0 + H, "d1", mcc="5411"),
            online("c", T0 + 2 * H, "d1", mcc="7995"),
            online("x", T0 + 30 * MIN, "d2", mcc="7995"),  # arrives late: 7995 seen only after it
        ]
    )
    assert rows["a"]["is_new_mcc_by_card"] == 1 and rows["a"]["is_new_device_by_card"] == 0
    assert rows["b"]["is_new_mcc_by_card"] == 0 and rows["b"]["is_new_device_by_card"] == 1
    assert rows["c"]["is_new_mcc_by_card"] == 1 and rows["c"]["is_new_device_by_card"] == 0
    assert rows["x"]["is_new_mcc_by_card"] == 1 and rows["x"]["is_new_device_by_card"] == 1


def test_state_blob_round_trips_and_stays_small() -> None:
    state = card.CardState()
    for i in range(120):
        stages.card_stage(state, Tx(f"e{i}", T0 + i * 6 * H, amount=12.5), FeatureParams())
    blob = card.encode(state)
    assert card.decode(blob) == state
    assert card.decode(None) == card.CardState()
    assert len(blob) < 50 * len(state.times)  # ~18 bytes per payment + dedup ids
