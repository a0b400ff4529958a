"""The analytics job on real Kafka in a mini-cluster: exact revisions, too-late events, idleness.

Events go to Kafka with their event time as the record timestamp; the source's watermarks follow
each partition (out-of-orderness 0 here). Produced in phases, each waiting for its visible effect,
so the watermark each event meets is known exactly on a one-partition topic.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from core.config import Settings
from jobs import analytics
from jobs.env import create_env
from riskstream.infra.process import wait_until
from riskstream.support.factories import payment
from riskstream.support.kafka_io import read_values
from riskstream.support.topics import private_settings
from schemas.records import Transaction, WindowAnalytics
from udfs.analytics.encode import decode_late, decode_window, latest_revisions
from udfs.analytics.offline import final_windows
from udfs.analytics.records import LateEvent, unscored

pytestmark = [pytest.mark.integration, pytest.mark.flink]

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SEC, MIN, HOUR = 1000, 60_000, 3_600_000
WAIT_S = 120.0
POLL_S = 0.5
MCC = {"m1": "5411", "m2": "5812"}
IDLENESS_MS = 1000
NEVER_IDLE_MS = 10 * HOUR
SETTLE_S = 5.0


def tx(event_id: str, merchant: str, t: int, amount: float) -> Transaction:
    """A valid card-present payment."""
    return payment(
        event_id,
        t,
        card=f"card-{event_id}",
        customer="cust-1",
        merchant=merchant,
        terminal=f"term-{merchant}",
        mcc=MCC.get(merchant, "7995"),
        amount=amount,
    )


def job_settings(
    base: Settings, name: str, partitions: int, idleness_ms: int = IDLENESS_MS
) -> Settings:
    """Fresh topics for one run, immediate watermarks, a short idleness timeout."""
    roles = {"transactions": partitions, "analytics": 1, "late_events": 1, "dead_letter": 1}
    return private_settings(
        base,
        name,
        roles,
        features={"out_of_orderness_ms": 0, "idleness_ms": idleness_ms},
        analytics={"group_id": f"{name}-group", "transactional_id_prefix": f"{name}-tx"},
    )


@contextmanager
def running_job(settings: Settings) -> Iterator[None]:
    """The standalone analytics job, unbounded, on the mini-cluster; cancelled afterwards."""
    env = create_env(settings)
    source, sinks = analytics.kafka_source(settings), analytics.kafka_sinks(settings)
    analytics.build(env, source, sinks, settings)
    client = env.execute_async("test-analytics")
    try:
        yield
    finally:
        client.cancel().result()


class Feed:
    """Produces payments to chosen partitions with their event time as the record timestamp."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.kafka.topic("transactions")
        self.producer = Producer({"bootstrap.servers": settings.kafka.bootstrap})
        self.sent: list[Transaction] = []

    def send_raw(self, partition: int, value: bytes) -> None:
        self.producer.produce(self.topic, value, partition=partition, timestamp=T0)
        assert self.producer.flush(30) == 0

    def send(self, partition: int, *payments: Transaction) -> None:
        for p in payments:
            self.producer.produce(
                self.topic, msgspec.json.encode(p), partition=partition, timestamp=p.event_time
            )
            self.sent.append(p)
        assert self.producer.flush(30) == 0


def results(settings: Settings) -> list[WindowAnalytics]:
    return [decode_window(v) for v in read_values(settings, settings.kafka.topic("analytics"))]


def late_events(settings: Settings) -> list[LateEvent]:
    return [decode_late(v) for v in read_values(settings, settings.kafka.topic("late_events"))]


def revision(settings: Settings, kind: str, key: str, start: int, rev: int) -> Any:
    """A check for one window result."""
    return lambda: [
        r
        for r in results(settings)
        if (r.key_kind, r.key, r.window_start, r.revision) == (kind, key, start, rev)
    ]


def partition_ends(settings: Settings, topic: str) -> dict[int, int]:
    """End offset of every partition of ``topic``."""
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": "ends"})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.partitions
        }
    finally:
        consumer.close()


def summary(records: list[WindowAnalytics]) -> dict[tuple[str, str, int, int], tuple[int, float]]:
    return {
        (r.key_kind, r.key, r.window_start - T0, r.revision): (r.transactions, r.amount_sum)
        for r in records
    }


