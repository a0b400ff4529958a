"""Thin Flink wrappers of :mod:`udfs.analytics.shards`: one keyed stage per payment, one merge.

* :class:`ShardStage`, keyed by merchant shard (:class:`ShardKey`), on payments as plain tuples
  (:data:`udfs.analytics.records.PaymentRow`: cheap to pickle across the exchange): drops re-sent
  ``event_id`` s, decides once per event whether it is too late (its merchant window closed),
  keeps the merchant windows and emits their results, and sends per-shard MCC and global
  :class:`Partial` s on;
* :class:`MergeStage`, keyed by ``"<kind>|<key>"``: sums the partials of the MCC and global
  windows (a few per window, not one per payment) and emits their revisions.

State: see :mod:`udfs.analytics.shards` (one MapState entry per counted payment plus a watermark
floor per shard; the merge keeps one MapState entry per open view window). Event-time timers fire
and close windows; closing evicts, so state is bounded by event time, also in a replay. Window
results go to :data:`RESULTS_TAG`, too-late payments to :data:`LATE_TAG`, both as JSON strings.

Metrics (operator scope, on the shard stage): ``tooLateEvents``, ``duplicateEvents``,
``windowResults``, ``windowUpdates`` (revision > 1), ``unscoredEvents``; gauges
``currentWatermarkMs`` (the watermark as this subtask last saw it, at an event or a timer: PyFlink
gives keyed functions no watermark callback) and ``watermarkLagMs`` (newest event time seen minus
that watermark: how far the watermark trails the data, e.g. held back by a slow partition).
Counters and gauges are pushed to Java in batches (each push is a JNI call): when the watermark
moves, at every timer and too-late event, and every :data:`PUBLISH_EVERY` events. The merge stage
counts ``windowResults`` and ``windowUpdates`` of its views. Flink's own ``currentInputWatermark``
of each operator is always current.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from udfs.analytics.encode import late_json, window_json
from udfs.analytics.records import PaymentRow, row_payment
from udfs.analytics.shards import (
    NO_WATERMARK,
    Partial,
    ShardWindows,
    ViewMerge,
    shard_keys,
    shard_of,
)
from udfs.analytics.windows import ADDED, DUPLICATE, TOO_LATE, WindowParams, WindowResult
from udfs.java_gauge import JavaGauge

RESULTS_TAG = OutputTag("analytics-results", Types.STRING())
LATE_TAG = OutputTag("analytics-late-events", Types.STRING())
KEY_SEPARATOR = "|"
NO_VALUE = -1
PUBLISH_EVERY = 1024
COUNTERS = ("tooLateEvents", "duplicateEvents", "windowResults", "windowUpdates", "unscoredEvents")


class ShardKey:
    """Key selector of the shard stage: the merchant's shard (stable, evenly spread keys) of a
    :data:`PaymentRow`."""

    def __init__(self, shards: int) -> None:
        self.keys = shard_keys(shards)

    def __call__(self, row: PaymentRow) -> int:
        return shard_of(row[2], self.keys)  # merchant_id


def view_key(partial: Partial) -> str:
    """Key selector of the merge stage."""
    return f"{partial.key_kind}{KEY_SEPARATOR}{partial.key}"


class _Counters:
    """Counters kept in Python and pushed to Flink's in one ``inc(n)`` each when flushed."""

    def __init__(self, group: Any, names: tuple[str, ...]) -> None:
        self._metrics = {name: group.counter(name) for name in names}
        self.pending = dict.fromkeys(names, 0)

    def flush(self) -> None:
        for name, n in self.pending.items():
            if n:
                self._metrics[name].inc(n)
                self.pending[name] = 0


