"""Thin Flink wrappers of the pure feature logic: card -> device -> terminal keyed stages.

Each stage holds ONE msgpack blob per key in a ValueState (one get and at most one put per event)
and calls its per-stage entry point in :mod:`features.stages`, the one the Python driver
(:mod:`features.compute`) calls, so the stream and the driver compute the same features. Records
between stages are ``(transaction, feature values struct, duplicate, late, watermark_lag_ms)``
tuples, the transaction being the validate step's :class:`~schemas.records.IngestedTransaction`,
whose ``ingest_time`` passes through untouched (the feature logic never reads it); the terminal
stage emits the enriched-features JSON with it and the time the features were complete or, in the
scoring job, hands the enriched record straight to the scoring gate (:class:`FeatureRows`: a row
for the Table API, no JSON round trip and no operator of its own). Keys idle
for ``profile_retention_ms`` of event time are cleared by event-time timers (never processing-time
TTL), so a replay of history evicts exactly like the live run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import (
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    OutputTag,
    RuntimeContext,
)
from pyflink.datastream.state import ValueStateDescriptor

from features import card, device, output, stages, terminal
from features.params import FeatureParams, cleanup_timer, is_late
from schemas.feature_set import MS_PER_DAY, FeatureValues
from schemas.records import Label, Transaction, ingest_time_of
from udfs.feature_gate import FeatureRows
from udfs.ingest import now_ms
from udfs.java_gauge import JavaGauge

StageRecord = tuple[Transaction, FeatureValues, bool, bool, int]
"""(transaction, feature values so far, duplicate, late, watermark lag ms)."""
TIMER_BUCKET_MS = MS_PER_DAY
NO_LAG = -1
FEATURES_TAG = OutputTag("enriched-features", Types.STRING())
"""The enriched-features JSON, as a side output, when the terminal stage feeds a scoring gate."""


def blob_state(runtime_context: RuntimeContext, name: str) -> Any:
    """A ValueState holding the key's msgpack blob.

    ``PICKLED_BYTE_ARRAY`` rather than a primitive byte array: PyFlink 2.2.1's embedded converter
    for ``PRIMITIVE_ARRAY(BYTE)`` fails on an empty state (``'NoneType' object is not iterable``).
    """
    return runtime_context.get_state(ValueStateDescriptor(name, Types.PICKLED_BYTE_ARRAY()))


def card_key(tx: Transaction) -> str:
    """Key selector of the card stage (:func:`features.stages.card_key`)."""
    return stages.card_key(tx)


def device_key(record: StageRecord) -> str:
    """Key selector of the device stage (:func:`features.stages.device_key`)."""
    return stages.device_key(record[0])


def terminal_key(record: StageRecord) -> str:
    """Key selector of the terminal stage (:func:`features.stages.terminal_key`)."""
    return stages.terminal_key(record[0])


def _expire(state_handle: Any, decode: Callable[[Any], Any], timestamp: int, keep_ms: int) -> None:
    """Clear a key's state at a cleanup timer if nothing newer than ``keep_ms`` was seen."""
    blob = state_handle.value()
    if blob is not None and decode(blob).clock + keep_ms <= timestamp:
        state_handle.clear()


