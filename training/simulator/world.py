"""The realistic population: cards with homes and habits, merchants, terminals, devices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.simulator.catalog import (
    CITIES,
    COUNTRIES,
    CURRENCIES,
    HIGH_RISK_CATEGORIES,
    ONLINE_CATEGORIES,
    PRESENT_CATEGORIES,
    Category,
)
from training.simulator.columns import F64, I64, Bools

CARDS_PER_CUSTOMER = 1.25
HOME_JITTER_DEG = 0.05
TYPICAL_AMOUNT_MEDIAN = 40.0
TYPICAL_AMOUNT_SIGMA = 0.6
TX_PER_DAY_SHAPE, TX_PER_DAY_SCALE = 2.0, 1.0  # gamma: mean 2 transactions a day
ONLINE_SHARE_A, ONLINE_SHARE_B = 2.0, 5.0  # beta: ~29% online on average
DEVICES_PER_CARD = 2  # a phone and a laptop; the two may be the same device
ONLINE_MERCHANT_SHARE = 0.2
HIGH_RISK_MERCHANT_SHARE = 0.03
MAX_TERMINALS_PER_SHOP = 3


@dataclass(frozen=True)
class World:
    """Everything the generators draw from; indexes are positions in these arrays."""

    card_customer: I64
    card_city: I64
    card_latitude: F64
    card_longitude: F64
    card_typical_amount: F64
    card_tx_per_day: F64
    card_online_share: F64
    card_devices: I64  # (cards, DEVICES_PER_CARD)
    devices: int
    merchant_mcc: I64
    merchant_amount_factor: F64
    merchant_online: Bools
    merchant_high_risk: Bools
    merchant_city: I64
    merchant_latitude: F64
    merchant_longitude: F64
    merchant_country: I64
    merchant_currency: I64
    merchant_first_terminal: I64
    merchant_terminals: I64
    city_present_merchants: list[I64]  # everyday card-present merchants by city
    online_merchants: I64  # everyday online merchants
    high_risk_merchants: I64

    @property
    def cards(self) -> int:
        """Number of cards."""
        return len(self.card_customer)

    @property
    def customers(self) -> int:
        """Number of customers."""
        return int(self.card_customer.max()) + 1

    @property
    def terminals(self) -> int:
        """Number of terminals."""
        return int(self.merchant_first_terminal[-1] + self.merchant_terminals[-1])


def _categories(gen: np.random.Generator, table: tuple[Category, ...], n: int) -> tuple[I64, F64]:
    weights = np.array([c.weight for c in table])
    pick = gen.choice(len(table), n, p=weights / weights.sum())
    mcc = np.array([c.mcc for c in table], dtype=np.int64)[pick]
    return mcc, np.array([c.amount_factor for c in table])[pick]


def build(gen: np.random.Generator, cards: int, merchants: int) -> World:
    """Draw a population of ``cards`` cards and ``merchants`` merchants."""
    city_weight = np.array([c.weight for c in CITIES])
    city_weight /= city_weight.sum()
    city_lat = np.array([c.latitude for c in CITIES])
    city_lon = np.array([c.longitude for c in CITIES])
    country = np.array([COUNTRIES.index(c.country) for c in CITIES], dtype=np.int64)
    currency = np.array([CURRENCIES.index(c.currency) for c in CITIES], dtype=np.int64)

    customers = max(1, int(cards / CARDS_PER_CUSTOMER))
    card_customer = np.arange(cards, dtype=np.int64) * customers // cards
    customer_city = gen.choice(len(CITIES), customers, p=city_weight)
    card_city = customer_city[card_customer]
    devices = gen.integers(0, DEVICES_PER_CARD, (cards, DEVICES_PER_CARD))
    card_devices = (np.arange(cards, dtype=np.int64)[:, None] * DEVICES_PER_CARD + devices).astype(
        np.int64
    )

    kind = gen.random(merchants)
    high_risk = kind < HIGH_RISK_MERCHANT_SHARE
    online = high_risk | (kind < HIGH_RISK_MERCHANT_SHARE + ONLINE_MERCHANT_SHARE)
    mcc, factor = _categories(gen, PRESENT_CATEGORIES, merchants)
    online_mcc, online_factor = _categories(gen, ONLINE_CATEGORIES, merchants)
    risky_mcc, risky_factor = _categories(gen, HIGH_RISK_CATEGORIES, merchants)
    mcc = np.where(high_risk, risky_mcc, np.where(online, online_mcc, mcc))
    factor = np.where(high_risk, risky_factor, np.where(online, online_factor, factor))
    merchant_city = gen.choice(len(CITIES), merchants, p=city_weight)
    terminals = np.where(online, 1, gen.integers(1, MAX_TERMINALS_PER_SHOP + 1, merchants))
    first_terminal = np.concatenate([[0], np.cumsum(terminals)[:-1]]).astype(np.int64)
    jitter = gen.normal(0, HOME_JITTER_DEG, (4, max(cards, merchants)))
    present = np.flatnonzero(~online)
    return World(
        card_customer=card_customer,
        card_city=card_city,
        card_latitude=city_lat[card_city] + jitter[0, :cards],
        card_longitude=city_lon[card_city] + jitter[1, :cards],
        card_typical_amount=TYPICAL_AMOUNT_MEDIAN
        * np.exp(gen.normal(0, TYPICAL_AMOUNT_SIGMA, cards)),
        card_tx_per_day=gen.gamma(TX_PER_DAY_SHAPE, TX_PER_DAY_SCALE, cards),
        card_online_share=gen.beta(ONLINE_SHARE_A, ONLINE_SHARE_B, cards),
        card_devices=card_devices,
        devices=cards * DEVICES_PER_CARD,
        merchant_mcc=mcc,
        merchant_amount_factor=factor,
        merchant_online=online,
        merchant_high_risk=high_risk,
        merchant_city=merchant_city,
        merchant_latitude=city_lat[merchant_city] + jitter[2, :merchants],
        merchant_longitude=city_lon[merchant_city] + jitter[3, :merchants],
        merchant_country=country[merchant_city],
        merchant_currency=currency[merchant_city],
        merchant_first_terminal=first_terminal,
        merchant_terminals=terminals.astype(np.int64),
        city_present_merchants=[
            present[merchant_city[present] == c].astype(np.int64) for c in range(len(CITIES))
        ],
        online_merchants=np.flatnonzero(online & ~high_risk).astype(np.int64),
        high_risk_merchants=np.flatnonzero(high_risk).astype(np.int64),
    )
