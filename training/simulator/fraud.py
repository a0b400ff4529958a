"""Fraud scenarios of the realistic profile, each injected at a configured share of transactions.

Every scenario is built from incidents (a burst, a takeover, a ring ...) whose sizes are drawn and
then trimmed so that the scenario's transaction count equals ``round(rate * total)`` exactly; the
patterns inside each incident are what the tests check and what the models must learn.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from training.simulator.catalog import CITIES, haversine_km
from training.simulator.columns import (
    F64,
    I64,
    MS_PER_DAY,
    MS_PER_HOUR,
    MS_PER_MIN,
    NO_DEVICE,
    SCENARIO_CODE,
    Transactions,
)
from training.simulator.realistic import AMOUNT_DECIMALS, COORDINATE_DECIMALS, pick_in_city
from training.simulator.realistic import terminal_of as _terminal_of
from training.simulator.world import World

CARD_TEST_BURST = (5, 20)  # transactions per burst
CARD_TEST_GAP_MS = 20_000  # mean gap between tries
CARD_TEST_AMOUNT = (0.5, 2.0)
TRAVEL_BURST = (1, 2)
MIN_TRAVEL_KM = 800.0
TRAVEL_DELAY_MS = (5 * MS_PER_MIN, 30 * MS_PER_MIN)
TRAVEL_AMOUNT_FACTOR = (1.0, 4.0)
TAKEOVER_BURST = (1, 4)
TAKEOVER_GAP_MS = (2 * MS_PER_MIN, 15 * MS_PER_MIN)
TAKEOVER_AMOUNT_FACTOR = (5.0, 15.0)
RING_CARDS = (5, 15)
RING_SPAN_MS = 3 * MS_PER_DAY
RING_AMOUNT_FACTOR = (1.0, 3.0)
SPIKE_DELAY_MS = (MS_PER_HOUR, 24 * MS_PER_HOUR)
SPIKE_AMOUNT_FACTOR = (10.0, 30.0)
COMPROMISE_DAYS = (7, 21)
ATTACKER_JITTER_DEG = 0.05
MAX_COMPROMISE_TRIES = 100_000


def incident_sizes(gen: np.random.Generator, target: int, low: int, high: int) -> I64:
    """Sizes in ``[low, high]`` summing to ``target``; a short remainder joins the last incident."""
    if target <= 0:
        return np.zeros(0, dtype=np.int64)
    sizes = gen.integers(low, high + 1, target // low + 1)
    cut = int(np.searchsorted(np.cumsum(sizes), target))
    sizes = sizes[: cut + 1].copy()
    sizes[-1] -= int(sizes.sum()) - target
    if len(sizes) > 1 and sizes[-1] < low:
        sizes[-2] += sizes[-1]
        sizes = sizes[:-1]
    return sizes.astype(np.int64)


def _layout(sizes: I64) -> tuple[I64, I64]:
    """(incident of each row, position of the row inside its incident)."""
    incident = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return incident, np.arange(int(sizes.sum()), dtype=np.int64) - starts[incident]


def _starts(gen: np.random.Generator, span: tuple[int, int], room_ms: int, k: int) -> I64:
    """Incident starts leaving ``room_ms`` before the end of the span (if it is long enough)."""
    return gen.integers(span[0], max(span[0] + 1, span[1] - room_ms), k).astype(np.int64)


def _attacker_location(gen: np.random.Generator, n: int) -> tuple[F64, F64]:
    city = gen.integers(0, len(CITIES), n)
    lat = np.array([c.latitude for c in CITIES])[city] + gen.normal(0, ATTACKER_JITTER_DEG, n)
    lon = np.array([c.longitude for c in CITIES])[city] + gen.normal(0, ATTACKER_JITTER_DEG, n)
    return lat, lon


def _rows(
    world: World,
    scenario: str,
    *,
    event_time: I64,
    card: I64,
    merchant: I64,
    terminal: I64,
    amount: F64,
    device: I64,
    latitude: F64,
    longitude: F64,
) -> Transactions:
    n = len(card)
    return Transactions(
        event_time=event_time.astype(np.int64),
        card=card,
        customer=world.card_customer[card],
        merchant=merchant,
        terminal=terminal,
        mcc=world.merchant_mcc[merchant],
        amount=np.round(amount, AMOUNT_DECIMALS),
        online=device != NO_DEVICE,
        latitude=np.round(latitude, COORDINATE_DECIMALS),
        longitude=np.round(longitude, COORDINATE_DECIMALS),
        device=device.astype(np.int64),
        country=world.merchant_country[merchant],
        currency=world.merchant_currency[merchant],
        fraud=np.ones(n, dtype=np.bool_),
        scenario=np.full(n, SCENARIO_CODE[scenario], dtype=np.int64),
    )


def card_testing(
    gen: np.random.Generator, world: World, target: int, span: tuple[int, int], first_device: int
) -> Transactions:
    """Bursts of tiny online payments from one fresh device at one merchant, seconds apart."""
    incident, _ = _layout(sizes := incident_sizes(gen, target, *CARD_TEST_BURST))
    k, n = len(sizes), len(incident)
    pool = world.online_merchants if len(world.online_merchants) else world.high_risk_merchants
    merchant = pool[gen.integers(0, len(pool), k)][incident]
    elapsed = np.cumsum(gen.exponential(CARD_TEST_GAP_MS, n))
    offset = elapsed - elapsed[np.cumsum(sizes) - sizes][incident]  # first try at offset 0
    start = _starts(gen, span, MS_PER_HOUR, k)[incident]
    lat, lon = _attacker_location(gen, k)
    return _rows(
        world,
        "card_testing",
        event_time=start + offset.astype(np.int64),
        card=gen.integers(0, world.cards, k)[incident],
        merchant=merchant,
        terminal=world.merchant_first_terminal[merchant],
        amount=gen.uniform(*CARD_TEST_AMOUNT, n),
        device=first_device + incident,
        latitude=lat[incident],
        longitude=lon[incident],
    )


def impossible_travel(
    gen: np.random.Generator, world: World, normal: Transactions, target: int
) -> Transactions:
    """Card-present payments in a far city minutes after the card paid at home."""
    incident, position = _layout(sizes := incident_sizes(gen, target, *TRAVEL_BURST))
    k = len(sizes)
    present = np.flatnonzero(~normal.online)
    anchor = present[gen.integers(0, len(present), k)] if k else present[:0]
    home = world.merchant_city[normal.merchant[anchor]]
    lat = np.array([c.latitude for c in CITIES])
    lon = np.array([c.longitude for c in CITIES])
    far = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :]) >= MIN_TRAVEL_KM
    away = np.array([gen.choice(np.flatnonzero(far[h])) for h in home], dtype=np.int64)
    merchant = pick_in_city(gen, world, away[incident])
    delay = gen.integers(*TRAVEL_DELAY_MS, k)[incident] + position * MS_PER_MIN
    card = normal.card[anchor][incident]
    return _rows(
        world,
        "impossible_travel",
        event_time=normal.event_time[anchor][incident] + delay,
        card=card,
        merchant=merchant,
        terminal=_terminal_of(gen, world, merchant),
        amount=world.card_typical_amount[card] * gen.uniform(*TRAVEL_AMOUNT_FACTOR, len(card)),
        device=np.full(len(card), NO_DEVICE, dtype=np.int64),
        latitude=world.merchant_latitude[merchant],
        longitude=world.merchant_longitude[merchant],
    )


def account_takeover(
    gen: np.random.Generator, world: World, target: int, span: tuple[int, int], first_device: int
) -> Transactions:
    """A new device buys high amounts in categories the card never used (electronics, gambling)."""
    incident, position = _layout(sizes := incident_sizes(gen, target, *TAKEOVER_BURST))
    k, n = len(sizes), len(incident)
    pool = world.high_risk_merchants if len(world.high_risk_merchants) else world.online_merchants
    merchant = pool[gen.integers(0, len(pool), n)]
    card = gen.integers(0, world.cards, k)[incident]
    start = _starts(gen, span, MS_PER_HOUR, k)[incident]
    lat, lon = _attacker_location(gen, k)
    return _rows(
        world,
        "account_takeover",
        event_time=start + position * gen.integers(*TAKEOVER_GAP_MS, n),
        card=card,
        merchant=merchant,
        terminal=world.merchant_first_terminal[merchant],
        amount=world.card_typical_amount[card] * gen.uniform(*TAKEOVER_AMOUNT_FACTOR, n),
        device=first_device + incident,
        latitude=lat[incident],
        longitude=lon[incident],
    )


def fraud_ring(
    gen: np.random.Generator, world: World, target: int, span: tuple[int, int], first_device: int
) -> Transactions:
    """One device pays with many different cards over a few days."""
    incident, _ = _layout(sizes := incident_sizes(gen, target, *RING_CARDS))
    k, n = len(sizes), len(incident)
    pool = np.concatenate([world.online_merchants, world.high_risk_merchants])
    merchant = pool[gen.integers(0, len(pool), n)]
    card = gen.integers(0, world.cards, n)
    start = _starts(gen, span, RING_SPAN_MS, k)[incident]
    lat, lon = _attacker_location(gen, k)
    return _rows(
        world,
        "fraud_ring",
        event_time=start + gen.integers(0, RING_SPAN_MS, n),
        card=card,
        merchant=merchant,
        terminal=world.merchant_first_terminal[merchant],
        amount=world.card_typical_amount[card] * gen.uniform(*RING_AMOUNT_FACTOR, n),
        device=first_device + incident,
        latitude=lat[incident],
        longitude=lon[incident],
    )


def amount_spike(
    gen: np.random.Generator, world: World, normal: Transactions, target: int
) -> Transactions:
    """A payment 10-30x the card's habit, otherwise in character (same merchant, device, place)."""
    anchor = gen.integers(0, len(normal), target)
    copy = normal.take(anchor)
    card = copy.card
    return dataclasses.replace(
        copy,
        event_time=copy.event_time + gen.integers(*SPIKE_DELAY_MS, target),
        amount=np.round(
            world.card_typical_amount[card] * gen.uniform(*SPIKE_AMOUNT_FACTOR, target),
            AMOUNT_DECIMALS,
        ),
        fraud=np.ones(target, dtype=np.bool_),
        scenario=np.full(target, SCENARIO_CODE["amount_spike"], dtype=np.int64),
    )


