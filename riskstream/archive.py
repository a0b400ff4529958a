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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings
from core.progress import Progress
from features.archive import PartitionWriter, archive_line, partition_dir, write_manifest
from riskstream.support.kafka_io import TopicReader

DEFAULT_IDLE_TIMEOUT_S = 60.0
DEFAULT_RECORDS_PER_FILE = 1_000_000
PROGRESS_EVERY = 1_000


@dataclass(frozen=True)
class ArchiveResult:
    """What an archive run wrote."""

    topic: str
    records: int
    partitions: dict[int, tuple[int, int]]
    """Partition -> (first offset, end offset) archived."""


def archive_topic(
    settings: Settings,
    topic: str,
    out: Path,
    *,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    records_per_file: int = DEFAULT_RECORDS_PER_FILE,
    progress: Callable[[str], None] | None = None,
    quiet: bool = False,
) -> ArchiveResult:
    """Archive ``topic`` from its earliest offsets up to its end offsets at start into ``out``.

    Committed records only; raises (``ReadTimeoutError``) when no record arrives for
    ``idle_timeout_s`` before every partition is at its end. ``progress`` gets the first and last
    line; the records written show as a progress bar (in a terminal, unless ``quiet``).
    """
    say = progress or (lambda text: print(text, file=sys.stderr))
    writers: dict[int, PartitionWriter] = {}
    written = 0
    with TopicReader(settings, topic) as reader:
        ranges = reader.ranges
        say(
            f"archiving {topic}: {reader.expected} record(s) in {len(ranges)} partition(s) -> {out}"
        )
        bar = Progress(reader.expected, "archive", "records", quiet=quiet)
        try:
            for record in reader.records(timeout_s=None, idle_timeout_s=idle_timeout_s):
                writer = writers.get(record.partition)
                if writer is None:
                    writer = writers[record.partition] = PartitionWriter(
                        partition_dir(out, record.partition), records_per_file
                    )
                line = archive_line(
                    topic,
                    record.partition,
                    record.offset,
                    timestamp=record.timestamp,
                    timestamp_type=record.timestamp_type,
                    key=record.key,
                    value=record.value,
                )
                writer.write(line)
                written += 1
                if written % PROGRESS_EVERY == 0:
                    bar.update_to(written)
        finally:
            bar.update_to(written)
            bar.close()
            for writer in writers.values():
                writer.close()
    write_manifest(out, topic, written, ranges)
    say(f"archived {written} record(s) of {topic} into {out}")
    return ArchiveResult(topic, written, ranges)
