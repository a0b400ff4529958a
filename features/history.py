"""Historical input for the backfill: discover files, replay them in arrival order as staged lines.

Inputs (``riskstream backfill --input PATH``) hold ``transactions/`` and optionally ``labels/``,
each one of:

- simulator output: ``day=YYYY-MM-DD/part-0.jsonl`` or ``.parquet`` (rows in arrival order; days in
  path order);
- a topic archive from ``riskstream archive`` (:mod:`features.archive`):
  ``partition=<p>/part-<n>.jsonl`` lines carrying the Kafka partition, offset, record timestamp
  and the payload verbatim.

Every input becomes ONE staged text file per role, read by a single Flink ``FileSource`` split (so
order is kept). A staged line is ``<record timestamp>\\t<r|j>\\t<origin>\\t<payload>``: the
record timestamp is what the live Kafka source used (the archived timestamp, else the payload's
``event_time``); ``r`` means the payload follows raw, ``j`` that it is a JSON string literal
(payloads containing line breaks); ``origin`` is ``file:row`` so a dead letter can be traced to
its file and row. Parquet rows are encoded as the contract's JSON on the way in, so Flink runs
the same validation on every format. Unreadable files (e.g. truncated Parquet) are reported as
:class:`FileProblem` and skipped; the rest is processed.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import SchemaError
from features.archive import is_archive_file, read_archive
from features.files import JSONL_SUFFIX, PARQUET_SUFFIX, data_files

ROLES = ("transactions", "labels")
DELIVERY_COLUMNS = frozenset({"arrival_time"})
"""Parquet columns that are delivery metadata written by the simulator, not contract fields."""
RAW, QUOTED = "r", "j"
SEPARATOR = "\t"
PARQUET_BATCH_ROWS = 65_536
NO_TIMESTAMP = 0
EXPECTED_PARQUET_TYPES = {
    "event_time": pa.int64(),
    "amount": pa.float64(),
    "latitude": pa.float64(),
    "longitude": pa.float64(),
    "transaction_time": pa.int64(),
}


class _EventTime(msgspec.Struct):
    """Only the field the staging needs from a payload (other fields are ignored here)."""

    event_time: int


_TIME_DECODER = msgspec.json.Decoder(_EventTime)
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True)
class FileProblem:
    """A file or column that could not be read as expected; the reason names the file."""

    role: str
    path: str
    reason: str


@dataclass(frozen=True)
class StagedInput:
    """One role's staged file and what went into it."""

    role: str
    path: Path
    records: int
    files: int
    problems: tuple[FileProblem, ...]


@dataclass(frozen=True)
class _Record:
    timestamp: int | None
    origin: str
    payload: str


def role_dir(root: Path, role: str) -> Path | None:
    """The directory of a role under the input root (``None`` if absent)."""
    path = root / role
    return path if path.is_dir() else None


def payload_time(payload: str | bytes) -> int | None:
    """The ``event_time`` of a JSON document, or ``None`` if it has no integer one.

    >>> payload_time('{"event_id": "a", "event_time": 5}'), payload_time("oops")
    (5, None)
    """
    try:
        return _TIME_DECODER.decode(payload).event_time
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _jsonl_records(path: Path) -> Iterator[_Record]:
    with path.open("r", encoding="utf-8", errors="replace", newline="\n") as handle:
        for row, line in enumerate(handle):
            payload = line.rstrip("\n").rstrip("\r")
            if not payload.strip():
                continue
            yield _Record(payload_time(payload), f"{path}:{row}", payload)


def _archive_records(path: Path) -> Iterator[tuple[int, int, int, _Record]]:
    """(timestamp, partition, offset, record) of an archive file, in offset order."""
    for rec in read_archive(path):
        origin = f"{path}:{rec.row} (partition {rec.partition}, offset {rec.offset})"
        stamp = rec.timestamp if rec.timestamp is not None and rec.timestamp >= 0 else None
        yield (
            stamp if stamp is not None else -1,
            rec.partition,
            rec.offset,
            _Record(stamp, origin, rec.payload),
        )


def _merged_archive(files: list[Path]) -> Iterator[_Record]:
    """Records of all partitions merged by record timestamp, each partition in offset order.

    The live Kafka source interleaves partitions as fetches complete, which no file keeps; the
    merge by timestamp is the closest replay and is exact for a single-partition topic.
    """
    by_partition: dict[str, list[Path]] = {}
    for file in files:
        by_partition.setdefault(str(file.parent), []).append(file)

    def chain(paths: list[Path]) -> Iterator[tuple[int, int, int, _Record]]:
        for path in paths:
            yield from _archive_records(path)

    streams = [chain(paths) for _, paths in sorted(by_partition.items())]
    for _ts, _p, _o, record in heapq.merge(*streams, key=lambda item: item[:3]):
        yield record


