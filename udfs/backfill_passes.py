"""The backfill's batch passes: each shard of keys is computed in ONE Python call per stage.

The streaming graph pays PyFlink's per-record cost (pemja conversion, state JNI, pickling) three
times per payment. The backfill instead moves *parcels* (a list of many records) between its
operators and runs in Flink's BATCH execution mode:

1. :class:`ValidateChunk` reads one chunk of the merged staged file (payments and labels in one
   arrival order, each line numbered by its sequence), validates every payload with the live job's
   own :class:`udfs.ingest.ValidateRecords` and emits one parcel per card shard (payments), device
   shard and terminal shard (labels); dead letters go to a side output, as live;
2. :class:`CardPass`, :class:`DevicePass` and :class:`TerminalPass` are keyed by shard. In BATCH
   mode a key's records arrive together and its end-of-input timer fires once: the pass collects
   the shard's parcels, sorts their records by sequence (arrival order) and runs the stage entry
   point of :mod:`features.stages` (and the label functions) over every key of the shard with the
   states in a dict, exactly like the driver (:mod:`features.compute`); it emits one parcel per
   shard of the next stage;
3. the terminal pass emits the shard's enriched-features rows as a ``pyarrow`` table in the
   features schema (:func:`features.table.rows_table`, the table of the records
   :mod:`features.output` builds) for the writer.

Parcels are msgpack (:func:`pack`), payments in them a positional :class:`Payment`; every pass
runs with the cyclic garbage collector paused (:func:`without_gc`).

A payment's ``late`` flag is judged against the watermark its position implies (the largest
payment record timestamp before it minus ``features.out_of_orderness_ms`` minus 1, written on its
merged line): deterministic, unlike live where it depends on when the periodic watermark
arrived. ``watermark_lag_ms`` is ``-1`` (no live watermark in a batch run).
"""

from __future__ import annotations

import gc
import os
import uuid
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor

from features import card, device, stages, terminal
from features.history import parse_staged
from features.params import FeatureParams, is_late
from features.table import rows_table
from schemas.feature_set import FeatureValues, PaymentFeatureValues
from schemas.records import Label, Transaction
from udfs.backfill_ops import PROGRESS_DIR, write_json_atomically
from udfs.ingest import DEAD_LETTER_TAG, ValidateRecords, now_ms

TRANSACTION, LABEL = "t", "l"
"""Role flag at the start of a merged line."""
MERGED_SEPARATOR = "\t"
NO_WATERMARK = -1
NO_LAG = -1
END_OF_INPUT = 2**63 - 1
"""Event-time timer that fires once per key at the end of a BATCH job's input."""
DEVICE_LABELS_TAG = OutputTag("backfill-device-labels", Types.PICKLED_BYTE_ARRAY())
TERMINAL_LABELS_TAG = OutputTag("backfill-terminal-labels", Types.PICKLED_BYTE_ARRAY())

Chunk = tuple[str, int, int, int]
"""(merged file, first byte, end byte, sequence of the first line)."""
Parcel = tuple[int, bytes]
"""(shard of the receiving pass, its records packed by :func:`pack`)."""


