"""Per-terminal state and features: the Handbook's delayed-window count and fraud rate.

For an event at t and a spec window of length n and delay d (the Handbook's: n = 1, 7, 30 days,
d = 7 days) the window is ``(t - d - n, t - d]``; the fraud rate is the share of the window's
payments whose fraud label arrived before the event and became known (label ``event_time``)
before t. Labels come from the label stream, joined in the job. Windows come from the spec.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from dataclasses import dataclass

import msgspec

from features.events import FRAUD, LabelLike, TransactionLike
from features.packed import body, column, int64s, layout, versioned
from features.params import FeatureParams
from features.plan import stage_features, windowed
from schemas.feature_set import PAYMENT_FEATURES, Aggregation, FeatureValues, Key

_FEATURES = stage_features(Key.TERMINAL, (Aggregation.TX_COUNT, Aggregation.FRAUD_RATE))


@dataclass(frozen=True)
class DelayedWindow:
    """``(t - delay - length, t - delay]`` and its output names (``None``: not in the spec)."""

    length_ms: int
    delay_ms: int
    count: str | None
    fraud_rate: str | None


def _windows() -> tuple[DelayedWindow, ...]:
    count = windowed(_FEATURES, Aggregation.TX_COUNT)
    rate = windowed(_FEATURES, Aggregation.FRAUD_RATE)
    return tuple(
        DelayedWindow(w[0], w[1], count=count.get(w), fraud_rate=rate.get(w))
        for w in sorted({*count, *rate})
    )


WINDOWS = _windows()
RETENTION_MS = max((w.delay_ms + w.length_ms for w in WINDOWS), default=0)
"""Payments and labels are kept this long (plus the allowed lateness) behind the newest event."""
NAMES = tuple(f.name for f in PAYMENT_FEATURES.features_of(Key.TERMINAL))


class TerminalState(msgspec.Struct, gc=False):
    """Everything the terminal stage keeps for one terminal."""

    clock: int = 0
    times: array[int] = msgspec.field(default_factory=int64s)
    """Event times of the retained payments, sorted (an int64 column: :mod:`features.packed`)."""
    frauds: dict[str, list[int]] = msgspec.field(default_factory=dict)
    """Transaction id -> [transaction time, earliest fraud label time]."""


LAYOUT = 2
"""Blob layout written (:mod:`features.packed`); layout 1 blobs (before issue 16) are read."""


class _Blob(msgspec.Struct, array_like=True):
    """Layout 2: :class:`TerminalState` with ``times`` as its bytes."""

    clock: int
    times: bytes
    frauds: dict[str, list[int]]


class _LegacyBlob(msgspec.Struct, array_like=True, omit_defaults=True):
    """Layout 1, as riskstream wrote it before issue 16 (read only)."""

    clock: int = 0
    times: list[int] = msgspec.field(default_factory=list)
    frauds: dict[str, list[int]] = msgspec.field(default_factory=dict)


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Blob)
_LEGACY_DECODER = msgspec.msgpack.Decoder(_LegacyBlob)


def encode(state: TerminalState) -> bytes:
    """The state as one blob, layout :data:`LAYOUT`."""
    return versioned(LAYOUT, _ENCODER.encode(_Blob(state.clock, column(state.times), state.frauds)))


def decode(blob: bytes | None) -> TerminalState:
    """The state from its blob (layout 2, or layout 1 from an older checkpoint or savepoint);
    a fresh state for ``None``."""
    if blob is None:
        return TerminalState()
    if layout(blob) != LAYOUT:
        old = _LEGACY_DECODER.decode(blob)
        return TerminalState(old.clock, int64s(old.times), old.frauds)
    b = _DECODER.decode(body(blob))
    return TerminalState(b.clock, int64s(b.times), b.frauds)


_PLAN = tuple(
    (w.delay_ms, w.length_ms, w.count, w.fraud_rate)
    for w in sorted(WINDOWS, key=lambda w: (w.delay_ms, -w.length_ms))
)
"""The windows by delay, longest first within a delay (they share the window's end)."""


def values(state: TerminalState, tx: TransactionLike, out: FeatureValues) -> None:
    """Set the terminal features of ``tx`` in ``out`` by name (the current payment never counts)."""
    t = tx.event_time
    times = state.times
    frauds = state.frauds
    known = [tx_time for tx_time, label_time in frauds.values() if label_time < t] if frauds else ()
    last_delay = end = start = -1
    for delay, length, count_name, rate_name in _PLAN:
        window_end = t - delay
        if delay != last_delay:
            end = bisect_right(times, window_end)
            start, last_delay = 0, delay
        start = bisect_right(times, window_end - length, start, end)
        count = end - start
        if count_name:
            setattr(out, count_name, float(count))
        if rate_name:
            if count and known:
                fraud = sum(1 for tx_time in known if 0 <= window_end - tx_time < length)
                setattr(out, rate_name, min(1.0, fraud / count))
            else:
                setattr(out, rate_name, 0.0)


def add(state: TerminalState, tx: TransactionLike, params: FeatureParams) -> None:
    """Add a non-duplicate payment and evict by event time."""
    t = tx.event_time
    times = state.times
    if not times or times[-1] <= t:
        times.append(t)
    else:
        times.insert(bisect_right(times, t), t)
    state.clock = max(state.clock, t)
    prune(state, params)


def prune(state: TerminalState, params: FeatureParams) -> None:
    """Drop payments and labels older than the longest delayed window plus the lateness."""
    horizon = state.clock - RETENTION_MS - params.allowed_lateness_ms
    times = state.times
    if times and times[0] <= horizon:
        del times[: bisect_right(times, horizon)]
    if state.frauds:
        for tx_id in [i for i, (tx_time, _) in state.frauds.items() if tx_time <= horizon]:
            del state.frauds[tx_id]


def process(
    state: TerminalState,
    tx: TransactionLike,
    duplicate: bool,
    params: FeatureParams,
    out: FeatureValues,
) -> None:
    """One payment through the terminal stage (features set in ``out``); duplicates are read but
    not added."""
    values(state, tx, out)
    if not duplicate:
        add(state, tx, params)


def add_label(state: TerminalState, label: LabelLike, params: FeatureParams) -> bool:
    """Record a fraud label; returns whether the state changed."""
    if label.label != FRAUD:
        return False
    known = state.frauds.get(label.transaction_id)
    if known is not None and known[1] <= label.event_time:
        return False
    state.frauds[label.transaction_id] = [label.transaction_time, label.event_time]
    prune(state, params)
    return label.transaction_id in state.frauds
