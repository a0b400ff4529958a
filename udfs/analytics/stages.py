"""Thin Flink wrappers of :mod:`udfs.analytics.windows`: two keyed stages with event-time timers.

* :class:`MerchantStage`, keyed by merchant: drops re-sent ``event_id`` s, decides once per event
  whether it is too late (its merchant window closed), keeps the merchant windows, and forwards
  every counted payment twice, as ``("mcc|<mcc>", p)`` and ``("global|all", p)``;
* :class:`ViewStage`, keyed by ``"<kind>|<key>"``: the MCC and global windows.

Both keep ONE pickled value per key (the key's open windows: one state read and at most one write
per event) and register two event-time timers per window (fire, close); the close timer evicts the
window, so state is bounded by event time, also in a replay. Window results go to
:data:`RESULTS_TAG`, too-late payments to :data:`LATE_TAG`, both as JSON strings.

Metrics (operator scope): ``tooLateEvents``, ``duplicateEvents``, ``windowResults``,
``windowUpdates`` (revision > 1), ``unscoredEvents``; gauges ``currentWatermarkMs`` (the watermark
as this subtask last saw it, at an event or a timer: PyFlink gives keyed functions no watermark
callback) and ``watermarkLagMs`` (newest event time seen minus that watermark: how far the
watermark trails the data, e.g. held back by a slow partition). Flink's own
``currentInputWatermark`` of the operator is always current.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, OutputTag, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from udfs.analytics.encode import late_json, window_json
from udfs.analytics.records import ScoredPayment
from udfs.analytics.windows import (
    DUPLICATE,
    KEY_GLOBAL,
    KEY_MCC,
    KEY_MERCHANT,
    TOO_LATE,
    KeyWindows,
    Outcome,
    WindowParams,
    WindowResult,
)
from udfs.java_gauge import JavaGauge

RESULTS_TAG = OutputTag("analytics-results", Types.STRING())
LATE_TAG = OutputTag("analytics-late-events", Types.STRING())
KEY_SEPARATOR = "|"
NO_WATERMARK = -(2**63)
NO_VALUE = -1

Routed = tuple[str, ScoredPayment]
"""(``"<key kind>|<key>"``, payment): a counted payment on its way to one view window."""


def merchant_key(p: ScoredPayment) -> str:
    """Key selector of the merchant stage."""
    return p.merchant_id


def routed_key(record: Routed) -> str:
    """Key selector of the view stage."""
    return record[0]


class _WindowStage(KeyedProcessFunction):  # type: ignore[misc]
    """State, timers and metrics shared by both stages."""

    def __init__(self, params: WindowParams, source: str) -> None:
        self.params = params
        self.source = source
        self._specs = {spec.key_kind: spec for spec in params.specs()}
        self._state: Any = None
        self._metrics: dict[str, Any] = {}
        self._newest = NO_WATERMARK
        self._watermark = NO_WATERMARK
        self._gauges: tuple[JavaGauge, ...] = ()

    def open(self, runtime_context: RuntimeContext) -> None:
        """The state handle, counters and gauges."""
        self._state = runtime_context.get_state(
            ValueStateDescriptor("windows", Types.PICKLED_BYTE_ARRAY())
        )
        group = runtime_context.get_metrics_group()
        for name in (
            "tooLateEvents",
            "duplicateEvents",
            "windowResults",
            "windowUpdates",
            "unscoredEvents",
        ):
            self._metrics[name] = group.counter(name)
        self._gauges = (
            JavaGauge(group, "currentWatermarkMs", self._current_watermark()),
            JavaGauge(group, "watermarkLagMs", self._watermark_lag()),
        )

    def _publish(self) -> None:
        """Push the watermark gauges' values (see :mod:`udfs.java_gauge`)."""
        if self._gauges:
            watermark, lag = self._gauges
            watermark.set(self._current_watermark())
            lag.set(self._watermark_lag())

    def _current_watermark(self) -> int:
        return self._watermark if self._watermark > NO_WATERMARK else NO_VALUE

    def _watermark_lag(self) -> int:
        if NO_WATERMARK in (self._watermark, self._newest):
            return NO_VALUE
        return max(0, self._newest - self._watermark)

    def _windows(self, key_kind: str, key: str) -> KeyWindows:
        spec = self._specs[key_kind]
        windows = KeyWindows(
            spec, key, self.params.allowed_lateness_ms, dedup=key_kind == KEY_MERCHANT
        )
        return windows.load(self._state.value())

    def _save(self, windows: KeyWindows) -> None:
        snapshot = windows.snapshot()
        if snapshot is None:
            self._state.clear()
        else:
            self._state.update(snapshot)

    def _count(
        self, p: ScoredPayment, watermark: int, windows: KeyWindows
    ) -> tuple[Outcome, list[Any]]:
        """Add one payment to its window: the outcome and the side outputs to yield."""
        self._watermark = max(self._watermark, watermark)
        self._newest = max(self._newest, p.event_time)
        self._publish()
        outcome = windows.add(p, watermark)
        if outcome.status == TOO_LATE and outcome.too_late is not None:
            self._metrics["tooLateEvents"].inc()
            lateness = self.params.allowed_lateness_ms
            return outcome, [(LATE_TAG, late_json(p, outcome.too_late, lateness, self.source))]
        if outcome.status == DUPLICATE:
            self._metrics["duplicateEvents"].inc()
            return outcome, []
        self._save(windows)
        return outcome, list(self._emit([] if outcome.result is None else [outcome.result]))

    def _register(self, outcome: Outcome, ctx: KeyedProcessFunction.Context) -> None:
        for timer in outcome.timers:
            ctx.timer_service().register_event_time_timer(timer)

    def _emit(self, results: list[WindowResult]) -> Iterator[Any]:
        for result in results:
            self._metrics["windowResults"].inc()
            if result.revision > 1:
                self._metrics["windowUpdates"].inc()
            yield RESULTS_TAG, window_json(result, self.source)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        """Fire the windows this watermark completed; evict the ones it closed."""
        self._watermark = max(self._watermark, timestamp)
        self._publish()
        key_kind, key = self._current(ctx.get_current_key())
        windows = self._windows(key_kind, key)
        results = windows.advance(timestamp)
        self._save(windows)
        yield from self._emit(results)

    def _current(self, key: str) -> tuple[str, str]:
        raise NotImplementedError


