"""Topic archives: the JSON Lines files ``riskstream archive`` writes, and the one reader of them.

Layout: ``OUT/partition=<p>/part-<nnnnnn>.jsonl``, each line one record in offset order::

    {"topic": "transactions", "partition": 0, "offset": 17, "timestamp": 1522540800123,
     "timestamp_type": "create", "key": "card-1", "value": "<the payload, verbatim>"}

plus ``OUT/_archive.json`` (topic, per-partition offset ranges, counts). A payload that is not
UTF-8 is kept as base64 under ``value_b64`` instead of ``value``. The writer side
(:func:`archive_line`, :class:`PartitionWriter`, :func:`write_manifest`) is used by
:mod:`riskstream.archive`, which consumes the topic; the reader (:func:`read_archive`) by the
backfill staging, the features table and the training-set builder.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from core.errors import SchemaError

ARCHIVE_MANIFEST = "_archive.json"
ARCHIVE_KEYS = frozenset({"partition", "offset", "timestamp"})
"""Keys that make a JSON line an archive line (what the readers detect)."""
TIMESTAMP_TYPES = {0: "none", 1: "create", 2: "log_append"}


@dataclass(frozen=True)
class ArchivedRecord:
    """One archived Kafka record, as read back from its line."""

    row: int
    """Line number in its file (0-based, blank lines counted)."""
    partition: int
    offset: int
    timestamp: int | None
    """The record timestamp (epoch ms), ``None`` if the line holds none or a non-integer."""
    key: str | None
    value: str | None
    """The payload, ``None`` if it was null or not UTF-8 (then see :attr:`value_b64`)."""
    value_b64: str | None

    @property
    def payload(self) -> str:
        """The payload as text: ``value``, else the base64 text, else empty."""
        if self.value is not None:
            return self.value
        return self.value_b64 or ""


def partition_dir(out: Path, partition: int) -> Path:
    """Directory of one partition's files."""
    return out / f"partition={partition}"


def archive_line(
    topic: str,
    partition: int,
    offset: int,
    *,
    timestamp: int,
    timestamp_type: int,
    key: bytes | None,
    value: bytes | None,
) -> str:
    """The JSON line of one record (a payload that is not UTF-8 goes under ``value_b64``).

    >>> archive_line("t", 0, 5, timestamp=7, timestamp_type=1, key=b"k", value=b"v")
    '{"topic":"t","partition":0,"offset":5,"timestamp":7,"timestamp_type":"create","key":"k","value":"v"}'
    """
    document: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp,
        "timestamp_type": TIMESTAMP_TYPES.get(timestamp_type, str(timestamp_type)),
        "key": key.decode("utf-8", "replace") if key is not None else None,
    }
    try:
        document["value"] = value.decode("utf-8") if value is not None else None
    except UnicodeDecodeError:
        document["value_b64"] = base64.b64encode(value or b"").decode()
    return json.dumps(document, separators=(",", ":"))


class PartitionWriter:
    """Rolls ``part-<n>.jsonl`` files of one partition every ``records_per_file`` lines."""

    def __init__(self, directory: Path, records_per_file: int) -> None:
        self.directory = directory
        self.records_per_file = records_per_file
        self.count = 0
        self._file: TextIO | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def write(self, line: str) -> None:
        """Append one archive line, starting a new part file when the current one is full."""
        if self._file is None or self.count % self.records_per_file == 0:
            self.close()
            part = self.count // self.records_per_file
            self._file = (self.directory / f"part-{part:06d}.jsonl").open("w", encoding="utf-8")
        self._file.write(line + "\n")
        self.count += 1

    def close(self) -> None:
        """Close the current part file."""
        if self._file is not None:
            self._file.close()
            self._file = None


def write_manifest(out: Path, topic: str, records: int, ranges: dict[int, tuple[int, int]]) -> None:
    """Write ``OUT/_archive.json``: topic, record count and each partition's offset range."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "topic": topic,
        "records": records,
        "partitions": {str(p): {"first": low, "end": high} for p, (low, high) in ranges.items()},
    }
    (out / ARCHIVE_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")


def is_archive_line(line: str) -> bool:
    """Whether a line is a topic-archive line (a JSON object with partition, offset, timestamp).

    >>> is_archive_line('{"partition": 0, "offset": 1, "timestamp": 2, "value": "x"}')
    True
    >>> is_archive_line('{"event_id": "a"}'), is_archive_line("oops")
    (False, False)
    """
    try:
        document = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(document, dict) and document.keys() >= ARCHIVE_KEYS


def is_archive_file(path: Path) -> bool:
    """Whether the first non-blank line of a JSON Lines file is an archive line."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                return is_archive_line(line)
    return False


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def read_archive(path: Path) -> Iterator[ArchivedRecord]:
    """The records of one archive file, in file (offset) order.

    Raises :class:`SchemaError` naming the file and row on a line that is not an archive line.
    """
    with path.open("r", encoding="utf-8") as handle:
        for row, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                partition, offset, stamp = (
                    int(doc["partition"]),
                    int(doc["offset"]),
                    doc["timestamp"],
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise SchemaError(f"{path} row {row}: not a topic-archive line: {exc}") from exc
            yield ArchivedRecord(
                row=row,
                partition=partition,
                offset=offset,
                timestamp=stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else None,
                key=_text(doc.get("key")),
                value=_text(doc.get("value")),
                value_b64=_text(doc.get("value_b64")),
            )