class ShardStage(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by shard: dedup, the too-late decision, merchant windows, view partials."""

    def __init__(self, params: WindowParams, source: str, key: ShardKey) -> None:
        self.params = params
        self.source = source
        self.key = key  # the key selector in front of this stage: the key without a JNI call
        self._entries: Any = None
        self._floor: Any = None
        self._shards: dict[int, ShardWindows] = {}
        self._counters: _Counters | None = None
        self._gauges: tuple[JavaGauge, ...] = ()
        self._newest = NO_WATERMARK
        self._watermark = NO_WATERMARK
        self._since_publish = 0

    def open(self, runtime_context: RuntimeContext) -> None:
        """State handles, counters and gauges."""
        self._entries = runtime_context.get_map_state(
            MapStateDescriptor("payments", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        )
        self._floor = runtime_context.get_state(ValueStateDescriptor("floor", Types.LONG()))
        group = runtime_context.get_metrics_group()
        self._counters = _Counters(group, COUNTERS)
        self._gauges = (
            JavaGauge(group, "currentWatermarkMs", NO_VALUE),
            JavaGauge(group, "watermarkLagMs", NO_VALUE),
        )

    def _publish(self) -> None:
        """Push counters and the watermark gauges (see :mod:`udfs.java_gauge`)."""
        self._since_publish = 0
        if self._counters is not None:
            self._counters.flush()
        if self._gauges:
            watermark, lag = self._gauges
            known = NO_WATERMARK not in (self._watermark, self._newest)
            watermark.set(self._watermark if self._watermark > NO_WATERMARK else NO_VALUE)
            lag.set(max(0, self._newest - self._watermark) if known else NO_VALUE)

    def _count(self, name: str, n: int = 1) -> None:
        if self._counters is not None:
            self._counters.pending[name] += n

    def _shard(self, key: int) -> ShardWindows:
        shard = self._shards.get(key)
        if shard is None:  # first access since (re)start: rebuild from the stored entries
            shard = ShardWindows(self.params).restore(self._entries.items(), self._floor.value())
            self._shards[key] = shard
        return shard

    def process_element(self, row: PaymentRow, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        """Count the payment in its windows; emit merchant results and view partials due now."""
        shard = self._shard(self.key(row))  # = ctx.get_current_key(), one JNI call less
        current = ctx.timer_service().current_watermark()
        added = shard.add_row(row, current)
        watermark = shard.watermark(current)
        self._newest = max(self._newest, row[1])  # event_time
        moved = watermark > self._watermark
        if moved:
            self._watermark = watermark
        if added.status == TOO_LATE and added.too_late is not None:
            self._count("tooLateEvents")
            self._publish()
            lateness = self.params.allowed_lateness_ms
            yield LATE_TAG, late_json(row_payment(row), added.too_late, lateness, self.source)
            return
        if added.status == DUPLICATE:
            self._count("duplicateEvents")
        elif added.status == ADDED and added.entry is not None:
            self._entries.put(*added.entry)
            for timer in added.timers:
                ctx.timer_service().register_event_time_timer(timer)
            if row[5] is None:  # decision
                self._count("unscoredEvents")
            yield from self._emit(added.results)
            yield from added.partials
        self._since_publish += 1
        if moved or self._since_publish >= PUBLISH_EVERY:
            self._publish()

    def _emit(self, results: tuple[WindowResult, ...]) -> Iterator[Any]:
        for result in results:
            self._count("windowResults")
            if result.revision > 1:
                self._count("windowUpdates")
            yield RESULTS_TAG, window_json(result, self.source)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        """Fire the windows this watermark completed; evict the ones it closed."""
        shard = self._shard(ctx.get_current_key())
        fired = shard.on_timer(timestamp)
        self._floor.update(shard.floor)
        for key in fired.evicted:
            self._entries.remove(key)
        self._watermark = max(self._watermark, timestamp)
        yield from self._emit(fired.results)
        yield from fired.partials
        self._publish()


class MergeStage(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by ``"<kind>|<key>"``: the MCC and global windows, summed over the shards."""

    def __init__(self, params: WindowParams, source: str) -> None:
        self.params = params
        self.source = source
        self._windows: Any = None
        self._floor: Any = None
        self._merges = {
            spec.key_kind: ViewMerge(spec, params.allowed_lateness_ms) for spec in params.specs()
        }
        self._results: Callable[[int], None] = lambda n: None
        self._updates: Callable[[int], None] = lambda n: None

    def open(self, runtime_context: RuntimeContext) -> None:
        """State handles and counters (few records: counted as they come)."""
        self._windows = runtime_context.get_map_state(
            MapStateDescriptor("views", Types.LONG(), Types.PICKLED_BYTE_ARRAY())
        )
        self._floor = runtime_context.get_state(ValueStateDescriptor("floor", Types.LONG()))
        group = runtime_context.get_metrics_group()
        self._results = group.counter("windowResults").inc
        self._updates = group.counter("windowUpdates").inc

    def _watermark(self, ctx: KeyedProcessFunction.Context) -> int:
        floor = self._floor.value()
        current: int = ctx.timer_service().current_watermark()
        return current if floor is None or current > floor else int(floor)

    def process_element(self, partial: Partial, ctx: KeyedProcessFunction.Context) -> Iterator[str]:
        """Add one shard's partial to its view window; emit a revision if the window fired."""
        merge = self._merges[partial.key_kind]
        entry = self._windows.get(partial.window_start)
        entry, result, timers = merge.add(partial, entry, self._watermark(ctx))
        self._windows.put(partial.window_start, entry)
        for timer in timers:
            ctx.timer_service().register_event_time_timer(timer)
        if result is not None:
            yield from self._emit(result)

    def _emit(self, result: WindowResult) -> Iterator[Any]:
        self._results(1)
        if result.revision > 1:
            self._updates(1)
        yield RESULTS_TAG, window_json(result, self.source)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        """Fire (revision 1) the window due now; evict the one that closes."""
        kind, _, key = str(ctx.get_current_key()).partition(KEY_SEPARATOR)
        merge = self._merges[kind]
        self._floor.update(max(self._floor.value() or NO_WATERMARK, timestamp))
        fire, close = merge.starts_due(timestamp)
        if fire is not None:
            entry = self._windows.get(fire)
            if entry is not None and entry[1] == 0:
                totals, _ = entry
                self._windows.put(fire, (totals, 1))
                yield from self._emit(merge.result(key, fire, totals, 1))
        if close is not None and self._windows.contains(close):
            self._windows.remove(close)