class MerchantStage(_WindowStage):
    """Keyed by merchant id: dedup, the too-late decision, merchant windows, fan-out to views."""

    def process_element(self, p: ScoredPayment, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        """Count ``p`` in its merchant window; forward it to the MCC and global views."""
        watermark = ctx.timer_service().current_watermark()
        windows = self._windows(KEY_MERCHANT, p.merchant_id)
        outcome, outputs = self._count(p, watermark, windows)
        yield from outputs
        if outcome.status in (TOO_LATE, DUPLICATE):
            return
        self._register(outcome, ctx)
        if p.decision is None:
            self._metrics["unscoredEvents"].inc()
        for kind in (KEY_MCC, KEY_GLOBAL):
            yield f"{kind}{KEY_SEPARATOR}{self._specs[kind].key(p)}", p

    def _current(self, key: str) -> tuple[str, str]:
        return KEY_MERCHANT, key


class ViewStage(_WindowStage):
    """Keyed by ``"<kind>|<key>"``: the MCC-hour and global-minute windows."""

    def process_element(self, record: Routed, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        """Count one forwarded payment in its view window."""
        key_kind, key = self._current(record[0])
        watermark = ctx.timer_service().current_watermark()
        outcome, outputs = self._count(record[1], watermark, self._windows(key_kind, key))
        self._register(outcome, ctx)
        yield from outputs

    def _current(self, key: str) -> tuple[str, str]:
        kind, _, value = key.partition(KEY_SEPARATOR)
        return kind, value
