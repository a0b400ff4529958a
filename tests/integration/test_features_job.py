"""The feature job on real Kafka in a mini-cluster equals the pure-Python driver, event for event.

Events are produced in phases while the job runs; the test waits for every phase's features before
producing the next one. Within a phase each device and terminal is used by one card only, and a
card's payments go to one partition in produce order, so the arrival order every keyed operator
sees is the produce order whatever the parallelism; across phases devices and terminals are shared
by many cards. Payments are out of order inside a card, some are duplicated, some are far behind
the watermark, labels arrive days (of event time) after their payments, and malformed or
future-dated records must reach the dead-letter topic.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer, Producer

from core.config import Settings, with_overrides
from features import output
from features.compute import FeaturePipeline
from jobs import features as features_job
from jobs.env import create_env
from riskstream.support.factories import label_for, payment
from riskstream.support.kafka_io import read_values
from riskstream.support.topics import private_settings
from schemas.feature_set import MS_PER_DAY, MS_PER_HOUR
from schemas.records import Label, Transaction

pytestmark = [pytest.mark.integration, pytest.mark.flink]

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PHASES = 6
CARDS_PER_PHASE = 12
PAYMENTS_PER_CARD = 4
DEVICES = 10
TERMINALS = 10
PHASE_WAIT_S = 120.0
LABEL_SETTLE_S = 3.0
SEED = 7


def _tx(rng: random.Random, card: str, t: int, terminal: str, device: str | None) -> Transaction:
    return payment(
        uuid.UUID(int=rng.getrandbits(128)).hex,
        t,
        correlation_id=f"corr-{t}",
        card=card,
        terminal=terminal,
        mcc=rng.choice(["5411", "5812", "7995"]),
        amount=round(rng.uniform(1, 300), 2),
        latitude=round(rng.uniform(40, 50), 4),
        longitude=round(rng.uniform(0, 10), 4),
        device=device,
    )


def make_phases(rng: random.Random) -> list[tuple[list[Transaction], list[Label]]]:
    """Per phase: payments (per card in a shuffled time order, with duplicates) and labels."""
    phases: list[tuple[list[Transaction], list[Label]]] = []
    history: list[Transaction] = []
    for phase in range(PHASES):
        base = T0 + phase * 4 * MS_PER_DAY
        cards = rng.sample([f"card-{i}" for i in range(40)], CARDS_PER_PHASE)
        terminals = rng.sample([f"term-{i}" for i in range(TERMINALS * 3)], CARDS_PER_PHASE)
        devices = rng.sample([f"dev-{i}" for i in range(DEVICES * 3)], CARDS_PER_PHASE)
        payments: list[Transaction] = []
        for card, terminal, device in zip(cards, terminals, devices, strict=True):
            times = sorted(base + rng.randrange(3 * MS_PER_DAY) for _ in range(PAYMENTS_PER_CARD))
            own = [
                _tx(rng, card, t, terminal, device if rng.random() < 0.5 else None) for t in times
            ]
            rng.shuffle(own)  # out of order within the card
            if rng.random() < 0.3:
                own.insert(rng.randrange(1, len(own) + 1), own[0])  # a retry: duplicate event id
            if rng.random() < 0.3:  # far behind the watermark: late
                own.append(_tx(rng, card, base - 2 * MS_PER_DAY, terminal, None))
            payments += own
        history += payments
        labels = [
            label_for(tx, tx.event_time + MS_PER_DAY + rng.randrange(MS_PER_HOUR))
            for tx in rng.sample(history, 6)
        ]
        phases.append((payments, labels))
    return phases


def _settings(base: Settings, name: str) -> Settings:
    roles = dict.fromkeys(("transactions", "labels", "features", "dead_letter"), 2)
    return private_settings(
        base,
        name,
        roles,
        features={
            "group_id": f"{name}-group",
            "out_of_orderness_ms": 1000,
            "idleness_ms": 500,
            "allowed_lateness_ms": MS_PER_HOUR,
        },
    )


def _produce(producer: Producer, topic: str, key: str, record: Any, timestamp: int) -> None:
    producer.produce(topic, msgspec.json.encode(record), key=key.encode(), timestamp=timestamp)


def _await(consumer: Consumer, outputs: list[output.EnrichedFeatures], total: int) -> None:
    deadline = time.monotonic() + PHASE_WAIT_S
    while len(outputs) < total and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        value = None if message is None or message.error() is not None else message.value()
        if value is not None:
            outputs.append(output.decode(value))
    assert len(outputs) == total, f"expected {total} feature records, got {len(outputs)}"


def run_parity(base: Settings, name: str, parallelism: int) -> None:
    settings = _settings(with_overrides(base, flink={"parallelism": parallelism}), name)
    phases = make_phases(random.Random(SEED))
    env = create_env(settings)
    sources = features_job.FeatureSources(
        features_job.kafka_source(settings, "transactions"),
        features_job.kafka_source(settings, "labels"),
    )
    sinks = features_job.FeatureSinks(
        features_job.kafka_sink(settings, "features"),
        features_job.kafka_sink(settings, "dead_letter"),
    )
    features_job.build(env, sources, sinks, settings)
    client = env.execute_async(f"{name}-features")
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "linger.ms": 0})
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": f"{name}-reader",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([settings.kafka.topic("features")])
    pipeline = FeaturePipeline(features_job.feature_params(settings))
    expected = []
    outputs: list[output.EnrichedFeatures] = []
    tx_topic, label_topic = settings.kafka.topic("transactions"), settings.kafka.topic("labels")
    try:
        # Rejected records; their Kafka timestamps are old so they do not move the watermark (a
        # future Kafka timestamp would: the broker's message.timestamp.after.max.ms guards that).
        bad = b'{"event_id": "x", "amount": -1}'
        producer.produce(tx_topic, bad, key=b"bad", timestamp=T0)
        future_time = int(time.time() * 1000) + 10 * MS_PER_DAY
        future = msgspec.json.encode(_tx(random.Random(1), "card-f", future_time, "t", None))
        producer.produce(tx_topic, future, key=b"card-f", timestamp=T0)
        for payments, labels in phases:
            for tx in payments:
                _produce(producer, tx_topic, tx.card_id, tx, tx.event_time)
                expected.append(pipeline.transaction(tx))
            producer.flush(30)
            _await(consumer, outputs, len(expected))
            for label in labels:
                _produce(producer, label_topic, label.terminal_id, label, label.event_time)
                pipeline.label(label)
            producer.flush(30)
            time.sleep(LABEL_SETTLE_S)
    finally:
        consumer.close()
        client.cancel().result()
    got = sorted((o.event_id, o.duplicate, tuple(o.features.values())) for o in outputs)
    want = sorted((r.event_id, r.duplicate, r.values) for r in expected)
    assert got == want
    assert any(r.duplicate for r in expected)
    assert any(o.late for o in outputs)
    assert any(v["fraud_rate_by_terminal_30d_delay7d"] > 0 for v in (o.features for o in outputs))
    assert any(v["fraud_seen_by_device"] == 1 for v in (o.features for o in outputs))
    assert all(o.feature_set_hash == output.FEATURE_SET_HASH for o in outputs)
    letters = [
        msgspec.json.decode(v)
        for v in read_values(settings, settings.kafka.topic("dead_letter"), committed=False)
    ]
    assert (
        sorted(letter["field"] or "" for letter in letters) == ["$", "$.event_time"]
        or len(letters) == 2
    )
    assert {letter["topic"] for letter in letters} == {tx_topic}


def test_stream_equals_driver_parallelism_1(kafka_settings: Settings) -> None:
    run_parity(kafka_settings, "feat-p1", 1)


def test_stream_equals_driver_parallelism_2(kafka_settings: Settings) -> None:
    run_parity(kafka_settings, "feat-p2", 2)
