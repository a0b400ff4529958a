"""Reading a Kafka topic to its end and producing records at a steady rate.

Nothing here returns partial results silently: a read that does not reach the end offsets in time
raises :class:`ReadTimeoutError` (which topic, how many records, which partitions are behind), and a
produce whose records are not all acknowledged raises :class:`ServiceError`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from core.config import Settings
from core.errors import ServiceError

METADATA_TIMEOUT_S = 10.0
POLL_S = 0.5
DEFAULT_READ_TIMEOUT_S = 30.0
BUFFER_FULL_WAIT_S = 0.05
DEFAULT_FLUSH_TIMEOUT_S = 60.0

_QUIET_LOGGER = logging.getLogger("riskstream.support.kafka")
_QUIET_LOGGER.addHandler(logging.NullHandler())
_QUIET_LOGGER.propagate = False

Outgoing = tuple[str, bytes | str, bytes | str | None, int | None]
"""One record to produce: ``(topic, value, key, timestamp)``; ``timestamp`` None = now."""


class ReadTimeoutError(ServiceError):
    """A topic was not read to its end offsets in time; the message says how far the read got."""


@dataclass(frozen=True)
class Record:
    """One consumed record."""

    partition: int
    offset: int
    timestamp_type: int
    timestamp: int
    key: bytes | None
    value: bytes | None


class TopicReader:
    """Reads one topic from its earliest retained offsets to the end offsets it had when opened.

    ``committed`` (the default) reads with ``isolation.level=read_committed``: records of open or
    aborted transactions are skipped and the end offsets are the last stable offsets. A partition
    is done when the consumer's position reaches its end, since transaction markers take offsets
    but are never delivered. Use as a context manager; :attr:`ranges` is known once opened.
    """

    def __init__(self, settings: Settings, topic: str, *, committed: bool = True) -> None:
        self.topic = topic
        self._consumer = Consumer(
            {
                **settings.kafka.client_config(),
                "group.id": f"riskstream-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed" if committed else "read_uncommitted",
                "logger": _QUIET_LOGGER,
            }
        )
        try:
            self.ranges = self._ranges()
        except BaseException:
            self._consumer.close()
            raise
        self.read = 0
        self._positions = {p: low for p, (low, high) in self.ranges.items() if high > low}

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()

    @property
    def expected(self) -> int:
        """Offsets between the start and end offsets (an upper bound: markers take offsets)."""
        return sum(high - low for low, high in self.ranges.values())

    def _ranges(self) -> dict[int, tuple[int, int]]:
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=METADATA_TIMEOUT_S)
        except KafkaException as exc:
            raise ServiceError(f"cannot read metadata of topic {self.topic!r}: {exc}") from exc
        info = metadata.topics.get(self.topic)
        if info is None or info.error is not None or not info.partitions:
            raise ServiceError(
                f"topic {self.topic!r} does not exist on the broker "
                f"(error: {info.error if info else None})"
            )
        ranges = {}
        for partition in sorted(info.partitions):
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=METADATA_TIMEOUT_S
            )
            ranges[partition] = (low, high)
        return ranges

    def _pending(self) -> list[int]:
        return [p for p, at in self._positions.items() if at < self.ranges[p][1]]

    def _behind(self) -> str:
        return ", ".join(
            f"partition {p} at offset {self._positions[p]} of {self.ranges[p][1]}"
            for p in self._pending()
        )

    def records(
        self, timeout_s: float | None = DEFAULT_READ_TIMEOUT_S, idle_timeout_s: float | None = None
    ) -> Iterator[Record]:
        """The records up to the end offsets, per partition in offset order.

        Raises :class:`ReadTimeoutError` when the end is not reached within ``timeout_s`` in all, or
        when no record arrives for ``idle_timeout_s`` (either may be None: no such limit).
        """
        started = time.monotonic()
        last = started
        self._consumer.assign(
            [TopicPartition(self.topic, p, at) for p, at in self._positions.items()]
        )
        while self._pending():
            now = time.monotonic()
            if timeout_s is not None and now - started > timeout_s:
                raise ReadTimeoutError(
                    f"reading {self.topic!r} to its end: {self.read} record(s) in "
                    f"{timeout_s:.0f} s, not at the end: {self._behind()}"
                )
            if idle_timeout_s is not None and now - last > idle_timeout_s:
                raise ReadTimeoutError(
                    f"reading {self.topic!r} to its end: no record for {idle_timeout_s:.0f} s "
                    f"after {self.read} record(s), not at the end: {self._behind()}"
                )
            message = self._consumer.poll(POLL_S)
            if message is None:
                pending = self._pending()
                for tp in self._consumer.position([TopicPartition(self.topic, p) for p in pending]):
                    self._positions[tp.partition] = max(self._positions[tp.partition], tp.offset)
                continue
            error = message.error()
            if error is not None:
                raise ServiceError(f"reading {self.topic!r}: consumer error {error}")
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None or partition not in self._positions:
                continue
            if offset >= self.ranges[partition][1]:
                self._positions[partition] = offset + 1
                continue
            self._positions[partition] = offset + 1
            self.read += 1
            last = time.monotonic()
            kind, stamp = message.timestamp()
            yield Record(partition, offset, kind, stamp, message.key(), message.value())


def read_to_end(
    settings: Settings,
    topic: str,
    *,
    timeout_s: float | None = DEFAULT_READ_TIMEOUT_S,
    idle_timeout_s: float | None = None,
    committed: bool = True,
) -> list[Record]:
    """Every record of ``topic`` from its earliest offsets to its end offsets at call time.

    Read committed by default; a read that does not reach the end in time raises
    :class:`ReadTimeoutError` (see :meth:`TopicReader.records`).
    """
    with TopicReader(settings, topic, committed=committed) as reader:
        return list(reader.records(timeout_s, idle_timeout_s))


def read_values(
    settings: Settings,
    topic: str,
    *,
    timeout_s: float | None = DEFAULT_READ_TIMEOUT_S,
    committed: bool = True,
) -> list[bytes]:
    """The non-null values of :func:`read_to_end`."""
    records = read_to_end(settings, topic, timeout_s=timeout_s, committed=committed)
    return [r.value for r in records if r.value is not None]


def producer(settings: Settings, **config: str) -> Producer:
    """A producer for ``settings``' Kafka (client config, then ``config`` overrides)."""
    conf: dict[str, Any] = {**settings.kafka.client_config(), **config}
    return Producer(conf)


