"""The simulator against the real local broker: counts, keys, and record timestamps = event time."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import msgspec
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, TopicPartition

from core.config import Settings, SimulatorSettings
from riskstream.cli import main
from schemas.validation import RecordSchemaError, decode, decode_transaction
from tests.conftest import create_topic
from training.simulator.generate import simulate

READ_TIMEOUT_S = 60.0
POLL_S = 0.5
RATE = 4_000  # records/s asked of the producer
RATE_TOLERANCE = 0.25  # the run may not be more than 25% faster than asked
SIM = SimulatorSettings(
    profile="realistic", seed=11, days=3, cards=400, merchants=100,
    malformed_share=0.01, duplicate_share=0.01,
)  # fmt: skip
SIM_FLAGS = [
    "--profile", "realistic", "--seed", "11", "--days", "3", "--cards", "400",
    "--merchants", "100", "--malformed-share", "0.01", "--duplicate-share", "0.01",
]  # fmt: skip


@dataclass(frozen=True)
class Received:
    """One consumed record."""

    key: bytes
    value: bytes
    timestamp_type: int
    timestamp: int


def read_all(settings: Settings, topic: str) -> list[Received]:
    """Every record of ``topic`` up to its end offsets at call time."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": f"sim-test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.topics[topic].partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        positions = dict.fromkeys(ends, 0)
        out: list[Received] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(positions[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            msg = consumer.poll(POLL_S)
            if msg is None or msg.error() is not None:
                continue
            kind, stamp = msg.timestamp()
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            out.append(Received(msg.key() or b"", msg.value() or b"", kind, stamp))
            positions[partition] = offset + 1
        return out
    finally:
        consumer.close()


@pytest.mark.integration
def test_simulate_to_kafka_at_a_rate_with_event_time_timestamps(kafka_settings: Settings) -> None:
    tx_topic = create_topic(kafka_settings, "sim-transactions")
    label_topic = create_topic(kafka_settings, "sim-labels")
    expected = simulate(SIM)
    total = len(expected.delivery) + len(expected.labels)

    started = time.monotonic()
    status = main(
        [
            "--set", f"kafka.port={kafka_settings.kafka.port}",
            "--set", f"kafka.host={kafka_settings.kafka.host}",
            "--set", f"kafka.topics.transactions.name={tx_topic}",
            "--set", f"kafka.topics.labels.name={label_topic}",
            "simulate", "--to-kafka", "--rate", str(RATE), "--quiet", *SIM_FLAGS,
        ]
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert status == 0
    assert elapsed >= total / RATE * (1 - RATE_TOLERANCE)

    transactions = read_all(kafka_settings, tx_topic)
    labels = read_all(kafka_settings, label_topic)
    assert len(transactions) == len(expected.delivery)
    assert len(labels) == len(expected.labels)

    malformed = 0
    for record in transactions:
        assert record.timestamp_type == TIMESTAMP_CREATE_TIME
        try:
            tx = decode_transaction(record.value)
        except RecordSchemaError:
            malformed += 1
            continue
        assert record.timestamp == tx.event_time
        assert record.key == tx.card_id.encode()
    assert malformed == int((expected.delivery.kind == 4).sum()) > 0
    for record in labels:
        label = decode("label", record.value)
        assert record.timestamp == label.event_time
        assert record.key == label.card_id.encode()
    ids = {msgspec.json.decode(r.value)["transaction_id"] for r in labels}
    assert len(ids) == len(labels)
