"""Valid payments and labels for tests and benchmarks (the contracts of :mod:`schemas.records`).

Every field has a plain default; a payment with a ``device`` is online, one without is card
present (the transaction contract requires a device for online payments).
"""

from __future__ import annotations

import random
import uuid

from schemas.records import SCHEMA_VERSION, Label, Transaction

MCCS = ("5411", "5812", "5999", "7995")


def payment(
    event_id: str,
    event_time: int,
    *,
    card: str = "card-1",
    terminal: str = "term-1",
    merchant: str | None = None,
    customer: str | None = None,
    amount: float = 10.0,
    mcc: str = "5411",
    device: str | None = None,
    latitude: float = 48.0,
    longitude: float = 2.0,
    currency: str = "EUR",
    country: str | None = None,
    source: str = "test",
    correlation_id: str | None = None,
) -> Transaction:
    """A valid payment; online when it has a ``device``, card present otherwise.

    >>> payment("tx-1", 5, device="dev-1").channel
    'online'
    """
    return Transaction(
        event_id=event_id,
        event_time=event_time,
        schema_version=SCHEMA_VERSION,
        source=source,
        correlation_id=correlation_id or f"corr-{event_id}",
        card_id=card,
        customer_id=customer or f"cust-{card}",
        merchant_id=merchant or f"m-{terminal}",
        terminal_id=terminal,
        mcc=mcc,
        amount=amount,
        currency=currency,
        channel="online" if device is not None else "card_present",
        latitude=latitude,
        longitude=longitude,
        device_id=device,
        country=country,
    )


def random_payment(
    rng: random.Random,
    card: int,
    event_time: int,
    *,
    terminals: int,
    online_share: float = 0.4,
    devices_per_card: int = 1,
    max_amount: float = 200.0,
    prefix: str = "p",
    source: str = "test",
    digits: int = 6,
    correlation_id: str | None = None,
) -> Transaction:
    """A payment of card number ``card`` at a random terminal, MCC and amount, online with
    probability ``online_share`` from one of the card's ``devices_per_card`` devices (the feed of
    the benchmarks and load tests). ``rng`` is drawn in a fixed order: online, terminal, MCC,
    amount, latitude, longitude, then the device."""
    online = rng.random() < online_share
    name = f"{card:0{digits}d}"
    terminal = f"term-{rng.randrange(terminals):0{digits - 1}d}"
    mcc = rng.choice(MCCS)
    amount = round(rng.uniform(1, max_amount), 2)
    latitude, longitude = round(50 + rng.random(), 4), round(4 + rng.random(), 4)
    device = None
    if online:
        device = f"dev-{name}"
        if devices_per_card > 1:
            device += f"-{rng.randrange(devices_per_card)}"
    return payment(
        f"{prefix}-{uuid.uuid4().hex}",
        event_time,
        card=f"card-{name}",
        terminal=terminal,
        merchant=f"m-{card % terminals:0{digits - 1}d}",
        customer=f"cust-{name}",
        amount=amount,
        mcc=mcc,
        device=device,
        latitude=latitude,
        longitude=longitude,
        source=source,
        correlation_id=correlation_id or f"{prefix}-{card}",
    )


def label_for(
    tx: Transaction,
    known_at: int,
    *,
    label: str = "fraud",
    event_id: str | None = None,
    source: str | None = None,
) -> Label:
    """The label of ``tx`` that became known at ``known_at``: a chargeback for fraud, a
    confirmation for legit.

    >>> label_for(payment("tx-1", 5), 9, label="legit").label_type
    'confirmed_legitimate'
    """
    return Label(
        event_id=event_id or f"lbl-{tx.event_id}",
        event_time=known_at,
        schema_version=SCHEMA_VERSION,
        source=source or tx.source,
        correlation_id=tx.correlation_id,
        transaction_id=tx.event_id,
        transaction_time=tx.event_time,
        card_id=tx.card_id,
        merchant_id=tx.merchant_id,
        terminal_id=tx.terminal_id,
        device_id=tx.device_id,
        label="fraud" if label == "fraud" else "legit",
        label_type="chargeback" if label == "fraud" else "confirmed_legitimate",
    )