def compromised_merchants(
    gen: np.random.Generator, world: World, normal: Transactions, target: int, days: int
) -> Transactions:
    """Relabel as fraud the payments at skimmed card-present merchants during their breach."""
    if target <= 0:
        return normal
    order = np.argsort(normal.merchant, kind="stable")
    bounds = np.searchsorted(normal.merchant[order], np.arange(len(world.merchant_mcc) + 1))
    present = np.flatnonzero(~world.merchant_online)
    first_ms = int(normal.event_time.min())
    flagged: list[I64] = []
    remaining = target
    taken = np.zeros(len(normal), dtype=np.bool_)
    for _ in range(MAX_COMPROMISE_TRIES):
        if remaining <= 0:
            break
        m = present[gen.integers(0, len(present))]
        start = first_ms + int(gen.integers(0, days)) * MS_PER_DAY
        end = start + int(gen.integers(*COMPROMISE_DAYS)) * MS_PER_DAY
        rows = order[bounds[m] : bounds[m + 1]]
        rows = rows[(normal.event_time[rows] >= start) & (normal.event_time[rows] < end)]
        rows = rows[np.argsort(normal.event_time[rows], kind="stable")]  # trimming ends it early
        rows = rows[~taken[rows]][:remaining]
        taken[rows] = True
        flagged.append(rows)
        remaining -= len(rows)
    hit = np.concatenate(flagged) if flagged else np.zeros(0, dtype=np.int64)
    fraud, scenario = normal.fraud.copy(), normal.scenario.copy()
    fraud[hit] = True
    scenario[hit] = SCENARIO_CODE["compromised_merchant"]
    return dataclasses.replace(normal, fraud=fraud, scenario=scenario)
