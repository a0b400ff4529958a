"""Benchmark-only operators of the shapes study: empty-bodied floors and real prototypes.

Floors keep the graph (operators, exchanges, side outputs, broadcast input) and do no work: they
pass the raw payload string along, keyed by a cheap slice of it, with no state. The real operators
run today's pure feature functions (validation, card, device) with one pickled msgpack blob per key
in a RocksDB ``ValueState`` (one get and one put per payment), event-time cleanup timers, and the
terminal features from broadcast hourly tiles (:mod:`bench.shapes.tiles`).

Outputs of the real shapes are lean bytes (:func:`pack`): flags, the feature vector as packed
float64 and the event id; the study decodes them to compare a restored run with an uninterrupted
one.
"""

from __future__ import annotations

import json
import os
import struct
import time
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyflink.common import Types
from pyflink.datastream import (
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from bench.shapes.tiles import DELAY_HOURS, MS_PER_HOUR, RETENTION_HOURS, TileCache
from features import card, device, stages, terminal
from features.params import FeatureParams, cleanup_timer, is_late
from schemas.feature_set import MS_PER_DAY, FeatureValues
from schemas.records import Label, Transaction
from udfs.ingest import now_ms

HEADER = struct.Struct("<BBH")
"""duplicate, late, number of float64 values; then the values, then the event id (UTF-8)."""
TILES = MapStateDescriptor("tiles", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
DEVICE_TAG = OutputTag("with-device", Types.PICKLED_BYTE_ARRAY())
FLOOR_DEVICE_TAG = OutputTag("floor-with-device", Types.STRING())
TIMER_BUCKET_MS = MS_PER_DAY
CARD_MARK = '"card_id":"'
TERMINAL_MARK = '"terminal_id":"'
DEVICE_MARK = '"device_id":"'
NO_DEVICE = '"device_id":null'


def pack(event_id: str, duplicate: bool, late: bool, values: list[float]) -> bytes:
    """The lean output record of the real shapes."""
    return (
        HEADER.pack(duplicate, late, len(values)) + array("d", values).tobytes() + event_id.encode()
    )


def unpack(record: bytes) -> tuple[str, bool, bool, tuple[float, ...]]:
    """(event id, duplicate, late, values) of a :func:`pack` record."""
    duplicate, late, n = HEADER.unpack_from(record)
    start = HEADER.size
    values = array("d")
    values.frombytes(record[start : start + 8 * n])
    return record[start + 8 * n :].decode(), bool(duplicate), bool(late), tuple(values)


def field(raw: str, mark: str) -> str:
    """The string value after ``mark`` in a JSON line, by slicing (the floors' key selector)."""
    start = raw.find(mark)
    if start < 0:
        return ""
    start += len(mark)
    return raw[start : raw.find('"', start)]


def card_of(raw: str) -> str:
    """Floor key: the card id sliced out of the raw line."""
    return field(raw, CARD_MARK)


def device_of(raw: str) -> str:
    """Floor key: the device id sliced out of the raw line."""
    return field(raw, DEVICE_MARK)


def terminal_of(raw: str) -> str:
    """Floor key: the terminal id sliced out of the raw line."""
    return field(raw, TERMINAL_MARK)


class FailOnce:
    """Fault injection for the restore check: raise once, ``after_s`` after the first record.

    A marker file makes it fire once per run, across the restarted task's new instance; the
    operator also reports (JSON lines in ``report``) what it found when it rebuilt its Python
    cache: how many broadcast entries were already there (restored) and whether the key's state
    was present.
    """

    def __init__(self, after_s: float, marker: str, report: str) -> None:
        self.after_s = after_s
        self.marker = marker
        self.report = report
        self._first = 0.0

    def check(self) -> None:
        """Raise if the time has come and the marker is absent."""
        if self.after_s <= 0:
            return
        now = time.monotonic()
        if not self._first:
            self._first = now
        elif now - self._first > self.after_s and not os.path.exists(self.marker):
            Path(self.marker).write_text("failed once\n")
            raise RuntimeError("bench.shapes: injected failure for the restore check")

    def note(self, **facts: Any) -> None:
        """Append one JSON line of facts to the report file (if reporting)."""
        if self.report:
            with open(self.report, "a") as out:
                out.write(json.dumps(facts) + "\n")


# ---------------------------------------------------------------------------------------------
# Floors: same graph, empty bodies, no state.


class FloorValidate(ProcessFunction):  # type: ignore[misc]
    """Pass the raw line on (no decode)."""

    def process_element(self, value: str, ctx: ProcessFunction.Context) -> Iterator[str]:
        """Identity."""
        yield value


class FloorKeyed(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed identity, no state."""

    def process_element(self, value: str, ctx: KeyedProcessFunction.Context) -> Iterator[str]:
        """Identity."""
        yield value


class FloorCo(KeyedCoProcessFunction):  # type: ignore[misc]
    """Keyed two-input identity (payments on input 1, labels on input 2 dropped), no state."""

    def process_element1(self, value: str, ctx: KeyedCoProcessFunction.Context) -> Iterator[str]:
        """Identity."""
        yield value

    def process_element2(self, value: str, ctx: KeyedCoProcessFunction.Context) -> Iterator[str]:
        """Drop labels."""
        yield from ()


class FloorBroadcast(KeyedBroadcastProcessFunction):  # type: ignore[misc]
    """Keyed identity with a broadcast input that is ignored; optionally routes payments with a
    device to a side output (shape b), by a substring test."""

    def __init__(self, route_devices: bool) -> None:
        self.route_devices = route_devices

    def process_element(
        self, value: str, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext
    ) -> Iterator[Any]:
        """Identity (or to the device side output)."""
        if self.route_devices and NO_DEVICE not in value:
            yield FLOOR_DEVICE_TAG, value
        else:
            yield value

    def process_broadcast_element(
        self, value: Any, ctx: KeyedBroadcastProcessFunction.Context
    ) -> Iterator[str]:
        """Ignore tiles and labels."""
        yield from ()


# ---------------------------------------------------------------------------------------------
# Real prototypes.


def blob_state(runtime_context: RuntimeContext, name: str) -> Any:
    """One pickled msgpack blob per key (as ``udfs.feature_stages``)."""
    return runtime_context.get_state(ValueStateDescriptor(name, Types.PICKLED_BYTE_ARRAY()))


class CardWithTiles(KeyedBroadcastProcessFunction):  # type: ignore[misc]
    """Keyed by card: dedup, late flag, event + card features (today's pure functions) and the
    terminal features from broadcast tiles; payments with a device go to :data:`DEVICE_TAG` when
    ``route_devices`` (shape b), else device features keep their missing value (shape a).

    Broadcast input: ``("t", hour, payload)`` count tiles from SQL and ``("l", Label)`` fraud
    labels. Both are written to broadcast state (fault tolerance) and to a Python cache; the cache
    is rebuilt from broadcast state on the first call after a (re)start.
    """

    def __init__(self, params: FeatureParams, route_devices: bool, fail: FailOnce) -> None:
        self.params = params
        self.route_devices = route_devices
        self.fail = fail
        self._state: Any = None
        self._tiles: TileCache | None = None
        self._late: Any = None
        self._duplicates: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        """State handle and counters; the tile cache is built lazily (needs a context)."""
        self._state = blob_state(runtime_context, "card")
        metrics = runtime_context.get_metrics_group()
        self._late = metrics.counter("lateEvents")
        self._duplicates = metrics.counter("duplicateEvents")
        self._tiles = None

    def _cache(self, ctx: Any, where: str) -> TileCache:
        """The tile cache, rebuilt from broadcast state if this instance has none yet."""
        if self._tiles is not None:
            return self._tiles
        tiles = TileCache()
        entries = 0
        counts: list[tuple[int, str]] = []
        for key, value in ctx.get_broadcast_state(TILES).items():
            entries += 1
            if key[0] == "t":
                counts.append((int(key[1:]), value))
            else:
                tiles.add_fraud(*value)
        for hour, payload in sorted(counts):
            tiles.add_counts(hour, payload)
        self.fail.note(event="cache_built", where=where, broadcast_entries=entries)
        self._tiles = tiles
        return tiles

    def process_element(
        self, tx: Transaction, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext
    ) -> Iterator[Any]:
        """One payment: card blob get/put, features, terminal features from the cache."""
        tiles = self._tiles if self._tiles is not None else self._cache(ctx, "element")
        self.fail.check()
        blob = self._state.value()
        state = card.decode(blob)
        old_clock = state.clock
        values, duplicate = stages.card_stage(state, tx, self.params)
        timers = ctx.timer_service()
        if duplicate:
            self._duplicates.inc()
        else:
            self._state.update(card.encode(state))
            timer = cleanup_timer(
                old_clock, state.clock, self.params.profile_retention_ms, TIMER_BUCKET_MS
            )
            if timer is not None:
                timers.register_event_time_timer(timer)
        watermark = timers.current_watermark()
        late = watermark >= 0 and is_late(tx.event_time, watermark, self.params.allowed_lateness_ms)
        if late:
            self._late.inc()
        # The tiles return (count, fraud rate) per window in the spec's terminal feature order.
        tile_values = tiles.values(tx.terminal_id, tx.event_time)
        for name, value in zip(terminal.NAMES, tile_values, strict=True):
            setattr(values, name, value)
        if tx.device_id is None:
            if self.route_devices:
                device.no_device_values(values)
            yield pack(tx.event_id, duplicate, late, list(values.vector()))
        elif self.route_devices:
            yield DEVICE_TAG, (tx, duplicate, late, values)
        else:  # shape a: the device features keep their missing value
            yield pack(tx.event_id, duplicate, late, list(values.vector()))

    def process_broadcast_element(
        self, value: Any, ctx: KeyedBroadcastProcessFunction.Context
    ) -> Iterator[bytes]:
        """A count tile or a fraud label: into broadcast state and the cache."""
        tiles = self._cache(ctx, "broadcast")
        state = ctx.get_broadcast_state(TILES)
        if value[0] == "t":
            hour, payload = value[1], value[2]
            state.put(f"t{hour}", payload)
            tiles.add_counts(hour, payload)
            if hour % 24 == 0:
                state.remove(f"t{hour - RETENTION_HOURS}")
        else:
            label: Label = value[1]
            entry = (
                label.terminal_id,
                label.transaction_id,
                label.transaction_time,
                label.event_time,
            )
            if tiles.add_fraud(*entry):
                state.put(f"l{label.transaction_id}", entry)
        yield from ()

    def on_timer(
        self, timestamp: int, ctx: KeyedBroadcastProcessFunction.OnTimerContext
    ) -> Iterator[bytes]:
        """Forget a card idle for the profile retention."""
        blob = self._state.value()
        if blob is not None and card.decode(blob).clock + self.params.profile_retention_ms <= (
            timestamp
        ):
            self._state.clear()
        yield from ()


class DeviceTail(KeyedCoProcessFunction):  # type: ignore[misc]
    """Keyed by device: the card operator's payments with a device (input 1) and fraud labels
    with a device (input 2); inserts the device features and emits the lean record."""

    def __init__(self, params: FeatureParams) -> None:
        self.params = params
        self._state: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        """State handle."""
        self._state = blob_state(runtime_context, "device")

    def process_element1(
        self, record: tuple[Transaction, bool, bool, FeatureValues], ctx: Any
    ) -> Iterator[bytes]:
        """Device features of one payment (today's pure functions)."""
        tx, duplicate, late, values = record
        state = device.decode(self._state.value())
        old_clock = state.clock
        device.process(state, tx, duplicate, self.params, values)
        if not duplicate:
            self._state.update(device.encode(state))
            self._timer(ctx, old_clock, state.clock)
        yield pack(tx.event_id, duplicate, late, list(values.vector()))

    def process_element2(self, label: Label, ctx: Any) -> Iterator[bytes]:
        """Remember a fraud label of the device."""
        state = device.decode(self._state.value())
        if device.add_label(state, label):
            self._state.update(device.encode(state))
            self._timer(ctx, 0, max(state.clock, label.event_time))
        yield from ()

    def _timer(self, ctx: Any, old: int, new: int) -> None:
        timer = cleanup_timer(old, new, self.params.profile_retention_ms, TIMER_BUCKET_MS)
        if timer is not None:
            ctx.timer_service().register_event_time_timer(timer)

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[bytes]:
        """Forget a device idle for the profile retention."""
        blob = self._state.value()
        if blob is not None:
            state = device.decode(blob)
            if max(state.clock, state.fraud_since or 0) + self.params.profile_retention_ms <= (
                timestamp
            ):
                self._state.clear()
        yield from ()


def tile_hour_ms(hour: int) -> int:
    """Epoch ms of an hour index (for reports)."""
    return hour * MS_PER_HOUR


__all__ = [
    "DELAY_HOURS",
    "DEVICE_TAG",
    "FLOOR_DEVICE_TAG",
    "TILES",
    "CardWithTiles",
    "DeviceTail",
    "FailOnce",
    "FloorBroadcast",
    "FloorCo",
    "FloorKeyed",
    "FloorValidate",
    "card_of",
    "device_of",
    "now_ms",
    "pack",
    "terminal_of",
    "unpack",
]
