"""Dump a Kafka topic to JSON Lines files that keep arrival order (``riskstream archive``).

Layout: ``OUT/partition=<p>/part-<nnnnnn>.jsonl``, each line one record in offset order::

    {"topic": "transactions", "partition": 0, "offset": 17, "timestamp": 1522540800123,
     "timestamp_type": "create", "key": "card-1", "value": "<the payload, verbatim>"}

plus ``OUT/_archive.json`` (topic, per-partition offset ranges, counts). The record timestamp is
what the live job's Kafka source turned into the stream timestamp (producers set it to the event
time), so a backfill of the archive assigns the same timestamps and watermarks. A payload that is
not UTF-8 is kept as base64 under ``value_b64`` instead of ``value``.

The topic is read from its earliest retained offset up to the end offsets at start, so a topic
still being written is archived up to a well-defined point.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import Consumer, KafkaException, TopicPartition

from core.config import Settings
from core.errors import ServiceError

ARCHIVE_MANIFEST = "_archive.json"
METADATA_TIMEOUT_S = 10.0
POLL_S = 0.5
DEFAULT_IDLE_TIMEOUT_S = 60.0
DEFAULT_RECORDS_PER_FILE = 1_000_000
PROGRESS_EVERY = 50_000
TIMESTAMP_TYPES = {0: "none", 1: "create", 2: "log_append"}


@dataclass(frozen=True)
class ArchiveResult:
    """What an archive run wrote."""

    topic: str
    records: int
    partitions: dict[int, tuple[int, int]]
    """Partition -> (first offset, end offset) archived."""


def partition_dir(out: Path, partition: int) -> Path:
    """Directory of one partition's files."""
    return out / f"partition={partition}"


def archive_line(message: Any) -> str:
    """The JSON line of one consumed message."""
    ts_type, ts = message.timestamp()
    key = message.key()
    document: dict[str, Any] = {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": ts,
        "timestamp_type": TIMESTAMP_TYPES.get(ts_type, str(ts_type)),
        "key": key.decode("utf-8", "replace") if key is not None else None,
    }
    value: bytes | None = message.value()
    try:
        document["value"] = value.decode("utf-8") if value is not None else None
    except UnicodeDecodeError:
        document["value_b64"] = base64.b64encode(value or b"").decode()
    return json.dumps(document, separators=(",", ":"))


class _PartitionWriter:
    """Rolls ``part-<n>.jsonl`` files of one partition every ``records_per_file`` lines."""

    def __init__(self, directory: Path, records_per_file: int) -> None:
        self.directory = directory
        self.records_per_file = records_per_file
        self.count = 0
        self._file: TextIO | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, line: str) -> None:
        if self._file is None or self.count % self.records_per_file == 0:
            self.close()
            part = self.count // self.records_per_file
            self._file = (self.directory / f"part-{part:06d}.jsonl").open("w", encoding="utf-8")
        self._file.write(line + "\n")
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


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
    writers: dict[int, _PartitionWriter] = {}
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
                writer = writers[partition] = _PartitionWriter(
                    partition_dir(out, partition), records_per_file
                )
            writer.write(archive_line(message))
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
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "topic": topic,
        "records": written,
        "partitions": {str(p): {"first": low, "end": high} for p, (low, high) in ranges.items()},
    }
    (out / ARCHIVE_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    say(f"archived {written} record(s) of {topic} into {out}")
    return ArchiveResult(topic, written, ranges)