def produce_at_rate(
    producer: Producer,
    records: Iterable[Outgoing],
    rate: float | None,
    *,
    stop: threading.Event | None = None,
    pace_every: int = 1,
    progress: Callable[[int], None] | None = None,
    flush_timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S,
) -> int:
    """Produce ``records`` at about ``rate`` records per second (None: as fast as possible).

    The pace is checked every ``pace_every`` records against the start time, so short stalls
    are caught up. Stops early once ``stop`` is set. A full producer queue is waited out. Ends
    with a flush; raises :class:`ServiceError` if a record failed or was not acknowledged within
    ``flush_timeout_s``. ``progress`` gets the number of records produced since its last call.
    Returns how many records were produced.
    """
    failures: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(err)

    started = time.monotonic()
    sent = reported = 0
    for topic, value, key, timestamp in records:
        if stop is not None and stop.is_set():
            break
        while True:
            try:
                if timestamp is None:
                    producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                else:
                    producer.produce(
                        topic, value=value, key=key, timestamp=timestamp, on_delivery=on_delivery
                    )
                break
            except BufferError:
                producer.poll(BUFFER_FULL_WAIT_S)
        sent += 1
        if sent % pace_every == 0:
            producer.poll(0)
            if progress is not None:
                progress(sent - reported)
                reported = sent
            if rate:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    remaining = producer.flush(flush_timeout_s)
    if progress is not None and sent > reported:
        progress(sent - reported)
    if remaining or failures:
        raise ServiceError(
            f"{remaining} of {sent} record(s) not acknowledged after {flush_timeout_s:.0f} s, "
            f"{len(failures)} failed (first: {failures[:1]})"
        )
    return sent