class Payment(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """What the passes read of a validated payment (:class:`features.events.TransactionLike`),
    positional in a parcel: a tenth of decoding the whole contract record at every hop."""

    event_id: str
    event_time: int
    card_id: str
    terminal_id: str
    mcc: str
    amount: float
    channel: str
    latitude: float
    longitude: float
    device_id: str | None

    @classmethod
    def of(cls, tx: Transaction) -> Payment:
        """The payment fields of a validated transaction."""
        return cls(
            tx.event_id,
            tx.event_time,
            tx.card_id,
            tx.terminal_id,
            tx.mcc,
            tx.amount,
            tx.channel,
            tx.latitude,
            tx.longitude,
            tx.device_id,
        )


Staged = tuple[int, Payment, int]
"""(sequence, payment, watermark before it) from the reader to the card pass."""
Partial = tuple[int, Payment, FeatureValues, bool, bool]
"""(sequence, payment, values so far, duplicate, late) between the card, device, terminal passes."""
Labelled = tuple[int, Label]


def shard_of(key: str, shards: int) -> int:
    """Stable shard of a stage key (CRC-32: the same in every interpreter, unlike ``hash``).

    >>> shard_of("card-1", 8) == shard_of("card-1", 8), 0 <= shard_of("x", 3) < 3
    (True, True)
    """
    return zlib.crc32(key.encode()) % shards


def merged_line(role: str, watermark: int, staged: str) -> str:
    """A line of the merged file: role flag, watermark before it, the staged line."""
    return MERGED_SEPARATOR.join((role, str(watermark), staged))


def parse_merged(line: str) -> tuple[str, int, int, str]:
    """(role flag, watermark, record timestamp, payload) of a merged line.

    >>> parse_merged(merged_line("t", 7, "5\\tr\\tf:1\\t{}"))
    ('t', 7, 5, '{}')
    """
    role, watermark, staged = line.split(MERGED_SEPARATOR, 2)
    stamp, _origin, payload = parse_staged(staged)
    return role, int(watermark), stamp, payload


def chunk_text(chunk: Chunk) -> str:
    """A chunk as the source's string element (a tuple would become a Java ``Object[]``).

    >>> parse_chunk(chunk_text(("/d/m.lines", 0, 10, 3)))
    ('/d/m.lines', 0, 10, 3)
    """
    return MERGED_SEPARATOR.join(str(part) for part in chunk)


def parse_chunk(text: str) -> Chunk:
    """The chunk of :func:`chunk_text`."""
    path, start, end, seq = text.rsplit(MERGED_SEPARATOR, 3)
    return path, int(start), int(end), int(seq)


STAGED, LABELLED, PARTIAL = 0, 1, 2
"""Kinds of parcel (its first byte): reader -> card pass, labels, card -> device -> terminal."""
_PARCEL_TYPES: dict[int, Any] = {
    STAGED: list[tuple[int, Payment, int]],
    LABELLED: list[tuple[int, Label]],
    PARTIAL: list[tuple[int, Payment, PaymentFeatureValues, bool, bool]],  # type: ignore[valid-type]
}
_PARCEL_ENCODER = msgspec.msgpack.Encoder()
_PARCEL_DECODERS = {kind: msgspec.msgpack.Decoder(t) for kind, t in _PARCEL_TYPES.items()}


def pack(kind: int, records: list[Any]) -> bytes:
    """A parcel's records as msgpack behind their kind byte.

    Parcels cross every exchange and the BATCH sort buffer; msgpack of the contracts' msgspec
    structs is several times cheaper to write and read than pickling them (and decoding
    re-applies the contracts' checks, so a parcel cannot carry an invalid record).

    >>> unpack(pack(LABELLED, []))
    []
    """
    return bytes((kind,)) + _PARCEL_ENCODER.encode(records)


def unpack(payload: bytes) -> list[Any]:
    """The records of a :func:`pack` payload."""
    return _PARCEL_DECODERS[payload[0]].decode(memoryview(payload)[1:])  # type: ignore[no-any-return]


def _parcels(kind: int, records: Iterable[tuple[int, Any]]) -> Iterator[Parcel]:
    by_shard: dict[int, list[Any]] = {}
    for shard, record in records:
        by_shard.setdefault(shard, []).append(record)
    for shard, shard_records in by_shard.items():
        yield shard, pack(kind, shard_records)


def without_gc(compute: Any) -> list[Any]:
    """``list(compute())`` with the cyclic garbage collector paused.

    A pass allocates millions of small acyclic objects (records, states, values); each
    collection would rescan every live one of them, about a third of a pass's time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return list(compute())
    finally:
        if enabled:
            gc.enable()


class _StagedContext:
    """The one thing the validator reads from its context: the record timestamp."""

    def __init__(self) -> None:
        self.stamp = 0

    def timestamp(self) -> int:
        """The staged record timestamp (as the live Kafka source gives it)."""
        return self.stamp


class ValidateChunk(ProcessFunction):  # type: ignore[misc]
    """One chunk of the merged file -> validated parcels per shard; dead letters to the side."""

    def __init__(
        self,
        validators: dict[str, ValidateRecords],
        shards: int,
        params: FeatureParams,
        progress_root: str,
    ) -> None:
        self.validators = validators
        self.shards = shards
        self.params = params
        self.progress_root = progress_root
        self._rows = 0
        self._progress = Path()

    def open(self, runtime_context: RuntimeContext) -> None:
        """Open the validators (their dead-letter counters) and this reader's progress file."""
        for validator in self.validators.values():
            validator.open(runtime_context)
        directory = Path(self.progress_root) / PROGRESS_DIR
        directory.mkdir(parents=True, exist_ok=True)
        self._progress = directory / f"reader-{uuid.uuid4().hex[:8]}.json"

    def process_element(self, chunk: str, ctx: ProcessFunction.Context) -> Iterator[Any]:
        """Validate every line of the chunk (:func:`chunk_text`); yield card parcels, label
        parcels, dead letters."""
        yield from without_gc(lambda: self._chunk(chunk))

    def _chunk(self, chunk: str) -> Iterator[Any]:
        path, start, end, seq = parse_chunk(chunk)
        context = _StagedContext()
        payments: list[tuple[int, Staged]] = []
        device_labels: list[tuple[int, Labelled]] = []
        terminal_labels: list[tuple[int, Labelled]] = []
        for line in _lines(path, start, end):
            role, watermark, context.stamp, payload = parse_merged(line)
            for result in self.validators[role].process_element(payload, context):
                if isinstance(result, tuple):  # (DEAD_LETTER_TAG, json)
                    yield result
                elif role == TRANSACTION:
                    shard = shard_of(stages.card_key(result), self.shards)
                    payments.append((shard, (seq, Payment.of(result), watermark)))
                else:
                    device_id = stages.label_device_key(result)
                    if device_id is not None:
                        device_labels.append((shard_of(device_id, self.shards), (seq, result)))
                    shard = shard_of(result.terminal_id, self.shards)
                    terminal_labels.append((shard, (seq, result)))
            seq += 1
        yield from _parcels(STAGED, payments)
        for parcel in _parcels(LABELLED, device_labels):
            yield DEVICE_LABELS_TAG, parcel
        for parcel in _parcels(LABELLED, terminal_labels):
            yield TERMINAL_LABELS_TAG, parcel
        self._rows += len(payments)
        write_json_atomically(self._progress, {"rows": self._rows})


def _lines(path: str, start: int, end: int) -> Iterator[str]:
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    for raw in data.decode("utf-8").split("\n"):
        if raw:
            yield raw


def parcel_shard(parcel: Parcel) -> int:
    """Key selector of every pass: the parcel's shard."""
    return parcel[0]


class _ShardPass(KeyedProcessFunction):  # type: ignore[misc]
    """Collect a shard's parcels; at the end of input, run :meth:`run` over them in one call."""

    def __init__(self, params: FeatureParams, shards: int) -> None:
        self.params = params
        self.shards = shards
        self._parcels: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        """The list of this shard's parcels."""
        descriptor = ListStateDescriptor("parcels", Types.PICKLED_BYTE_ARRAY())
        self._parcels = runtime_context.get_list_state(descriptor)

    def process_element(self, parcel: Parcel, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        """Keep the parcel until the shard is complete."""
        self._parcels.add(parcel[1])
        ctx.timer_service().register_event_time_timer(END_OF_INPUT)
        return iter(())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        """Every record of the shard, in arrival order, through :meth:`run`."""
        payloads = list(self._parcels.get())
        self._parcels.clear()
        yield from without_gc(lambda: self.run(shard_records(payloads)))


def shard_records(payloads: Iterable[bytes]) -> list[Any]:
    """The records of a shard's parcels, sorted by sequence (arrival order)."""
    return sorted(
        (record for payload in payloads for record in unpack(payload)),
        key=lambda record: record[0],
    )

    def run(self, records: list[Any]) -> Iterator[Any]:
        """The pass over one shard's records (sorted by sequence)."""
        raise NotImplementedError


class CardPass(_ShardPass):
    """Cards of one shard: dedup, late flag, event and card features (:func:`stages.card_stage`)."""

    def run(self, records: list[Staged]) -> Iterator[Parcel]:
        """Yield one parcel per device shard."""
        states: dict[str, card.CardState] = {}
        allowed = self.params.allowed_lateness_ms
        out: list[tuple[int, Partial]] = []
        for seq, tx, watermark in records:
            state = states.get(tx.card_id)
            if state is None:
                state = states[tx.card_id] = card.CardState()
            values, duplicate = stages.card_stage(state, tx, self.params)
            late = watermark >= 0 and is_late(tx.event_time, watermark, allowed)
            shard = shard_of(stages.device_key(tx), self.shards)
            out.append((shard, (seq, tx, values, duplicate, late)))
        yield from _parcels(PARTIAL, out)


class DevicePass(_ShardPass):
    """Devices of one shard: payments from the card pass and labels with a device."""

    def run(self, records: list[Partial | Labelled]) -> Iterator[Parcel]:
        """Yield one parcel per terminal shard."""
        states: dict[str, device.DeviceState] = {}

        def load(device_id: str) -> device.DeviceState:
            return states.setdefault(device_id, device.DeviceState())

        out: list[tuple[int, Partial]] = []
        for record in records:
            if len(record) == 2:
                label = record[1]
                device_id = stages.label_device_key(label)
                if device_id is not None:  # the reader sends only labels with a device
                    device.add_label(load(device_id), label)
                continue
            _seq, tx, values, duplicate, _late = record
            stages.device_stage(tx, duplicate, values, self.params, load)
            out.append((shard_of(stages.terminal_key(tx), self.shards), record))
        yield from _parcels(PARTIAL, out)


class TerminalPass(_ShardPass):
    """Terminals of one shard: payments and labels; emits the shard's features as a table."""

    def run(self, records: list[Partial | Labelled]) -> Iterator[pa.Table]:
        """Yield the enriched-features rows of the shard (arrival order) as one table."""
        states: dict[str, terminal.TerminalState] = {}
        rows: list[tuple[Payment, FeatureValues, bool, bool]] = []
        for record in records:
            if len(record) == 2:
                label = record[1]
                state = states.setdefault(label.terminal_id, terminal.TerminalState())
                terminal.add_label(state, label, self.params)
                continue
            _seq, tx, values, duplicate, late = record
            state = states.setdefault(stages.terminal_key(tx), terminal.TerminalState())
            stages.terminal_stage(state, tx, duplicate, values, self.params)
            rows.append((tx, values, duplicate, late))
        if rows:  # the shard is computed in this one call: one computed time for its rows
            yield rows_table(rows, NO_LAG, now_ms())


def dead_letter_of(value: Any) -> str:
    """A dead letter's JSON (the side output's element)."""
    return str(value)


def _writable(directory: str) -> Path:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    return path


class TableWriter(ProcessFunction):  # type: ignore[misc]
    """Writes each shard's table as ``part-<tag>-<n>.parquet`` files of at most ``rows_per_file``
    rows, and the rows written so far to a progress file the CLI polls."""

    def __init__(self, directory: str, progress_root: str, rows_per_file: int) -> None:
        self.directory = directory
        self.progress_root = progress_root
        self.rows_per_file = rows_per_file
        self._tag = ""
        self._files = 0
        self._rows = 0
        self._max_event_time = NO_WATERMARK

    def open(self, runtime_context: RuntimeContext) -> None:
        """Create the directories; pick this writer's file-name tag.

        A random tag, not the subtask index: ``get_index_of_this_subtask`` fails in thread mode in
        PyFlink 2.2 (the embedded context calls a method Flink 2 removed).
        """
        self._tag = uuid.uuid4().hex[:8]
        _writable(self.directory)
        _writable(os.path.join(self.progress_root, PROGRESS_DIR))
        self._report(done=False)

    def process_element(self, table: pa.Table, ctx: ProcessFunction.Context) -> Iterator[str]:
        """Write the table in slices of ``rows_per_file``."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        for offset in range(0, table.num_rows, self.rows_per_file):
            part = table.slice(offset, self.rows_per_file)
            name = f"part-{self._tag}-{self._files:05d}.parquet"
            pq.write_table(part, Path(self.directory) / name)
            self._files += 1
        self._rows += table.num_rows
        newest = pc.max(table.column("event_time")).as_py()
        self._max_event_time = max(self._max_event_time, newest if newest is not None else -1)
        self._report(done=False)
        return iter(())

    def close(self) -> None:
        """Mark this writer done."""
        self._report(done=True)

    def _report(self, done: bool) -> None:
        path = Path(self.progress_root) / PROGRESS_DIR / f"writer-{self._tag}.json"
        write_json_atomically(
            path,
            {
                "rows": self._rows,
                "files": self._files,
                "max_event_time": self._max_event_time,
                "done": done,
            },
        )


__all__ = [
    "DEAD_LETTER_TAG",
    "CardPass",
    "DevicePass",
    "TableWriter",
    "TerminalPass",
    "ValidateChunk",
]