def test_on_time_update_and_too_late_exactly(kafka_settings: Settings) -> None:
    settings = job_settings(kafka_settings, "an-exact", partitions=1)
    feed = Feed(settings)
    with running_job(settings):
        # On time: the minute [T0, T0+1m) fires once the watermark passes T0+60s.
        feed.send(
            0,
            tx("e1", "m1", T0 + 10 * SEC, 10.00),
            tx("e2", "m1", T0 + 20 * SEC, 5.50),
            tx("e3", "m2", T0 + 30 * SEC, 7.25),
            tx("e4", "m1", T0 + 90 * SEC, 1.00),
            tx("e5", "m2", T0 + 95 * SEC, 1.00),
        )
        wait_until(
            revision(settings, "global", "all", T0, 1),
            WAIT_S,
            "the first global minute",
            poll_s=POLL_S,
        )
        # Late within the allowed lateness (10 min): revision 2 with corrected totals; a re-send
        # of e1 changes nothing.
        feed.send(0, tx("e6", "m1", T0 + 45 * SEC, 4.00), tx("e1", "m1", T0 + 10 * SEC, 10.00))
        wait_until(
            revision(settings, "global", "all", T0, 2), WAIT_S, "the global update", poll_s=POLL_S
        )
        # The watermark moves 20 minutes on: the first minute closes for good.
        feed.send(0, tx("e7", "m1", T0 + 20 * MIN, 2.00), tx("e8", "m2", T0 + 20 * MIN, 3.00))
        wait_until(
            revision(settings, "global", "all", T0 + MIN, 1),
            WAIT_S,
            "the second global minute",
            poll_s=POLL_S,
        )
        # Too late: behind the closed window; goes to the late-events topic, updates nothing.
        feed.send(0, tx("e9", "m2", T0 + 50 * SEC, 3.00))
        late = wait_until(
            lambda: late_events(settings), WAIT_S, "the too-late event", poll_s=POLL_S
        )
        # Two hours on: the MCC hour windows fire.
        feed.send(0, tx("e10", "m1", T0 + 2 * HOUR, 1.00))
        wait_until(revision(settings, "mcc", "5812", T0, 1), WAIT_S, "the MCC hour", poll_s=POLL_S)
        wait_until(
            revision(settings, "global", "all", T0 + 20 * MIN, 1),
            WAIT_S,
            "the 20th minute",
            poll_s=POLL_S,
        )

    assert summary(results(settings)) == {
        ("merchant", "m1", 0, 1): (2, 15.50),
        ("merchant", "m2", 0, 1): (1, 7.25),
        ("global", "all", 0, 1): (3, 22.75),
        ("merchant", "m1", 0, 2): (3, 19.50),
        ("global", "all", 0, 2): (4, 26.75),
        ("merchant", "m1", MIN, 1): (1, 1.00),
        ("merchant", "m2", MIN, 1): (1, 1.00),
        ("global", "all", MIN, 1): (2, 2.00),
        ("mcc", "5411", 0, 1): (5, 22.50),
        ("mcc", "5812", 0, 1): (3, 11.25),
        ("merchant", "m1", 20 * MIN, 1): (1, 2.00),
        ("merchant", "m2", 20 * MIN, 1): (1, 3.00),
        ("global", "all", 20 * MIN, 1): (2, 5.00),
    }
    (too_late,) = late
    assert (too_late.event_id, too_late.key_kind, too_late.key) == ("e9", "merchant", "m2")
    assert (too_late.window_start, too_late.window_end) == (T0, T0 + MIN)
    assert too_late.watermark == T0 + 20 * MIN - 1
    assert too_late.late_by_ms == 20 * MIN - 1 - 50 * SEC
    assert too_late.closed_since_ms == 20 * MIN - 1 - (MIN - 1 + 10 * MIN)
    for r in results(settings):
        assert r.decisions.approve == r.decisions.step_up == r.decisions.block == 0
        assert r.mean_score is None  # unscored payments: counted, in no class, not in the mean


def test_an_idle_partition_does_not_stall_the_windows(kafka_settings: Settings) -> None:
    settings = job_settings(kafka_settings, "an-idle", partitions=3)
    feed = Feed(settings)
    payments = [tx(f"p{i}", f"m{i % 4}", T0 + i * 15 * SEC, 1.0 + i) for i in range(40)]
    with running_job(settings):
        for i, p in enumerate(payments):
            feed.send(i % 2, p)  # partition 2 never gets a record
        feed.send(0, tx("c0", "m1", T0 + 20 * MIN, 1.0))
        feed.send(1, tx("c1", "m2", T0 + 20 * MIN, 1.0))
        wait_until(
            revision(settings, "global", "all", T0 + 9 * MIN, 1), WAIT_S, "minute 9", poll_s=POLL_S
        )
        time.sleep(2 * POLL_S)
    offline = final_windows([unscored(p) for p in payments], analytics.window_params(settings))
    latest = latest_revisions(results(settings))
    minutes = {wid: t for wid, t in offline.items() if wid[0] != "mcc"}
    assert set(minutes) <= set(latest)
    for wid, totals in minutes.items():
        assert (latest[wid].transactions, latest[wid].amount_sum) == (
            totals.transactions,
            totals.amount_sum,
        ), wid
    assert late_events(settings) == []
    assert partition_ends(settings, feed.topic) == {0: 21, 1: 21, 2: 0}


def test_without_idleness_the_empty_partition_stalls_the_windows(kafka_settings: Settings) -> None:
    """The control: same data, idleness out of reach, and no window ever fires."""
    settings = job_settings(kafka_settings, "an-stall", partitions=3, idleness_ms=NEVER_IDLE_MS)
    feed = Feed(settings)
    with running_job(settings):
        for i in range(8):
            feed.send(i % 2, tx(f"s{i}", "m1", T0 + i * MIN, 1.0))
        feed.send(0, tx("c0", "m1", T0 + 20 * MIN, 1.0))
        feed.send(1, tx("c1", "m1", T0 + 20 * MIN, 1.0))
        for partition in (0, 1):  # the job has read everything once both are dead-lettered
            feed.send_raw(partition, b"not json")
        dead_letters = settings.kafka.topic("dead_letter")
        wait_until(
            lambda: len(read_values(settings, dead_letters, committed=False)) == 2,
            WAIT_S,
            "both dead letters",
            poll_s=POLL_S,
        )
        time.sleep(SETTLE_S)
        assert results(settings) == []
