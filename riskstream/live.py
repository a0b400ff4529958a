"""Live traffic for the demo and the end-to-end benchmarks: a simulated world streamed into Kafka
with its own event times, and the decisions that come back.

Event times are the generator's. :func:`placed` puts a simulation on the calendar so that the
streamed window ends at a chosen moment (its start date moves by whole days, so every event keeps
its hour of day, and payments, labels and delivery times move together); nothing is re-stamped.
:func:`cut` splits the delivered records into a *history* (at least :func:`history_ms` of event
time: the longest window plus its label delay) and a *live* part (the last N payment records).
:func:`warm_start` sends the history at full speed so the job's card, device and terminal state
is up to date; :class:`LiveFeed` then sends the live part paced at a payment rate. The rate only
paces: one card's payments are never closer together in event time than the generator made them
(the rate decides how fast simulated time runs, not how a card behaves). Labels flow with the
payments in arrival order, each at the time it became known, so the terminal and device fraud
features are live.

:class:`DecisionWatcher` reads the decisions topic (``LogAppendTime``) and keeps, for the first
decision of every live payment, two latencies: from ingestion (the decision's ``received_time``,
when the job's validate step read the payment) to the decision's append time, and end to end, from
the moment the feed handed the payment to the Kafka client to the same append time; how the end to
end splits into getting to the job (producer, broker, consumer lag), the job (queues, features,
scoring) and the output; and the decision classes, frauds caught and missed and the out-of-range
share.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from core.config import Settings, SimulatorSettings, TopicSettings, replace, with_overrides
from core.errors import ConfigError, ServiceError
from core.progress import Progress
from riskstream.simulate_kafka import KafkaRun, merged_records, produce
from riskstream.support.kafka_io import Outgoing, produce_at_rate
from schemas.feature_set import PAYMENT_FEATURES, FeatureSet
from training.simulator import handbook, world
from training.simulator.columns import DELIVERY_CODE, MS_PER_DAY
from training.simulator.encode import transaction_ids
from training.simulator.generate import Simulation, simulate

LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
LIVE_ROLES = ("transactions", "labels", "dead_letter", "decisions", "predictions", "alerts")
ADMIN_TIMEOUT_S = 30.0
POLL_S = 0.2
PACE_EVERY = 1  # live payments go one by one, as a payment network sends them
FLUSH_TIMEOUT_S = 30.0
MARGIN_DAYS = 2
"""Whole days simulated beyond the estimate of what the streamed window needs."""
OUT_OF_RANGE_FIELD = "out_of_range_features"
"""Decision field (when the job's guardrails add it): the model inputs outside their training
range (empty: all inside)."""


def live_topics(
    settings: Settings,
    prefix: str,
    partitions: int = 2,
    append_time: tuple[str, ...] = ("decisions",),
) -> Settings:
    """Fresh topics ``<prefix>-<role>`` for one run, those of ``append_time`` stamped by the
    broker (LogAppendTime), and settings pointing at them.

    The input topics keep the producer's timestamp (the event time), so the job's watermarks
    follow event time as in production; decisions are stamped by the broker for the latency."""
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


def history_ms(feature_set: FeatureSet = PAYMENT_FEATURES) -> int:
    """How far back in event time any feature of ``feature_set`` looks from a payment: the
    longest window plus its delay (for the payment features the terminals' 30-day window behind
    the 7-day label delay, 37 days). A warm start replays at least this much history.

    >>> history_ms() // MS_PER_DAY
    37
    """
    return max(f.window.length_ms + f.window.delay_ms for f in feature_set.features if f.window)


HISTORY = history_ms(PAYMENT_FEATURES)
"""Warm-start history of the payment features: the longest window plus its delay (37 days)."""


def payments_per_day(s: SimulatorSettings) -> float:
    """The generator's mean number of payments per simulated day (every card or customer pays
    twice a day on average, before fraud)."""
    if s.profile == "handbook":
        return s.customers * (handbook.TX_PER_DAY_LOW + handbook.TX_PER_DAY_HIGH) / 2
    return s.cards * world.TX_PER_DAY_SHAPE * world.TX_PER_DAY_SCALE


def placed(
    s: SimulatorSettings, end_ms: int, live_payments: int, history: int
) -> SimulatorSettings:
    """``s`` on the calendar: enough whole days for ``history`` ms plus ``live_payments``, the last
    day being ``end_ms``'s UTC day. Only the calendar changes (start date and number of days, so
    every event keeps the hour of day the generator gave it); profile, sizes, rates and seed are
    those of ``s``."""
    live_days = live_payments / payments_per_day(s)
    days = math.ceil(history / MS_PER_DAY + 1.5 * live_days) + MARGIN_DAYS
    last = datetime.fromtimestamp(end_ms / 1000, UTC).date()
    start = last - timedelta(days=days - 1)
    return replace(s, start_date=start.isoformat(), days=days)


@dataclass(frozen=True)
class Schedule:
    """How one simulation is streamed, in its own times (a payment record's arrival time, a
    label's time): the history ``[history_from_ms, live_from_ms)`` at full speed, then the live part
    ``[live_from_ms, live_to_ms]`` paced. ``*_tx`` are positions in ``sim.delivery`` (arrival
    order), ``*_labels`` positions in ``sim.labels`` (label-time order)."""

    history_from_ms: int
    live_from_ms: int
    live_to_ms: int
    history_tx: range
    history_labels: range
    live_tx: range
    live_labels: range


def cut(sim: Simulation, live_payments: int, end_ms: int, history: int) -> Schedule:
    """The last ``live_payments`` payment records delivered at or before ``end_ms`` (live), and
    every record of the ``history`` ms before them (history)."""
    arrival, label_time = sim.delivery.arrival_time, sim.labels.event_time
    live_stop = int(np.searchsorted(arrival, end_ms, side="right"))
    live_start = live_stop - live_payments
    live_from = int(arrival[live_start]) if live_payments and live_start >= 0 else end_ms
    history_from = live_from - history
    if live_start < 0 or history_from < sim.start_ms:
        raise ConfigError(
            f"live traffic: {live_payments} live payments after {history // MS_PER_DAY} days of "
            f"history do not fit the simulated {sim.settings.days} days "
            f"(from {sim.settings.start_date}); lower the rate or the seconds"
        )
    history_start = int(np.searchsorted(arrival, history_from, side="left"))
    labels = [int(np.searchsorted(label_time, t, side="left")) for t in (history_from, live_from)]
    labels_stop = int(np.searchsorted(label_time, end_ms, side="right"))
    return Schedule(
        history_from_ms=history_from,
        live_from_ms=live_from,
        live_to_ms=end_ms,
        history_tx=range(history_start, live_start),
        history_labels=range(labels[0], labels[1]),
        live_tx=range(live_start, live_stop),
        live_labels=range(labels[1], labels_stop),
    )


def valid_payments(sim: Simulation, rows: range) -> int:
    """Distinct well-formed payments among the delivered records ``rows`` (each gets a decision;
    a re-sent payment counts once, a malformed record not at all)."""
    plan = sim.delivery
    kinds, sources = plan.kind[rows.start : rows.stop], plan.source[rows.start : rows.stop]
    return len(np.unique(sources[kinds != DELIVERY_CODE["malformed"]]))


def first_deliveries(sim: Simulation) -> npt.NDArray[np.int64]:
    """For each transaction row, the position in ``sim.delivery`` of its first well-formed
    delivery (-1: only malformed ones)."""
    plan = sim.delivery
    well_formed = np.flatnonzero(plan.kind != DELIVERY_CODE["malformed"])
    first = np.full(len(sim.transactions), -1, dtype=np.int64)
    rows, index = np.unique(plan.source[well_formed], return_index=True)
    first[rows] = well_formed[index]
    return first


def warm_start(settings: Settings, sim: Simulation, schedule: Schedule) -> KafkaRun:
    """Send the schedule's history (payments and labels in arrival order, record timestamp = event
    time) to the input topics as fast as Kafka takes it."""
    total = len(schedule.history_tx) + len(schedule.history_labels)
    with Progress(total, "warm start: history to Kafka", "records") as bar:
        return produce(
            sim,
            settings.kafka,
            0.0,
            bar,
            tx_rows=schedule.history_tx,
            label_rows=schedule.history_labels,
        )


def history_until(settings: Settings, end_ms: int) -> tuple[Simulation, Schedule]:
    """The ``simulator`` world placed to end at ``end_ms``, cut for a warm start alone: its last
    :data:`HISTORY` (no live part)."""
    sim = simulate(placed(settings.simulator, end_ms, 0, HISTORY))
    return sim, cut(sim, 0, end_ms, HISTORY)


@dataclass
class LiveFeed:
    """Sends the live part of ``schedule`` (default: the whole simulation) paced at ``rate``
    payment records per second (labels go in between, at their arrival positions)."""

    settings: Settings
    sim: Simulation
    rate: float
    schedule: Schedule | None = None
    sent: int = 0
    """Payment records sent so far (malformed and re-sent ones included)."""
    fraud: dict[str, bool] = field(default_factory=dict)
    """Every well-formed live payment sent so far: whether it is a fraud."""
    sent_ms: dict[str, int] = field(default_factory=dict)
    """Wall-clock ms at which each live payment was first handed to the Kafka client."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Send in a background thread until the live part is sent or :meth:`stop`."""
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

    def _parts(self) -> tuple[range, range]:
        if self.schedule is None:
            return range(len(self.sim.delivery)), range(len(self.sim.labels))
        return self.schedule.live_tx, self.schedule.live_labels

    def records(self) -> Iterator[Outgoing]:
        """The live records in arrival order, registering each payment as it goes."""
        tx_rows, label_rows = self._parts()
        kafka = self.settings.kafka
        tx_topic = kafka.topic("transactions")
        plan, fraud = self.sim.delivery, self.sim.transactions.fraud
        sources = plan.source[tx_rows.start : tx_rows.stop]
        ids = transaction_ids(self.sim.run, sources)
        # A payment is live if its first well-formed delivery is in the live part (a re-send of
        # a history payment was decided in the warm start).
        first = first_deliveries(self.sim)
        positions = np.arange(tx_rows.start, tx_rows.stop)
        valid = (first[sources] == positions).tolist()
        position = 0
        merged = merged_records(self.sim, tx_topic, kafka.topic("labels"), tx_rows, label_rows)
        for record in merged:
            if record[0] == tx_topic:
                if valid[position] and ids[position] not in self.sent_ms:
                    self.fraud[ids[position]] = bool(fraud[sources[position]])
                    self.sent_ms[ids[position]] = int(time.time() * 1000)
                position += 1
                self.sent += 1
            yield record

    def send(self, producer: Producer) -> int:
        """Send the live records through ``producer`` at :attr:`rate` payment records per second
        (labels in between); returns the records sent."""
        tx_rows, label_rows = self._parts()
        records_per_payment = (len(tx_rows) + len(label_rows)) / max(len(tx_rows), 1)
        return produce_at_rate(
            producer,
            self.records(),
            self.rate * records_per_payment,
            stop=self._stop,
            pace_every=PACE_EVERY,
            flush_timeout_s=FLUSH_TIMEOUT_S,
        )

    def _run(self) -> None:
        self.send(Producer({**self.settings.kafka.client_config(), "linger.ms": "0"}))


