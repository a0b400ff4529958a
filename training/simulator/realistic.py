"""Normal behaviour of the realistic profile: each card shops near home, sometimes online."""

from __future__ import annotations

import numpy as np

from training.simulator.columns import (
    I64,
    MS_PER_DAY,
    MS_PER_S,
    NO_DEVICE,
    S_PER_DAY,
    Transactions,
)
from training.simulator.world import World

DAY_PEAK_S = 13 * 3_600  # purchases cluster around early afternoon
DAY_SPREAD_S = 4 * 3_600
AMOUNT_NOISE_SIGMA = 0.5
MIN_AMOUNT = 0.5
AMOUNT_DECIMALS = 2
ONLINE_LOCATION_JITTER_DEG = 0.02
COORDINATE_DECIMALS = 6


def pick_in_city(gen: np.random.Generator, world: World, city: I64) -> I64:
    """A uniformly chosen everyday card-present merchant of each ``city`` (any city if none)."""
    everywhere = np.concatenate(world.city_present_merchants)
    merchant = np.empty(len(city), dtype=np.int64)
    u = gen.random(len(city))
    for c, shops in enumerate(world.city_present_merchants):
        rows = np.flatnonzero(city == c)
        pool = shops if len(shops) else everywhere
        merchant[rows] = pool[(u[rows] * len(pool)).astype(np.int64)]
    return merchant


def terminal_of(gen: np.random.Generator, world: World, merchant: I64) -> I64:
    """One of the merchant's terminals, uniformly."""
    offset = (gen.random(len(merchant)) * world.merchant_terminals[merchant]).astype(np.int64)
    return world.merchant_first_terminal[merchant] + offset


def generate(gen: np.random.Generator, world: World, days: int, start_ms: int) -> Transactions:
    """Genuine transactions of every card over ``days`` days (unsorted)."""
    counts = gen.poisson(np.repeat(world.card_tx_per_day, days)).astype(np.int64)
    card = np.repeat(np.repeat(np.arange(world.cards, dtype=np.int64), days), counts)
    day = np.repeat(np.tile(np.arange(days, dtype=np.int64), world.cards), counts)
    n = len(card)
    second = np.mod(gen.normal(DAY_PEAK_S, DAY_SPREAD_S, n), S_PER_DAY)
    event_time = start_ms + day * MS_PER_DAY + (second * MS_PER_S).astype(np.int64)
    online = gen.random(n) < world.card_online_share[card]

    merchant = pick_in_city(gen, world, world.card_city[card])
    web = world.online_merchants
    web_pick = web[(gen.random(n) * len(web)).astype(np.int64)] if len(web) else merchant
    merchant = np.where(online, web_pick, merchant)
    online &= world.merchant_online[merchant]
    device_slot = gen.integers(0, world.card_devices.shape[1], n)
    device = np.where(online, world.card_devices[card, device_slot], NO_DEVICE)
    jitter = gen.normal(0, ONLINE_LOCATION_JITTER_DEG, (2, n))
    latitude = np.where(
        online, world.card_latitude[card] + jitter[0], world.merchant_latitude[merchant]
    )
    longitude = np.where(
        online, world.card_longitude[card] + jitter[1], world.merchant_longitude[merchant]
    )
    noise = np.exp(gen.normal(0, AMOUNT_NOISE_SIGMA, n))
    amount = world.card_typical_amount[card] * world.merchant_amount_factor[merchant] * noise
    return Transactions(
        event_time=event_time,
        card=card,
        customer=world.card_customer[card],
        merchant=merchant,
        terminal=terminal_of(gen, world, merchant),
        mcc=world.merchant_mcc[merchant],
        amount=np.round(np.maximum(amount, MIN_AMOUNT), AMOUNT_DECIMALS),
        online=online,
        latitude=np.round(latitude, COORDINATE_DECIMALS),
        longitude=np.round(longitude, COORDINATE_DECIMALS),
        device=device.astype(np.int64),
        country=world.merchant_country[merchant],
        currency=world.merchant_currency[merchant],
        fraud=np.zeros(n, dtype=np.bool_),
        scenario=np.zeros(n, dtype=np.int64),
    )
