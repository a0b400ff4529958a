"""Realistic profile: each fraud scenario at its configured rate and with its pattern; delivery
and label shares as configured."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from core.config import SimulatorSettings
from training.simulator.catalog import HIGH_RISK_MCCS, haversine_km
from training.simulator.columns import DELIVERY_CODE, MS_PER_DAY, MS_PER_MIN, SCENARIO_CODE
from training.simulator.delivery import BASE_LATENCY_MS, LATE_MIN_MS
from training.simulator.fraud import RING_CARDS
from training.simulator.generate import Simulation, simulate
from training.simulator.labels import MIN_CHARGEBACK_DELAY_MS

SETTINGS = SimulatorSettings(
    profile="realistic",
    seed=7,
    days=60,
    cards=2_000,
    merchants=500,
    card_testing_rate=0.004,
    impossible_travel_rate=0.002,
    account_takeover_rate=0.003,
    fraud_ring_rate=0.003,
    compromised_merchant_rate=0.005,
    amount_spike_rate=0.002,
    out_of_order_share=0.03,
    late_share=0.01,
    late_max_s=6 * 3_600.0,
    duplicate_share=0.02,
    malformed_share=0.01,
    legit_label_share=0.1,
    chargeback_delay_days=10.0,
)
SCENARIO_RATES = {
    name: getattr(SETTINGS, f"{name}_rate")
    for name in (
        "card_testing", "impossible_travel", "account_takeover", "fraud_ring",
        "compromised_merchant", "amount_spike",
    )
}  # fmt: skip
IMPOSSIBLE_KMH = 900.0  # faster than an airliner
MIN_PATTERN_SHARE = 0.95  # share of rows that must show their scenario's pattern


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(SETTINGS)


def _rows(sim: Simulation, name: str) -> npt.NDArray[np.int64]:
    return np.flatnonzero(sim.transactions.scenario == SCENARIO_CODE[name])


@pytest.mark.parametrize("name", sorted(SCENARIO_RATES))
def test_each_scenario_is_present_at_its_rate(sim: Simulation, name: str) -> None:
    share = len(_rows(sim, name)) / len(sim.transactions)
    # Counts are round(rate * total) by construction; 2% relative covers the rounding.
    assert share == pytest.approx(SCENARIO_RATES[name], rel=0.02)


def _normal_median_amount(sim: Simulation) -> npt.NDArray[np.float64]:
    tx = sim.transactions
    normal = tx.scenario == 0
    medians = np.full(int(tx.card.max()) + 1, np.nan)
    order = np.argsort(tx.card[normal], kind="stable")
    cards, amounts = tx.card[normal][order], tx.amount[normal][order]
    bounds = np.searchsorted(cards, np.arange(len(medians) + 1))
    for card in range(len(medians)):
        if bounds[card + 1] > bounds[card]:
            medians[card] = np.median(amounts[bounds[card] : bounds[card + 1]])
    return medians


def test_card_testing_is_bursts_of_tiny_online_payments_from_one_device(sim: Simulation) -> None:
    tx, rows = sim.transactions, _rows(sim, "card_testing")
    assert (tx.amount[rows] <= 2.0).all()
    assert tx.online[rows].all()
    devices, sizes = np.unique(tx.device[rows], return_counts=True)
    assert sizes.min() >= 5
    assert not np.isin(devices, tx.device[tx.scenario == 0]).any()
    spans = [np.ptp(tx.event_time[rows][tx.device[rows] == d]) for d in devices]
    assert np.median(spans) < 30 * MS_PER_MIN


def test_impossible_travel_is_too_far_too_fast(sim: Simulation) -> None:
    tx = sim.transactions
    present = np.flatnonzero(~tx.online)
    order = present[np.lexsort((tx.event_time[present], tx.card[present]))]
    fraud_at = np.flatnonzero(tx.scenario[order] == SCENARIO_CODE["impossible_travel"])
    prev, cur = order[fraud_at - 1], order[fraud_at]
    first = tx.scenario[prev] != SCENARIO_CODE["impossible_travel"]  # later tries follow the first
    prev, cur = prev[first], cur[first]
    same_card = tx.card[prev] == tx.card[cur]
    km = haversine_km(tx.latitude[prev], tx.longitude[prev], tx.latitude[cur], tx.longitude[cur])
    hours = np.maximum(tx.event_time[cur] - tx.event_time[prev], 1) / 3_600_000
    assert (~tx.online[cur]).all()
    assert np.mean(same_card & (km / hours > IMPOSSIBLE_KMH)) >= MIN_PATTERN_SHARE


def test_account_takeover_is_new_device_unusual_category_high_amount(sim: Simulation) -> None:
    tx, rows = sim.transactions, _rows(sim, "account_takeover")
    normal = tx.scenario == 0
    assert tx.online[rows].all()
    assert np.isin(tx.mcc[rows], list(HIGH_RISK_MCCS)).all()
    assert not np.isin(tx.mcc[normal], list(HIGH_RISK_MCCS)).any()
    known = set(zip(tx.card[normal].tolist(), tx.device[normal].tolist(), strict=True))
    assert not any((c, d) in known for c, d in zip(tx.card[rows], tx.device[rows], strict=True))
    ratio = tx.amount[rows] / _normal_median_amount(sim)[tx.card[rows]]
    assert np.mean(ratio > 2.0) >= MIN_PATTERN_SHARE


def test_fraud_ring_devices_serve_many_cards(sim: Simulation) -> None:
    tx, rows = sim.transactions, _rows(sim, "fraud_ring")
    for device in np.unique(tx.device[rows]):
        cards = np.unique(tx.card[rows][tx.device[rows] == device])
        assert len(cards) >= RING_CARDS[0] - 1  # two ring picks may hit the same card


def test_compromised_merchants_are_few_card_present_shops_in_bounded_windows(
    sim: Simulation,
) -> None:
    tx, rows = sim.transactions, _rows(sim, "compromised_merchant")
    assert (~tx.online[rows]).all()
    merchants = np.unique(tx.merchant[rows])
    assert len(merchants) < len(rows) / 5
    for merchant in merchants:
        times = tx.event_time[rows][tx.merchant[rows] == merchant]
        assert np.ptp(times) < 60 * MS_PER_DAY


def test_amount_spikes_are_far_above_the_cards_habit(sim: Simulation) -> None:
    tx, rows = sim.transactions, _rows(sim, "amount_spike")
    ratio = tx.amount[rows] / _normal_median_amount(sim)[tx.card[rows]]
    assert np.mean(ratio > 4.0) >= MIN_PATTERN_SHARE


def test_delivery_shares_match_configuration(sim: Simulation) -> None:
    plan, n = sim.delivery, len(sim.transactions)
    counts = np.bincount(plan.kind, minlength=5)
    # Exact counts (sampled without replacement): tolerance is rounding, 1 record.
    for kind, share in (
        ("out_of_order", SETTINGS.out_of_order_share),
        ("late", SETTINGS.late_share),
        ("duplicate", SETTINGS.duplicate_share),
        ("malformed", SETTINGS.malformed_share),
    ):
        assert abs(counts[DELIVERY_CODE[kind]] - share * n) <= 1, kind
    assert (np.diff(plan.arrival_time) >= 0).all()


def test_delivery_kinds_behave_as_named(sim: Simulation) -> None:
    plan, tx = sim.delivery, sim.transactions
    event_time = tx.event_time[plan.source]
    delay = plan.arrival_time - event_time
    on_time = plan.kind == DELIVERY_CODE["on_time"]
    late = plan.kind == DELIVERY_CODE["late"]
    assert (delay[on_time] < BASE_LATENCY_MS[1]).all()
    assert (delay[late] >= LATE_MIN_MS).all()
    assert (delay[late] <= SETTINGS.late_max_s * 1_000).all()
    seen_before = np.concatenate([[np.iinfo(np.int64).min], np.maximum.accumulate(event_time)[:-1]])
    overtaken = event_time < seen_before
    ooo = plan.kind == DELIVERY_CODE["out_of_order"]
    assert overtaken[ooo].mean() >= MIN_PATTERN_SHARE
    assert overtaken[on_time].mean() < 0.05
    duplicated = plan.source[plan.kind == DELIVERY_CODE["duplicate"]]
    assert np.isin(duplicated, plan.source[on_time | late | ooo]).all()


def test_labels_arrive_days_later_at_configured_shares(sim: Simulation) -> None:
    tx, labels = sim.transactions, sim.labels
    assert np.array_equal(np.sort(labels.transaction[labels.fraud]), np.flatnonzero(tx.fraud))
    legit = labels.transaction[~labels.fraud]
    n_legit = int((~tx.fraud).sum())
    sd = np.sqrt(n_legit * SETTINGS.legit_label_share * (1 - SETTINGS.legit_label_share))
    assert abs(len(legit) - n_legit * SETTINGS.legit_label_share) <= 4 * sd
    delay = labels.event_time - tx.event_time[labels.transaction]
    chargeback = labels.label_type == 0
    assert (delay[chargeback] >= MIN_CHARGEBACK_DELAY_MS).all()
    assert delay[chargeback].mean() / MS_PER_DAY == pytest.approx(
        SETTINGS.chargeback_delay_days, rel=0.1
    )
    assert (delay > 0).all()
    assert (np.diff(labels.event_time) >= 0).all()
