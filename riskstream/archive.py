"""Dump a Kafka topic to JSON Lines files that keep arrival order (``riskstream archive``).

The file format, its writer and its reader are in :mod:`features.archive`; this module consumes
the topic. The record timestamp is what the live job's Kafka source turned into the stream
timestamp (producers set it to the event time), so a backfill of the archive assigns the same
timestamps and watermarks.

The topic is read from its earliest retained offset up to the end offsets at start, so a topic
still being written is archived up to a well-defined point.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from core.config import Settings
from core.errors import ServiceError
from features.archive import PartitionWriter, archive_line, partition_dir, write_manifest

METADATA_TIMEOUT_S = 10.0
POLL_S = 0.5
DEFAULT_IDLE_TIMEOUT_S = 60.0
DEFAULT_RECORDS_PER_FILE = 1_000_000
PROGRESS_EVERY = 50_000


@dataclass(frozen=True)
class ArchiveResult:
    """What an archive run wrote."""

    topic: str
    records: int
    partitions: dict[int, tuple[int, int]]
    """Partition -> (first offset, end offset) archived."""


def message_line(message: Any) -> str:
    """The archive line of one consumed message (format: :func:`features.archive.archive_line`)."""
    ts_type, ts = message.timestamp()
    return archive_line(
        message.topic(),
        message.partition(),
        message.offset(),
        timestamp=ts,
        timestamp_type=ts_type,
        key=message.key(),
        value=message.value(),
    )


def _end_offsets(consumer: Consumer, topic: str) -> dict[int, tuple[int, int]]:
    try:
        metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
    except KafkaException as exc:
        raise ServiceError(f"cannot read metadata of topic {topic!r}: {exc}") from exc
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise ServiceError(
            f"topic {topic!r} does not exist on the broker (error: {info.error if info else None})"
        )
    ranges = {}
    for partition in sorted(info.partitions):
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_S
        )
        ranges[partition] = (low, high)
    return ranges


def _caught_up(
    consumer: Consumer, topic: str, pending: set[int], ranges: dict[int, tuple[int, int]]
) -> set[int]:
    """Partitions whose position reached the end offset (offsets of transaction markers are
    never delivered, so the last delivered offset may be below ``end - 1``)."""
    positions = consumer.position([TopicPartition(topic, p) for p in pending])
    return {tp.partition for tp in positions if tp.offset >= ranges[tp.partition][1]}


def archive_topic(
    settings: Settings,
    topic: str,
    out: Path,
    *,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    records_per_file: int = DEFAULT_RECORDS_PER_FILE,
    progress: Callable[[str], None] | None = None,
) -> ArchiveResult:
    """Archive ``topic`` from its earliest offsets up to its end offsets at start into ``out``."""
    say = progress or (lambda text: print(text, file=sys.stderr))
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": f"riskstream-archive-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    writers: dict[int, PartitionWriter] = {}
    try:
        ranges = _end_offsets(consumer, topic)
        pending = {p for p, (low, high) in ranges.items() if high > low}
        consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in pending])
        total_expected = sum(high - low for low, high in ranges.values())
        say(f"archiving {topic}: {total_expected} record(s) in {len(ranges)} partition(s) -> {out}")
        written = 0
        last_progress = time.monotonic()
        while pending:
            message = consumer.poll(POLL_S)
            if message is None:
                pending -= _caught_up(consumer, topic, pending, ranges)
                if pending and time.monotonic() - last_progress > idle_timeout_s:
                    raise ServiceError(
                        f"archiving {topic!r}: no record for {idle_timeout_s:.0f} s with "
                        f"partitions {sorted(pending)} not at their end offsets"
                    )
                continue
            if message.error() is not None:
                raise ServiceError(f"archiving {topic!r}: consumer error {message.error()}")
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None:
                continue
            if partition not in pending or offset >= ranges[partition][1]:
                continue
            writer = writers.get(partition)
            if writer is None:
                writer = writers[partition] = PartitionWriter(
                    partition_dir(out, partition), records_per_file
                )
            writer.write(message_line(message))
            written += 1
            last_progress = time.monotonic()
            if written % PROGRESS_EVERY == 0:
                say(f"archiving {topic}: {written}/{total_expected} records")
            if offset + 1 >= ranges[partition][1]:
                pending.discard(partition)
    finally:
        for writer in writers.values():
            writer.close()
        consumer.close()
    write_manifest(out, topic, written, ranges)
    say(f"archived {written} record(s) of {topic} into {out}")
    return ArchiveResult(topic, written, ranges)
