"""Kafka output: transactions and labels merged in arrival order, produced at a controlled rate.

Each record's Kafka timestamp is its event time and its key the card id, so per-card order holds
within a partition and Flink's Kafka source can use record timestamps for watermarks. Malformed
records go to the transactions topic like any other (keyed and stamped by the record they corrupt),
because the stream job must dead-letter them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from core.config import KafkaSettings
from core.errors import ServiceError
from core.progress import Progress
from training.simulator.generate import Simulation
from training.simulator.writers import label_lines, transaction_lines

if TYPE_CHECKING:
    from riskstream.support.kafka_io import Outgoing

PRODUCER_CONFIG: Final = {
    "linger.ms": "20",
    "batch.size": "1048576",
    "queue.buffering.max.messages": "1000000",
    "compression.type": "lz4",
    "acks": "all",
}
CHUNK = 20_000  # records encoded at a time
PACE_EVERY = 500  # records between rate checks
FLUSH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class KafkaRun:
    """What was produced where, and how fast."""

    transactions_topic: str
    labels_topic: str
    transactions: int
    labels: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        """Records acknowledged per second of wall time."""
        return (self.transactions + self.labels) / self.seconds if self.seconds > 0 else 0.0


def merged_records(
    sim: Simulation,
    tx_topic: str,
    label_topic: str,
    tx_rows: range | None = None,
    label_rows: range | None = None,
) -> Iterator[Outgoing]:
    """Transactions and labels merged in arrival order, as (topic, value, key, timestamp).

    ``tx_rows`` selects delivered records (positions in ``sim.delivery``, which is in arrival
    order) and ``label_rows`` labels (in label-time order); default: all of them. The timestamp
    is the record's event time (a label's: the time it became known).
    """
    plan, labels, tx = sim.delivery, sim.labels, sim.transactions
    tx_rows = range(len(plan)) if tx_rows is None else tx_rows
    label_rows = range(len(labels)) if label_rows is None else label_rows
    arrival = np.concatenate(
        [
            plan.arrival_time[tx_rows.start : tx_rows.stop],
            labels.event_time[label_rows.start : label_rows.stop],
        ]
    )
    is_label = np.concatenate(
        [np.zeros(len(tx_rows), np.bool_), np.ones(len(label_rows), np.bool_)]
    )
    order = np.argsort(arrival, kind="stable")
    tx_done, label_done = tx_rows.start, label_rows.start
    for chunk in range(0, len(order), CHUNK):
        labelled = is_label[order[chunk : chunk + CHUNK]]
        n_labels = int(labelled.sum())
        n_tx = len(labelled) - n_labels
        # Each stream keeps its own order in the merge, so a chunk holds a contiguous run of each.
        values = np.empty(len(labelled), dtype=object)
        keys = np.empty(len(labelled), dtype=object)
        stamps = np.empty(len(labelled), dtype=np.int64)
        source = plan.source[tx_done : tx_done + n_tx]
        values[~labelled] = transaction_lines(sim, tx_done, tx_done + n_tx)
        keys[~labelled] = sim.entities.cards[tx.card[source]]
        stamps[~labelled] = tx.event_time[source]
        target = labels.transaction[label_done : label_done + n_labels]
        values[labelled] = label_lines(sim, label_done, label_done + n_labels)
        keys[labelled] = sim.entities.cards[tx.card[target]]
        stamps[labelled] = labels.event_time[label_done : label_done + n_labels]
        topics = np.where(labelled, label_topic, tx_topic).tolist()
        yield from zip(topics, values.tolist(), keys.tolist(), stamps.tolist(), strict=True)
        tx_done += n_tx
        label_done += n_labels


def produce(
    sim: Simulation,
    kafka: KafkaSettings,
    rate: float,
    progress: Progress,
    *,
    tx_rows: range | None = None,
    label_rows: range | None = None,
) -> KafkaRun:
    """Send ``sim`` (or the records selected as in :func:`merged_records`) to the
    ``transactions`` and ``labels`` topics at about ``rate`` records/s (0: as fast as possible)."""
    from confluent_kafka import Producer

    from riskstream.support.kafka_io import produce_at_rate

    tx_topic, label_topic = kafka.topic("transactions"), kafka.topic("labels")
    tx_rows = range(len(sim.delivery)) if tx_rows is None else tx_rows
    label_rows = range(len(sim.labels)) if label_rows is None else label_rows
    producer = Producer({**kafka.client_config(), **PRODUCER_CONFIG})
    started = time.monotonic()
    try:
        produce_at_rate(
            producer,
            merged_records(sim, tx_topic, label_topic, tx_rows, label_rows),
            rate,
            pace_every=PACE_EVERY,
            progress=progress.advance,
            flush_timeout_s=FLUSH_TIMEOUT_S,
        )
    except ServiceError as exc:
        raise ServiceError(f"Kafka at {kafka.bootstrap}: {exc}") from exc
    seconds = time.monotonic() - started
    return KafkaRun(tx_topic, label_topic, len(tx_rows), len(label_rows), seconds)
