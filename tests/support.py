"""Small Kafka helpers for tests: produce JSON records and read a topic back completely."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from core.config import Settings

POLL_S = 0.5


def produce_json(
    settings: Settings, topic: str, records: Iterable[tuple[str | None, dict[str, Any]]]
) -> int:
    """Produce ``(key, document)`` pairs as JSON; returns how many were acknowledged."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "enable.idempotence": True})
    delivered: list[int] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is None:
            delivered.append(1)

    for key, document in records:
        producer.produce(
            topic,
            json.dumps(document).encode(),
            key=key.encode() if key is not None else None,
            on_delivery=on_delivery,
        )
        producer.poll(0)
    producer.flush(30)
    return len(delivered)


def read_topic(
    settings: Settings, topic: str, timeout_s: float = 30.0, read_committed: bool = False
) -> list[bytes]:
    """Every record value in ``topic`` from the beginning up to its current end offsets.

    ``read_committed`` skips records of open and aborted Kafka transactions (the exactly-once
    outputs); the end offsets are then the last stable offsets. A partition is done when the
    consumer's position reaches its end, since transaction markers take offsets but are never
    delivered."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        ends = {}
        for tp in partitions:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            ends[tp.partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        values: list[bytes] = []
        positions = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + timeout_s
        while any(positions[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            message = consumer.poll(POLL_S)
            if message is None:
                for tp in consumer.position(consumer.assignment()):
                    positions[tp.partition] = max(positions[tp.partition], tp.offset)
                continue
            if message.error() is not None:
                continue
            value, partition, offset = message.value(), message.partition(), message.offset()
            if value is None or partition is None or offset is None:
                continue
            values.append(value)
            positions[partition] = offset + 1
        return values
    finally:
        consumer.close()
