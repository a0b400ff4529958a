"""The simulator against the real local broker: counts, keys, and record timestamps = event time."""

from __future__ import annotations

import time

import msgspec
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME

from core.config import Settings, SimulatorSettings
from riskstream.cli import main
from riskstream.support.kafka_io import read_to_end
from riskstream.support.topics import create_topic
from schemas.validation import RecordSchemaError, decode, decode_transaction
from training.simulator.generate import simulate

READ_TIMEOUT_S = 60.0
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

    transactions = read_to_end(kafka_settings, tx_topic, timeout_s=READ_TIMEOUT_S)
    labels = read_to_end(kafka_settings, label_topic, timeout_s=READ_TIMEOUT_S)
    assert len(transactions) == len(expected.delivery)
    assert len(labels) == len(expected.labels)

    malformed = 0
    for record in transactions:
        assert record.timestamp_type == TIMESTAMP_CREATE_TIME
        try:
            tx = decode_transaction(record.value or b"")
        except RecordSchemaError:
            malformed += 1
            continue
        assert record.timestamp == tx.event_time
        assert record.key == tx.card_id.encode()
    assert malformed == int((expected.delivery.kind == 4).sum()) > 0
    for record in labels:
        label = decode("label", record.value or b"")
        assert record.timestamp == label.event_time
        assert record.key == label.card_id.encode()
    ids = {msgspec.json.decode(r.value or b"")["transaction_id"] for r in labels}
    assert len(ids) == len(labels)
