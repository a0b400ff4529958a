"""One simulation, in memory and columnar: transactions, labels and how transactions are delivered.

Randomness comes from one ``numpy`` ``SeedSequence`` per run, spawned into independent streams per
stage, so the same settings and seed always give the same data, and changing e.g. the delivery
shares does not change the transactions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from core.config import SimulatorSettings
from core.errors import ConfigError
from training.simulator import delivery, fraud, handbook, labels, realistic, world
from training.simulator.catalog import COUNTRIES, CURRENCIES
from training.simulator.columns import (
    MS_PER_DAY,
    MS_PER_S,
    Delivery,
    Entities,
    Labels,
    Transactions,
    device_table,
    id_table,
    mcc_table,
)

PROFILES = ("handbook", "realistic")
FORMATS = ("jsonl", "parquet")
MAX_TOTAL_FRAUD_RATE = 0.5
ID_WIDTH = 7
INJECTED_SCENARIOS = (
    "card_testing",
    "impossible_travel",
    "account_takeover",
    "fraud_ring",
    "amount_spike",
)
STAGES = 5  # independent random streams: world, behaviour, fraud, labels, delivery


@dataclass(frozen=True)
class Simulation:
    """Everything a run produced; ``transactions`` are in event-time order."""

    settings: SimulatorSettings
    run: str  # prefix of every event id, unique per profile and seed
    start_ms: int
    end_ms: int
    transactions: Transactions
    entities: Entities
    labels: Labels
    delivery: Delivery
    handbook_world: handbook.HandbookWorld | None = None


def start_ms(start_date: str) -> int:
    """Epoch ms of midnight UTC of ``YYYY-MM-DD``.

    >>> start_ms("2018-04-01")
    1522540800000
    """
    try:
        day = datetime.strptime(start_date, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(
            f"simulator.start_date: expected YYYY-MM-DD, found {start_date!r}"
        ) from None
    return int(day.timestamp()) * MS_PER_S


def check(s: SimulatorSettings) -> None:
    """Refuse settings the generators cannot honour, naming the key."""
    if s.profile not in PROFILES:
        raise ConfigError(f"simulator.profile: expected one of {PROFILES}, found {s.profile!r}")
    if s.format not in FORMATS:
        raise ConfigError(f"simulator.format: expected one of {FORMATS}, found {s.format!r}")
    for name in ("days", "customers", "terminals", "cards", "merchants"):
        if getattr(s, name) < 1:
            raise ConfigError(f"simulator.{name}: expected >= 1, found {getattr(s, name)}")
    shares = (
        "out_of_order_share", "late_share", "duplicate_share", "malformed_share",
        "legit_label_share", *(f"{n}_rate" for n in (*INJECTED_SCENARIOS, "compromised_merchant")),
    )  # fmt: skip
    for name in shares:
        value = getattr(s, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"simulator.{name}: expected a share in [0, 1], found {value}")
    if s.out_of_order_share + s.late_share > 1.0:
        raise ConfigError("simulator: out_of_order_share + late_share must not exceed 1")
    total = sum(getattr(s, f"{n}_rate") for n in (*INJECTED_SCENARIOS, "compromised_merchant"))
    if total > MAX_TOTAL_FRAUD_RATE:
        raise ConfigError(
            f"simulator: fraud rates sum to {total}, expected <= {MAX_TOTAL_FRAUD_RATE}"
        )
    if s.chargeback_delay_days < 1 or s.legit_label_delay_days < 0 or s.late_max_s < 60:
        raise ConfigError(
            "simulator: expected chargeback_delay_days >= 1, legit_label_delay_days >= 0 and "
            f"late_max_s >= 60, found {s.chargeback_delay_days}, {s.legit_label_delay_days}, "
            f"{s.late_max_s}"
        )
    if s.rate <= 0:
        raise ConfigError(f"simulator.rate: expected > 0 events/s, found {s.rate}")


def _realistic(
    gens: list[np.random.Generator], s: SimulatorSettings, first_ms: int, end_ms: int
) -> tuple[Transactions, Entities]:
    people = world.build(gens[0], s.cards, s.merchants)
    normal = realistic.generate(gens[1], people, s.days, first_ms)
    injected_rate = sum(getattr(s, f"{n}_rate") for n in INJECTED_SCENARIOS)
    total = len(normal) / (1.0 - injected_rate)
    gen = gens[2]
    normal = fraud.compromised_merchants(
        gen, people, normal, round(s.compromised_merchant_rate * total), s.days
    )
    span = (first_ms, end_ms)
    device = people.devices
    parts = [normal]
    targets = {n: round(getattr(s, f"{n}_rate") * total) for n in INJECTED_SCENARIOS}
    parts.append(fraud.card_testing(gen, people, targets["card_testing"], span, device))
    device += len(parts[-1])  # at most one fresh device per row
    parts.append(fraud.impossible_travel(gen, people, normal, targets["impossible_travel"]))
    parts.append(fraud.account_takeover(gen, people, targets["account_takeover"], span, device))
    device += len(parts[-1])
    parts.append(fraud.fraud_ring(gen, people, targets["fraud_ring"], span, device))
    device += len(parts[-1])
    parts.append(fraud.amount_spike(gen, people, normal, targets["amount_spike"]))
    transactions = Transactions.concat(parts).sorted_by_time()
    entities = Entities(
        cards=id_table("card", people.cards, ID_WIDTH),
        customers=id_table("cust", people.customers, ID_WIDTH),
        merchants=id_table("merch", len(people.merchant_mcc), ID_WIDTH),
        terminals=id_table("term", people.terminals, ID_WIDTH),
        devices=device_table(device),
        mccs=mcc_table(),
        countries=np.array(COUNTRIES, dtype=object),
        currencies=np.array(CURRENCIES, dtype=object),
    )
    return transactions, entities


def simulate(s: SimulatorSettings) -> Simulation:
    """Run the simulator described by ``s`` (see ``riskstream.yaml``, section ``simulator``)."""
    check(s)
    first_ms = start_ms(s.start_date)
    end_ms = first_ms + s.days * MS_PER_DAY
    gens = [np.random.default_rng(q) for q in np.random.SeedSequence(s.seed).spawn(STAGES)]
    hb_world = None
    if s.profile == "handbook":
        tx, entities, hb_world = handbook.generate(
            s.seed, s.customers, s.terminals, s.days, first_ms
        )
        legit_share = 1.0  # the label stream carries the Handbook's flag for every transaction
    else:
        tx, entities = _realistic(gens, s, first_ms, end_ms)
        legit_share = s.legit_label_share
    truth = labels.generate(
        gens[3], tx, s.chargeback_delay_days, legit_share, s.legit_label_delay_days
    )
    plan = delivery.plan(
        gens[4],
        tx.event_time,
        out_of_order_share=s.out_of_order_share,
        late_share=s.late_share,
        late_max_ms=math.floor(s.late_max_s * MS_PER_S),
        duplicate_share=s.duplicate_share,
        malformed_share=s.malformed_share,
    )
    return Simulation(
        settings=s,
        run=f"{s.profile[0]}{s.seed}",
        start_ms=first_ms,
        end_ms=end_ms,
        transactions=tx,
        entities=entities,
        labels=truth,
        delivery=plan,
        handbook_world=hb_world,
    )
