"""The Fraud Detection Handbook's simulator (Le Borgne et al., 2022, ch. 3), re-implemented.

Written from the published description (``/work/shared/notes/fraud-data.md``), not from the
GPL-licensed notebooks, and vectorised with numpy. Parameters are the Handbook's. One detail follows
the published reference counts rather than the note's wording: a time of day drawn outside the day
drops the transaction (the Handbook's behaviour, which is what yields ~1.75M transactions for the
reference run); redrawing would give ~1.83M.

Mapping to the event contract: one card per customer, one merchant per terminal, all card-present,
(x, y) in [0, 100]^2 mapped onto a ~22 km x ~21 km region around Brussels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.simulator.columns import (
    F64,
    I64,
    MS_PER_DAY,
    MS_PER_S,
    NO_DEVICE,
    S_PER_DAY,
    SCENARIO_CODE,
    Entities,
    Transactions,
    device_table,
    id_table,
    mcc_table,
)

AREA_SIZE = 100.0
REACH_RADIUS = 5.0
MEAN_AMOUNT_LOW, MEAN_AMOUNT_HIGH = 5.0, 100.0
STD_AMOUNT_FACTOR = 0.5
TX_PER_DAY_LOW, TX_PER_DAY_HIGH = 0.0, 4.0
TIME_MEAN_S = S_PER_DAY / 2
TIME_STD_S = 20_000.0
AMOUNT_DECIMALS = 2
FRAUD_AMOUNT_THRESHOLD = 220.0
COMPROMISED_TERMINALS_PER_DAY = 2
TERMINAL_COMPROMISE_DAYS = 28
COMPROMISED_CUSTOMERS_PER_DAY = 3
CUSTOMER_COMPROMISE_DAYS = 14
CUSTOMER_FRAUD_EVERY = 3  # a third of the compromised customer's transactions (rounded down)
CUSTOMER_FRAUD_AMOUNT_FACTOR = 5.0
REGION_LATITUDE, REGION_LONGITUDE = 50.75, 4.25
DEGREES_PER_UNIT_LATITUDE, DEGREES_PER_UNIT_LONGITUDE = 0.002, 0.003
MCC = 5999
COUNTRY, CURRENCY = "BE", "EUR"
DISTANCE_CHUNK = 512  # customers per block of the customer x terminal distance matrix
ID_WIDTH = 7


@dataclass(frozen=True)
class HandbookWorld:
    """Customer and terminal profiles, kept so tests can derive the expected counts."""

    tx_per_day: F64
    mean_amount: F64
    reachable: I64  # number of terminals within REACH_RADIUS, per customer


def _reachable(cx: F64, cy: F64, tx: F64, ty: F64) -> tuple[I64, I64]:
    """Terminals within the radius of each customer, as CSR (offsets, terminal indexes)."""
    rows: list[I64] = []
    cols: list[I64] = []
    for start in range(0, len(cx), DISTANCE_CHUNK):
        dx = cx[start : start + DISTANCE_CHUNK, None] - tx[None, :]
        dy = cy[start : start + DISTANCE_CHUNK, None] - ty[None, :]
        r, c = np.nonzero(dx * dx + dy * dy < REACH_RADIUS**2)
        rows.append(r.astype(np.int64) + start)
        cols.append(c.astype(np.int64))
    row, col = np.concatenate(rows), np.concatenate(cols)
    offsets = np.zeros(len(cx) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=len(cx)), out=offsets[1:])
    return offsets, col


def generate(
    seed: int, customers: int, terminals: int, days: int, start_ms: int
) -> tuple[Transactions, Entities, HandbookWorld]:
    """Simulate ``days`` days; transactions come back in event-time order."""
    gen_profiles, gen_tx, gen_fraud = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    cx, cy = gen_profiles.uniform(0, AREA_SIZE, (2, customers))
    mean_amount = gen_profiles.uniform(MEAN_AMOUNT_LOW, MEAN_AMOUNT_HIGH, customers)
    tx_per_day = gen_profiles.uniform(TX_PER_DAY_LOW, TX_PER_DAY_HIGH, customers)
    tx_x, tx_y = gen_profiles.uniform(0, AREA_SIZE, (2, terminals))
    offsets, reach = _reachable(cx, cy, tx_x, tx_y)
    degree = np.diff(offsets)

    counts = gen_tx.poisson(np.repeat(tx_per_day, days)).astype(np.int64)
    customer = np.repeat(np.repeat(np.arange(customers, dtype=np.int64), days), counts)
    day = np.repeat(np.tile(np.arange(days, dtype=np.int64), customers), counts)
    n = len(customer)
    second = gen_tx.normal(TIME_MEAN_S, TIME_STD_S, n).astype(np.int64)  # truncates like int()
    amount = gen_tx.normal(mean_amount[customer], mean_amount[customer] * STD_AMOUNT_FACTOR)
    redraw = gen_tx.uniform(0, 2 * mean_amount[customer])
    amount = np.round(np.where(amount < 0, redraw, amount), AMOUNT_DECIMALS)
    pick = gen_tx.random(n)
    keep = (second > 0) & (second < S_PER_DAY) & (degree[customer] > 0)
    customer, day, second = customer[keep], day[keep], second[keep]
    amount, pick = amount[keep], pick[keep]
    terminal = reach[offsets[customer] + (pick * degree[customer]).astype(np.int64)]
    order = np.lexsort((second, day))
    customer, day, second = customer[order], day[order], second[order]
    amount, terminal = amount[order], terminal[order]
    scenario = _fraud(
        gen_fraud, customer, terminal, day, amount,
        customers=customers, terminals=terminals, days=days,
    )  # fmt: skip

    n = len(customer)
    transactions = Transactions(
        event_time=start_ms + day * MS_PER_DAY + second * MS_PER_S,
        card=customer,
        customer=customer,
        merchant=terminal,
        terminal=terminal,
        mcc=np.full(n, MCC, dtype=np.int64),
        amount=amount,
        online=np.zeros(n, dtype=np.bool_),
        latitude=np.round(REGION_LATITUDE + tx_y[terminal] * DEGREES_PER_UNIT_LATITUDE, 6),
        longitude=np.round(REGION_LONGITUDE + tx_x[terminal] * DEGREES_PER_UNIT_LONGITUDE, 6),
        device=np.full(n, NO_DEVICE, dtype=np.int64),
        country=np.zeros(n, dtype=np.int64),
        currency=np.zeros(n, dtype=np.int64),
        fraud=scenario > 0,
        scenario=scenario,
    )
    entities = Entities(
        cards=id_table("card", customers, ID_WIDTH),
        customers=id_table("cust", customers, ID_WIDTH),
        merchants=id_table("merch", terminals, ID_WIDTH),
        terminals=id_table("term", terminals, ID_WIDTH),
        devices=device_table(0),
        mccs=mcc_table(),
        countries=np.array([COUNTRY], dtype=object),
        currencies=np.array([CURRENCY], dtype=object),
    )
    return transactions, entities, HandbookWorld(tx_per_day, mean_amount, degree)


def _fraud(
    gen: np.random.Generator,
    customer: I64,
    terminal: I64,
    day: I64,
    amount: F64,
    *,
    customers: int,
    terminals: int,
    days: int,
) -> I64:
    """The three Handbook scenarios in order (later ones win); scales ``amount`` in place."""
    scenario = np.where(amount > FRAUD_AMOUNT_THRESHOLD, SCENARIO_CODE["handbook_amount"], 0)
    compromised = np.zeros((terminals, days), dtype=np.bool_)
    for d in range(days):
        hit = gen.choice(terminals, COMPROMISED_TERMINALS_PER_DAY, replace=False)
        compromised[hit, d : d + TERMINAL_COMPROMISE_DAYS] = True
    scenario[compromised[terminal, day]] = SCENARIO_CODE["handbook_terminal"]

    by_customer = np.argsort(customer, kind="stable")
    bounds = np.searchsorted(customer[by_customer], np.arange(customers + 1))
    for d in range(days):
        for c in gen.choice(customers, COMPROMISED_CUSTOMERS_PER_DAY, replace=False):
            rows = by_customer[bounds[c] : bounds[c + 1]]
            rows = rows[(day[rows] >= d) & (day[rows] < d + CUSTOMER_COMPROMISE_DAYS)]
            hit = gen.choice(rows, len(rows) // CUSTOMER_FRAUD_EVERY, replace=False)
            amount[hit] = np.round(amount[hit] * CUSTOMER_FRAUD_AMOUNT_FACTOR, AMOUNT_DECIMALS)
            scenario[hit] = SCENARIO_CODE["handbook_customer"]
    return scenario.astype(np.int64)