class CardStage(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by card: dedup, lateness flag, watermark lag, event and card features."""

    def __init__(self, params: FeatureParams) -> None:
        self.params = params
        self._state: Any = None
        self._late: Any = None
        self._duplicates: Any = None
        self._lag = NO_LAG
        self._lag_gauge: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        """State handle and metrics (late and duplicate counters, watermark lag gauge)."""
        self._state = blob_state(runtime_context, "card")
        metrics = runtime_context.get_metrics_group()
        self._late = metrics.counter("lateEvents")
        self._duplicates = metrics.counter("duplicateEvents")
        self._lag_gauge = JavaGauge(metrics, "watermarkLagMs", NO_LAG)

    def process_element(
        self, tx: Transaction, ctx: KeyedProcessFunction.Context
    ) -> Iterator[StageRecord]:
        """One payment: read the card blob, compute, write it back, emit the partial record."""
        state = card.decode(self._state.value())
        old_clock = state.clock
        values, duplicate = stages.card_stage(state, tx, self.params)
        if duplicate:
            self._duplicates.inc()
        else:
            self._state.update(card.encode(state))
            timer = cleanup_timer(
                old_clock, state.clock, self.params.profile_retention_ms, TIMER_BUCKET_MS
            )
            if timer is not None:
                ctx.timer_service().register_event_time_timer(timer)
        watermark = ctx.timer_service().current_watermark()
        late = watermark >= 0 and is_late(tx.event_time, watermark, self.params.allowed_lateness_ms)
        if late:
            self._late.inc()
        self._lag = now_ms() - watermark if watermark >= 0 else NO_LAG
        self._lag_gauge.set(self._lag)
        yield tx, values, duplicate, late, self._lag

    def on_timer(
        self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext
    ) -> Iterator[StageRecord]:
        """Forget a card idle for the profile retention."""
        _expire(self._state, card.decode, timestamp, self.params.profile_retention_ms)
        yield from ()


class DeviceStage(KeyedCoProcessFunction):  # type: ignore[misc]
    """Keyed by device: payments (input 1) and fraud labels with a device (input 2)."""

    def __init__(self, params: FeatureParams) -> None:
        self.params = params
        self._state: Any = None
        self._loaded_clock = 0

    def open(self, runtime_context: RuntimeContext) -> None:
        """State handle."""
        self._state = blob_state(runtime_context, "device")

    def _load(self, _device_id: str) -> device.DeviceState:
        """The current key's state (the entry point asks only for payments with a device)."""
        state = device.decode(self._state.value())
        self._loaded_clock = state.clock
        return state

    def process_element1(
        self, record: StageRecord, ctx: KeyedCoProcessFunction.Context
    ) -> Iterator[StageRecord]:
        """Set the device features; payments without a device touch no state."""
        tx, values, duplicate = record[0], record[1], record[2]
        changed = stages.device_stage(tx, duplicate, values, self.params, self._load)
        if changed is not None:
            self._state.update(device.encode(changed))
            self._timer(ctx, self._loaded_clock, changed.clock)
        yield record

    def process_element2(
        self, label: Label, ctx: KeyedCoProcessFunction.Context
    ) -> Iterator[StageRecord]:
        """Remember a fraud label for the device."""
        state = device.decode(self._state.value())
        if device.add_label(state, label):
            self._state.update(device.encode(state))
            self._timer(ctx, 0, max(state.clock, label.event_time))
        yield from ()

    def _timer(self, ctx: KeyedCoProcessFunction.Context, old: int, new: int) -> None:
        timer = cleanup_timer(old, new, self.params.profile_retention_ms, TIMER_BUCKET_MS)
        if timer is not None:
            ctx.timer_service().register_event_time_timer(timer)

    def on_timer(
        self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext
    ) -> Iterator[StageRecord]:
        """Forget a device idle for the profile retention (its fraud mark included)."""
        blob = self._state.value()
        if blob is None:
            return
        state = device.decode(blob)
        last = max(state.clock, state.fraud_since or 0)
        if last + self.params.profile_retention_ms <= timestamp:
            self._state.clear()
        yield from ()


class TerminalStage(KeyedCoProcessFunction):  # type: ignore[misc]
    """Keyed by terminal: payments (input 1) and fraud labels (input 2); emits the output JSON.

    With a ``gate`` it emits what the gate makes of each enriched record instead (a scoring row,
    or a dead letter on the gate's side output) and, with ``features_json``, the JSON as well on
    :data:`FEATURES_TAG` (the scoring job's optional features topic)."""

    def __init__(
        self, params: FeatureParams, gate: FeatureRows | None = None, features_json: bool = False
    ) -> None:
        self.params = params
        self.gate = gate
        self.features_json = features_json
        self._state: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        """State handle."""
        self._state = blob_state(runtime_context, "terminal")

    def process_element1(
        self, record: StageRecord, ctx: KeyedCoProcessFunction.Context
    ) -> Iterator[Any]:
        """Set the terminal features and emit the enriched-features record."""
        tx, values, duplicate, late, lag = record
        state = terminal.decode(self._state.value())
        old_clock = state.clock
        if stages.terminal_stage(state, tx, duplicate, values, self.params):
            self._state.update(terminal.encode(state))
            self._timer(ctx, old_clock, state.clock)
        computed = now_ms()
        enriched = output.build(
            tx,
            values=values,
            duplicate=duplicate,
            late=late,
            watermark_lag_ms=lag,
            computed_time=computed,
            ingest_time=ingest_time_of(tx, computed),
        )
        if self.gate is None:
            yield output.encode(enriched).decode()
            return
        if self.features_json:
            yield FEATURES_TAG, output.encode(enriched).decode()
        yield from self.gate.process_element(enriched, ctx)

    def process_element2(
        self, label: Label, ctx: KeyedCoProcessFunction.Context
    ) -> Iterator[StageRecord]:
        """Remember a fraud label for the terminal."""
        state = terminal.decode(self._state.value())
        if terminal.add_label(state, label, self.params):
            self._state.update(terminal.encode(state))
            self._timer(ctx, 0, max(state.clock, label.transaction_time))
        yield from ()

    def _timer(self, ctx: KeyedCoProcessFunction.Context, old: int, new: int) -> None:
        retention = terminal.RETENTION_MS + self.params.allowed_lateness_ms
        timer = cleanup_timer(old, new, retention, TIMER_BUCKET_MS)
        if timer is not None:
            ctx.timer_service().register_event_time_timer(timer)

    def on_timer(
        self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext
    ) -> Iterator[StageRecord]:
        """Forget a terminal whose payments and labels all fell out of its windows."""
        blob = self._state.value()
        if blob is None:
            return
        state = terminal.decode(blob)
        newest_label = max((tx_time for tx_time, _ in state.frauds.values()), default=0)
        retention = terminal.RETENTION_MS + self.params.allowed_lateness_ms
        if max(state.clock, newest_label) + retention <= timestamp:
            self._state.clear()
        yield from ()
