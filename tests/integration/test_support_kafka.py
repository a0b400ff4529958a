"""The support library on the real broker: reads reach the end or raise, produces keep a rate."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from core.config import Settings
from core.errors import ServiceError
from riskstream.support.kafka_io import (
    ReadTimeoutError,
    produce_at_rate,
    read_to_end,
    read_values,
)
from riskstream.support.topics import create_topic, private_settings

pytestmark = [pytest.mark.integration]

RECORDS = 60
RATE = 400.0


def _producer(settings: Settings, **extra: str) -> Producer:
    return Producer({**settings.kafka.client_config(), "linger.ms": "0", **extra})


def test_produce_at_rate_then_read_to_end_returns_every_record_in_order(
    kafka_settings: Settings,
) -> None:
    topic = create_topic(kafka_settings, "support-rate", partitions=2)
    records = [(topic, f"v{i}".encode(), f"k{i % 2}", 1_000 + i) for i in range(RECORDS)]
    started = time.monotonic()
    seen: list[int] = []
    sent = produce_at_rate(_producer(kafka_settings), records, RATE, pace_every=10,
                           progress=seen.append)  # fmt: skip
    elapsed = time.monotonic() - started
    assert sent == RECORDS and sum(seen) == RECORDS
    assert elapsed >= (RECORDS - 10) / RATE  # paced, not as fast as possible
    got = read_to_end(kafka_settings, topic)
    assert len(got) == RECORDS
    for partition in (0, 1):
        offsets = [r.offset for r in got if r.partition == partition]
        assert offsets == sorted(offsets)
    by_value = {r.value: r for r in got}
    assert by_value[b"v7"].key == b"k1" and by_value[b"v7"].timestamp == 1_007


def test_a_read_that_cannot_reach_the_end_in_time_raises_naming_topic_and_progress(
    kafka_settings: Settings,
) -> None:
    topic = create_topic(kafka_settings, "support-timeout", partitions=1)
    produce_at_rate(_producer(kafka_settings), [(topic, b"x", None, None)] * 5, None)
    with pytest.raises(ReadTimeoutError, match=rf"reading '{topic}' to its end: 0 record\(s\)"):
        read_to_end(kafka_settings, topic, timeout_s=0.0)
    with pytest.raises(ServiceError, match="does not exist"):
        read_to_end(kafka_settings, f"{topic}-missing")


def test_reads_are_committed_by_default_and_do_not_wait_for_open_transactions(
    kafka_settings: Settings,
) -> None:
    topic = create_topic(kafka_settings, "support-committed", partitions=1)
    produce_at_rate(_producer(kafka_settings), [(topic, b"plain", None, None)], None)
    txn = _producer(kafka_settings, **{"transactional.id": f"{topic}-txn"})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce(topic, b"open")
    txn.flush(30)
    try:
        assert read_values(kafka_settings, topic, timeout_s=20) == [b"plain"]
        assert read_values(kafka_settings, topic, committed=False) == [b"plain", b"open"]
    finally:
        txn.abort_transaction(30)


def test_private_settings_make_fresh_topics_per_role_and_apply_overrides(
    kafka_settings: Settings,
) -> None:
    settings = private_settings(
        kafka_settings, "support", {"transactions": 3, "labels": 1}, flink={"parallelism": 2}
    )
    assert settings.flink.parallelism == 2
    assert settings.kafka.topics["transactions"].partitions == 3
    names = {settings.kafka.topic(r) for r in ("transactions", "labels")}
    assert all(n.startswith("support-") for n in names)
    assert not names & {kafka_settings.kafka.topic(r) for r in ("transactions", "labels")}
    assert settings.kafka.topic("decisions") == kafka_settings.kafka.topic("decisions")
    assert read_to_end(settings, settings.kafka.topic("transactions")) == []