def _type_problems(role: str, path: Path, schema: pa.Schema) -> list[FileProblem]:
    problems = []
    for name, expected in EXPECTED_PARQUET_TYPES.items():
        if name in schema.names and not schema.field(name).type.equals(expected):
            problems.append(
                FileProblem(
                    role,
                    str(path),
                    f"column {name!r}: expected {expected}, found {schema.field(name).type}; "
                    "its rows go to the dead-letter output",
                )
            )
    return problems


def _parquet_records(role: str, path: Path, problems: list[FileProblem]) -> Iterator[_Record]:
    try:
        reader = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        problems.append(FileProblem(role, str(path), f"cannot read Parquet file: {exc}"))
        return
    problems.extend(_type_problems(role, path, reader.schema_arrow))
    columns = [n for n in reader.schema_arrow.names if n not in DELIVERY_COLUMNS]
    row = 0
    try:
        for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            for document in batch.to_pylist():
                payload = _ENCODER.encode(document).decode()
                stamp = document.get("event_time")
                yield _Record(stamp if isinstance(stamp, int) else None, f"{path}:{row}", payload)
                row += 1
    except (pa.ArrowInvalid, OSError) as exc:
        problems.append(
            FileProblem(role, str(path), f"cannot read Parquet file after row {row}: {exc}")
        )


def _records(role: str, files: list[Path], problems: list[FileProblem]) -> Iterator[_Record]:
    archive = [f for f in files if f.suffix == JSONL_SUFFIX and is_archive_file(f)]
    if archive:
        if len(archive) != len(files):
            raise SchemaError(
                f"{role}: mixes topic-archive files ({archive[0]}) with other files; "
                "give one kind per role"
            )
        yield from _merged_archive(archive)
        return
    for file in files:
        if file.suffix == PARQUET_SUFFIX:
            yield from _parquet_records(role, file, problems)
        else:
            yield from _jsonl_records(file)


def staged_line(timestamp: int, origin: str, payload: str) -> str:
    """One staged line (see the module docstring)."""
    origin = origin.replace(SEPARATOR, " ")
    if "\n" in payload or "\r" in payload:
        return SEPARATOR.join((str(timestamp), QUOTED, origin, json.dumps(payload)))
    return SEPARATOR.join((str(timestamp), RAW, origin, payload))


def parse_staged(line: str) -> tuple[int, str, str]:
    """(record timestamp, origin, payload) of a staged line.

    >>> parse_staged(staged_line(5, "f:1", '{"a": 1}'))
    (5, 'f:1', '{"a": 1}')
    """
    stamp, flag, origin, payload = line.split(SEPARATOR, 3)
    return int(stamp), origin, json.loads(payload) if flag == QUOTED else payload


def stage_role(role: str, source: Path, target: Path) -> StagedInput:
    """Write ``source``'s files of ``role`` as one staged file at ``target`` in arrival order.

    A record without a readable timestamp (e.g. a malformed JSON line) takes the previous
    record's, so it does not move the watermark (it is dead-lettered downstream anyway).
    """
    files = data_files(source)
    problems: list[FileProblem] = []
    target.parent.mkdir(parents=True, exist_ok=True)
    count, last = 0, NO_TIMESTAMP
    with target.open("w", encoding="utf-8", newline="\n") as out:
        for record in _records(role, files, problems):
            if record.timestamp is not None:
                last = record.timestamp
            out.write(staged_line(last, record.origin, record.payload) + "\n")
            count += 1
    return StagedInput(role, target, count, len(files), tuple(problems))


def origins_of(staged: Path, payloads: set[str]) -> dict[str, str]:
    """``payload -> origin`` of the given payloads (first occurrence), scanning a staged file."""
    found: dict[str, str] = {}
    if not payloads:
        return found
    with staged.open("r", encoding="utf-8") as handle:
        for line in handle:
            _ts, origin, payload = parse_staged(line.rstrip("\n"))
            if payload in payloads and payload not in found:
                found[payload] = origin
                if len(found) == len(payloads):
                    break
    return found


def describe(problem: FileProblem) -> str:
    """One human line for a file problem."""
    return f"{problem.role}: {problem.path}: {problem.reason}"
