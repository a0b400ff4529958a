"""Live traffic for the demo and the end-to-end benchmarks: send simulated payments now, watch the
decisions come back.

:class:`LiveFeed` takes a simulation's delivered transaction lines (in arrival order, with their
duplicates and malformed records), re-stamps each valid payment with the current time as its event
time and sends it at a fixed rate. :class:`DecisionWatcher` reads the decisions topic and measures,
for every first decision of a payment, the time from the payment's Kafka append time to the
decision's append time (both topics use ``LogAppendTime``), and how it splits into ingest and
features, scoring, and output.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from core.config import Settings, TopicSettings, with_overrides
from core.errors import ServiceError
from riskstream.support.kafka_io import Outgoing, produce_at_rate
from training.simulator.generate import Simulation
from training.simulator.writers import transaction_lines

LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
LIVE_ROLES = ("transactions", "labels", "dead_letter", "decisions", "predictions", "alerts")
ADMIN_TIMEOUT_S = 30.0
POLL_S = 0.2
PACE_EVERY = 50
CHUNK = 5_000
FLUSH_TIMEOUT_S = 30.0


def live_topics(
    settings: Settings,
    prefix: str,
    partitions: int = 2,
    append_time: tuple[str, ...] = ("transactions", "decisions"),
) -> Settings:
    """Fresh topics ``<prefix>-<role>`` for one run, those of ``append_time`` stamped by the
    broker (LogAppendTime), and settings pointing at them."""
    conf: dict[str, Any] = {**settings.kafka.client_config()}
    admin = AdminClient(conf)
    topics = dict(settings.kafka.topics)
    new = []
    for role in LIVE_ROLES:
        name = f"{prefix}-{role.replace('_', '-')}"
        topics[role] = TopicSettings(name=name, partitions=partitions)
        stamped = role in append_time
        new.append(NewTopic(name, partitions, 1, config=LOG_APPEND_TIME if stamped else {}))
    for name, future in admin.create_topics(new).items():
        try:
            future.result(timeout=ADMIN_TIMEOUT_S)
        except Exception as exc:
            raise ServiceError(f"could not create live topic {name}: {exc}") from exc
    return with_overrides(settings, kafka={"topics": topics})


@dataclass
class LiveFeed:
    """Sends a simulation's transactions at ``rate`` per second with event time = now."""

    settings: Settings
    sim: Simulation
    rate: float
    sent: int = 0
    fraud: dict[str, bool] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Send in a background thread until the simulation is exhausted or :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def done(self) -> bool:
        """Whether every record was sent."""
        return self._thread is not None and not self._thread.is_alive()

    def _records(self) -> Iterator[Outgoing]:
        topic = self.settings.kafka.topic("transactions")
        plan, tx = self.sim.delivery, self.sim.transactions
        for chunk in range(0, len(plan), CHUNK):
            lines = transaction_lines(self.sim, chunk, min(chunk + CHUNK, len(plan)))
            rows = plan.source[chunk : chunk + len(lines)]
            for line, row in zip(lines, rows.tolist(), strict=True):
                value = _restamp(line)
                event_id = json.loads(value).get("event_id") if value is not line else None
                if isinstance(event_id, str):
                    self.fraud[event_id] = bool(tx.fraud[row])
                yield topic, value, self.sim.entities.cards[tx.card[row]], None
                self.sent += 1

    def _run(self) -> None:
        producer = Producer({**self.settings.kafka.client_config(), "linger.ms": "0"})
        produce_at_rate(
            producer,
            self._records(),
            self.rate,
            stop=self._stop,
            pace_every=PACE_EVERY,
            flush_timeout_s=FLUSH_TIMEOUT_S,
        )


def _restamp(line: bytes) -> bytes:
    """The line with ``event_time`` set to now; malformed lines are sent unchanged."""
    try:
        document = json.loads(line)
    except ValueError:
        return line
    if not isinstance(document, dict) or not isinstance(document.get("event_time"), int):
        return line
    document["event_time"] = int(time.time() * 1000)
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass
class DecisionWatcher:
    """Consumes decisions and keeps running statistics (first decision per payment only)."""

    settings: Settings
    feed: LiveFeed | None = None
    latencies_ms: list[float] = field(default_factory=list)
    stage_ms: list[tuple[float, float, float]] = field(default_factory=list)
    classes: Counter[str] = field(default_factory=Counter)
    degraded: int = 0
    caught: int = 0
    missed: int = 0
    seen: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Consume in a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="decision-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop consuming."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        kafka = self.settings.kafka
        consumer = Consumer(
            {
                **kafka.client_config(),
                "group.id": f"live-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        tx_times = _AppendTimes(self.settings)
        consumer.subscribe([kafka.topic("decisions")])
        try:
            while not self._stop.is_set():
                message = consumer.poll(POLL_S)
                if message is None or message.error() is not None or message.value() is None:
                    continue
                self._record(json.loads(message.value() or b"{}"), message.timestamp()[1], tx_times)
        finally:
            consumer.close()
            tx_times.close()

    def _record(self, decision: dict[str, Any], appended_ms: int, tx_times: _AppendTimes) -> None:
        tx_id = decision["transaction_id"]
        if tx_id in self.seen:
            return
        sent_ms = tx_times.get(tx_id)
        with self._lock:
            self.seen.add(tx_id)
            if sent_ms is not None:
                self.latencies_ms.append(float(appended_ms - sent_ms))
                self.stage_ms.append(stage_split(decision, sent_ms, appended_ms))
            self.classes[decision["decision"]] += 1
            self.degraded += bool(decision["degraded"])
            if self.feed is not None and self.feed.fraud.get(tx_id):
                if decision["decision"] == "approve":
                    self.missed += 1
                else:
                    self.caught += 1

    def percentile(self, q: float) -> float:
        """Latency percentile so far (ms); NaN before the first decision."""
        with self._lock:
            return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def stage_split(
    decision: dict[str, Any], sent_ms: int, appended_ms: int
) -> tuple[float, float, float]:
    """Where one decision's latency went: (ingest + features, scoring + decide, output), in ms.

    The decision carries ``received_time`` (the wall clock when its features were computed) and
    ``processing_latency_ms`` (from then to the decision); the rest is the sink and the broker.
    """
    features_done = int(decision["received_time"])
    decided = features_done + int(decision["processing_latency_ms"])
    return (
        float(features_done - sent_ms),
        float(decided - features_done),
        float(appended_ms - decided),
    )


class _AppendTimes:
    """Append time of each input transaction, read from the (LogAppendTime) input topic."""

    def __init__(self, settings: Settings) -> None:
        kafka = settings.kafka
        self._consumer = Consumer(
            {
                **kafka.client_config(),
                "group.id": f"live-tx-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        topic = kafka.topic("transactions")
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        self._times: dict[str, int] = {}

    def get(self, tx_id: str) -> int | None:
        """The append time of ``tx_id``, reading the input topic as far as needed."""
        deadline = time.monotonic() + 2.0
        while tx_id not in self._times and time.monotonic() < deadline:
            for message in self._consumer.consume(1000, timeout=POLL_S):
                if message.error() is not None or message.value() is None:
                    continue
                try:
                    event_id = json.loads(message.value() or b"{}").get("event_id")
                except ValueError:
                    continue
                if isinstance(event_id, str):
                    self._times.setdefault(event_id, message.timestamp()[1])
        return self._times.get(tx_id)

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
