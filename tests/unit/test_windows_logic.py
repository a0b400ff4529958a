"""Exact window results of the pure state machine on hand-built sequences with explicit times."""

from __future__ import annotations

import pickle
import random

import msgspec
import pytest

from core.errors import ConfigError
from schemas.records import WindowAnalytics
from udfs.analytics.encode import late_json, latest_revisions, window_json, window_record
from udfs.analytics.offline import final_windows
from udfs.analytics.records import ScoredPayment
from udfs.analytics.windows import (
    ADDED,
    DUPLICATE,
    TOO_LATE,
    KeyWindows,
    Totals,
    WindowParams,
    WindowResult,
    WindowSpec,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a whole hour
MIN = 60_000
LATENESS = 10 * MIN
NO_WATERMARK = -(2**63)


def pay(
    i: int,
    t: int,
    amount: float,
    decision: str | None = None,
    score: float | None = None,
    *,
    merchant: str = "m1",
) -> ScoredPayment:
    return ScoredPayment(f"e{i}", t, merchant, "5411", amount, decision, score)


def merchant_windows() -> KeyWindows:
    return KeyWindows(WindowSpec("merchant", MIN), "m1", LATENESS, dedup=True)


def test_on_time_window_fires_once_with_revision_1() -> None:
    w = merchant_windows()
    first = w.add(pay(1, T0 + 10_000, 10.0, "approve", 0.1), NO_WATERMARK)
    assert first.status == ADDED and first.result is None
    assert first.timers == (T0 + MIN - 1, T0 + MIN - 1 + LATENESS)
    assert w.add(pay(2, T0 + 20_000, 5.5, "block", 0.9), T0 + 5_000).result is None
    assert w.advance(T0 + MIN - 2) == []
    (fired,) = w.advance(T0 + MIN - 1)
    assert fired == WindowResult(
        "merchant", "m1", T0, T0 + MIN, 1, Totals(2, 1550, 1, 0, 1, 2, 10**12)
    )
    assert fired.totals.mean_score == 0.5 and fired.totals.amount_sum == 15.5
    assert w.advance(T0 + 2 * MIN) == []  # never fires twice without new data


def test_late_within_lateness_updates_with_revision_2_and_corrected_totals() -> None:
    w = merchant_windows()
    w.add(pay(1, T0 + 10_000, 10.0, "approve", 0.2), NO_WATERMARK)
    w.advance(T0 + 90_000)
    late = w.add(pay(2, T0 + 45_000, 4.0, "step_up", 0.6), T0 + 90_000)
    assert late.status == ADDED and late.timers == ()
    assert late.result == WindowResult(
        "merchant", "m1", T0, T0 + MIN, 2, Totals(2, 1400, 1, 1, 0, 2, 8 * 10**11)
    )
    assert late.result.totals.mean_score == 0.4
    # The last moment the window still takes updates: the watermark one ms before it closes.
    last = w.add(pay(3, T0 + 59_999, 1.0), T0 + MIN - 2 + LATENESS)
    assert last.result is not None and last.result.revision == 3
    assert last.result.totals.unscored == 1 and last.result.totals.mean_score == 0.4


def test_late_beyond_lateness_is_too_late_and_updates_nothing() -> None:
    w = merchant_windows()
    w.add(pay(1, T0 + 10_000, 10.0), NO_WATERMARK)
    w.advance(T0 + MIN - 1)
    closes = T0 + MIN - 1 + LATENESS
    assert w.advance(closes) == [] and w.windows == {}  # evicted by event time
    outcome = w.add(pay(2, T0 + 50_000, 3.0), closes + 5)
    assert outcome.status == TOO_LATE and outcome.result is None and outcome.timers == ()
    assert outcome.too_late is not None
    assert outcome.too_late.late_by_ms == closes + 5 - (T0 + 50_000)
    assert outcome.too_late.closed_since_ms == 5
    assert (outcome.too_late.window_start, outcome.too_late.window_end) == (T0, T0 + MIN)
    assert w.windows == {}


def test_late_event_into_a_window_that_never_fired_emits_revision_1_at_once() -> None:
    w = merchant_windows()
    outcome = w.add(pay(1, T0 + 10_000, 2.0), T0 + 3 * MIN)
    assert outcome.result is not None and outcome.result.revision == 1
    assert outcome.timers == (T0 + MIN - 1 + LATENESS,)


def test_duplicates_count_once() -> None:
    w = merchant_windows()
    w.add(pay(1, T0 + 10_000, 10.0), NO_WATERMARK)
    assert w.add(pay(1, T0 + 10_000, 10.0), NO_WATERMARK).status == DUPLICATE
    (fired,) = w.advance(T0 + MIN)
    assert fired.totals.transactions == 1


def test_state_round_trips_and_is_cleared_when_empty() -> None:
    w = merchant_windows()
    assert w.snapshot() is None
    w.add(pay(1, T0 + 10_000, 10.0), NO_WATERMARK)
    copy = merchant_windows().load(pickle.loads(pickle.dumps(w.snapshot())))
    assert copy.windows == w.windows
    assert pickle.loads(pickle.dumps(w)).windows == w.windows  # shipped to workers too


def test_sums_do_not_depend_on_arrival_order() -> None:
    rng = random.Random(3)
    payments = [
        pay(i, T0 + rng.randrange(3 * MIN), rng.uniform(0, 999), "approve", rng.random())
        for i in range(500)
    ]
    params = WindowParams()
    forward = final_windows(payments, params)
    backward = final_windows(list(reversed(payments)), params)
    assert forward == backward
    assert sum(t.transactions for (kind, _, _), t in forward.items() if kind == "global") == 500


def test_stream_over_shuffled_arrivals_equals_offline_plus_too_late() -> None:
    """Any arrival order: final revisions + too-late events == the offline windows."""
    rng = random.Random(11)
    payments = [
        pay(i, T0 + rng.randrange(60 * MIN), 1.0 + i % 7, merchant=f"m{i % 3}") for i in range(2000)
    ]
    arrivals = sorted(payments, key=lambda p: p.event_time + rng.choice([0, 0, 0, 5, 15]) * MIN)
    spec = WindowSpec("merchant", MIN)
    state = {m: KeyWindows(spec, m, LATENESS, dedup=True) for m in ("m0", "m1", "m2")}
    latest: dict[tuple[str, str, int], WindowResult] = {}
    too_late: list[ScoredPayment] = []
    watermark = NO_WATERMARK
    for p in arrivals:
        for windows in state.values():
            for result in windows.advance(watermark):
                latest[result.window_id] = result
        outcome = state[p.merchant_id].add(p, watermark)
        if outcome.result is not None:
            latest[outcome.result.window_id] = outcome.result
        if outcome.too_late is not None:
            too_late.append(p)
        watermark = max(watermark, p.event_time - 1)
    for windows in state.values():
        for result in windows.advance(2**62):
            latest[result.window_id] = result
    assert too_late, "the sequence must exercise too-late events"
    offline = final_windows(payments, WindowParams())
    merchants = {wid: t for wid, t in offline.items() if wid[0] == "merchant"}
    recombined = {wid: r.totals for wid, r in latest.items()}
    for p in too_late:
        wid = spec.window_id(p)
        recombined[wid] = recombined.get(wid, Totals()).add(p)
    assert recombined == merchants


def test_window_json_matches_the_contract_and_latest_revision_wins() -> None:
    r1 = WindowResult("global", "all", T0, T0 + MIN, 1, Totals(1, 1000, 0, 0, 0, 0, 0))
    r2 = WindowResult("global", "all", T0, T0 + MIN, 2, Totals(2, 1500, 0, 0, 0, 0, 0))
    decoded = [msgspec.json.decode(window_json(r, "test"), type=WindowAnalytics) for r in (r2, r1)]
    assert decoded[0] == window_record(r2, "test")
    assert decoded[0].event_id == f"global:all:{T0}:r2" and decoded[0].mean_score is None
    assert latest_revisions(decoded)[("global", "all", T0)].transactions == 2
    outcome = merchant_windows().add(pay(9, T0, 1.0), T0 + 20 * MIN)
    assert outcome.too_late is not None
    doc = msgspec.json.decode(late_json(pay(9, T0, 1.0), outcome.too_late, LATENESS, "test"))
    assert doc["late_by_ms"] == 20 * MIN and doc["key_kind"] == "merchant"


def test_bad_window_settings_are_refused_with_the_key() -> None:
    with pytest.raises(ConfigError, match="allowed_lateness_ms"):
        WindowParams(allowed_lateness_ms=-1)
    with pytest.raises(ConfigError, match="merchant_window_ms"):
        WindowParams(merchant_window_ms=2 * MIN, global_window_ms=MIN)
    with pytest.raises(ConfigError, match="window size"):
        WindowParams(mcc_window_ms=0)