@dataclass
class DecisionWatcher:
    """Consumes decisions and keeps running statistics of the live payments (first decision
    per payment only); decisions of other payments (a warm start's history) are only counted."""

    settings: Settings
    feed: LiveFeed | None = None
    latencies_ms: list[float] = field(default_factory=list)
    """End to end: the feed handed the payment to the Kafka client -> its decision appended."""
    ingest_latencies_ms: list[float] = field(default_factory=list)
    """Ingestion (the decision's ``received_time``) -> the decision appended to its topic."""
    stage_ms: list[tuple[float, float, float]] = field(default_factory=list)
    """:func:`stage_split` of each end-to-end latency."""
    classes: Counter[str] = field(default_factory=Counter)
    degraded: int = 0
    caught: int = 0
    missed: int = 0
    blocked_fraud: int = 0
    out_of_range: int = 0
    with_range_field: int = 0
    history_decided: int = 0
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
        consumer.subscribe([kafka.topic("decisions")])
        try:
            while not self._stop.is_set():
                for message in consumer.consume(1000, timeout=POLL_S):
                    if message.error() is not None or message.value() is None:
                        continue
                    self.record(json.loads(message.value() or b"{}"), message.timestamp()[1])
        finally:
            consumer.close()

    def record(self, decision: dict[str, Any], appended_ms: int) -> None:
        """Account for one decision record appended to the decisions topic at ``appended_ms``."""
        tx_id = decision["transaction_id"]
        with self._lock:
            if tx_id in self.seen:
                return
            self.seen.add(tx_id)
            sent_ms = self.feed.sent_ms.get(tx_id) if self.feed is not None else None
            if sent_ms is None:
                self.history_decided += 1
                return
            self.latencies_ms.append(float(appended_ms - sent_ms))
            self.ingest_latencies_ms.append(float(appended_ms - int(decision["received_time"])))
            self.stage_ms.append(stage_split(decision, sent_ms, appended_ms))
            verdict = decision["decision"]
            self.classes[verdict] += 1
            self.degraded += bool(decision["degraded"])
            if OUT_OF_RANGE_FIELD in decision:
                self.with_range_field += 1
                self.out_of_range += bool(decision[OUT_OF_RANGE_FIELD])
            if self.feed is not None and self.feed.fraud.get(tx_id):
                if verdict == "approve":
                    self.missed += 1
                else:
                    self.caught += 1
                    self.blocked_fraud += verdict == "block"

    @property
    def decided(self) -> int:
        """Live payments decided so far."""
        with self._lock:
            return sum(self.classes.values())

    def percentile(self, q: float, from_ingestion: bool = False) -> float:
        """End-to-end latency percentile so far (ms), or from ingestion with
        ``from_ingestion``; NaN before the first decision."""
        with self._lock:
            values = self.ingest_latencies_ms if from_ingestion else self.latencies_ms
            return float(np.percentile(values, q)) if values else float("nan")


def stage_split(
    decision: dict[str, Any], sent_ms: int, appended_ms: int
) -> tuple[float, float, float]:
    """Where one decision's end-to-end latency went, in ms: (to the job: producer, broker and
    any consumer lag until the validate step read it; in the job: queues, features, scoring and
    decide; output: the decisions sink and the broker's append).

    The decision carries ``received_time`` (the wall clock when the job read the payment) and
    ``processing_latency_ms`` (from then to the decision).
    """
    received = int(decision["received_time"])
    decided = received + int(decision["processing_latency_ms"])
    return (
        float(received - sent_ms),
        float(decided - received),
        float(appended_ms - decided),
    )
