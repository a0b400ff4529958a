"""What the scoring job already published: the replay memory read back from the decisions topic.

Why not Flink state: on a failure Flink restores the last completed checkpoint, so any state
written after it is rolled back together with the offsets, and the payments it replays are
exactly those whose memory was lost. Their decisions, though, are already in the at-least-once
decisions topic (and consumers acted on them). So the scoring UDF reads the last
``scoring.replay_memory_records`` decisions of each partition of that topic when it opens (a start,
a restart after a failure, a restore from a savepoint) and remembers, per decision id, the mode
the payment was scored in; :func:`scoring.replay.score_batch` scores a replayed payment in that
mode again. Decisions still in the producer's buffer when a TaskManager died were never seen by
anyone and are simply decided again.

It runs in the scoring UDF's Python worker (process mode), where confluent-kafka may be imported;
never in a thread-mode operator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from core.config import KafkaSettings
from core.errors import ConfigError
from scoring.replay import remembered_mode
from udfs.decisions import decision_id

LOG = logging.getLogger(__name__)
POLL_S = 0.5
BATCH = 10_000
FETCH_BYTES = 64 * 1024 * 1024


class _Published(msgspec.Struct):
    """The fields of a published decision that say how it was scored."""

    decision_id: str
    degraded: bool
    reason_codes: list[str]


_DECODER = msgspec.json.Decoder(_Published)


@dataclass(frozen=True)
class MemorySource:
    """Where the memory is read from: the decisions topic, at most ``records`` per partition,
    for at most ``timeout_s`` (the UDF must open even if the broker is slow)."""

    kafka: KafkaSettings
    topic: str
    records: int
    timeout_s: float = 30.0


class DecisionMemory:
    """Decision id -> the mode its first published copy was scored in (``full`` or ``shed``)."""

    def __init__(self) -> None:
        self._modes: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._modes)

    def remember(self, values: Iterable[bytes]) -> None:
        """Add published decisions (JSON), in topic order: the first copy of an id wins, and
        a record that is not a decision is skipped."""
        for value in values:
            try:
                published = _DECODER.decode(value)
            except msgspec.DecodeError:
                continue
            mode = remembered_mode(published.degraded, published.reason_codes)
            if mode is not None:
                self._modes.setdefault(published.decision_id, mode)

    def modes(self, transaction_ids: Sequence[str], model_version: str) -> list[str | None]:
        """The remembered mode of each payment scored by ``model_version`` (None: not a replay)."""
        if not self._modes:
            return [None] * len(transaction_ids)
        return [self._modes.get(decision_id(tx, model_version)) for tx in transaction_ids]


def read_tail(source: MemorySource) -> list[bytes]:
    """The last ``source.records`` committed records of each partition of the topic."""
    conf = source.kafka.client_config() | {
        "group.id": "riskstream-replay-memory",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        # The whole tail at once rather than librdkafka's 1 MB per partition and request: the
        # read is on the restart's critical path (100k decisions took 1.3 s).
        "max.partition.fetch.bytes": FETCH_BYTES,
        "fetch.max.bytes": FETCH_BYTES,
    }
    consumer = Consumer(conf)
    deadline = time.monotonic() + source.timeout_s
    try:
        metadata = consumer.list_topics(source.topic, timeout=source.timeout_s)
        topic = metadata.topics.get(source.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            return []
        assignment, pending = [], set()
        for partition in topic.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(source.topic, partition), timeout=source.timeout_s
            )
            if high > low:
                start = max(low, high - source.records)
                assignment.append(TopicPartition(source.topic, partition, start))
                pending.add(partition)
        if not assignment:
            return []
        consumer.assign(assignment)
        values: list[bytes] = []
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(BATCH, POLL_S):
                error = message.error()
                if error is None:
                    value = message.value()
                    if value is not None:
                        values.append(value)
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                else:
                    raise KafkaException(error)
        if pending:
            LOG.warning(
                "replay memory: read %d decisions of %s but not to the end of partitions %s "
                "within %.0f s; replays of the rest are scored by their lag",
                len(values),
                source.topic,
                sorted(pending),
                source.timeout_s,
            )
        return values
    finally:
        consumer.close()


def load(source: MemorySource | None) -> DecisionMemory:
    """The memory of ``source`` (empty when it is off or the topic cannot be read: the job
    must start anyway; the cause is logged)."""
    memory = DecisionMemory()
    if source is None or source.records <= 0:
        return memory
    started = time.monotonic()
    try:
        memory.remember(read_tail(source))
    except (KafkaException, ConfigError) as exc:
        LOG.warning(
            "replay memory: cannot read %s (%s); replayed payments are scored by their lag",
            source.topic,
            exc,
        )
        return memory
    LOG.info(
        "replay memory: %d decisions of %s in %.1f s",
        len(memory),
        source.topic,
        time.monotonic() - started,
    )
    return memory
