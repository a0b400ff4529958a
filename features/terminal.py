"""Per-terminal state and features: the Handbook's delayed-window count and fraud rate.

For an event at t and a spec window of length n and delay d (the Handbook's: n = 1, 7, 30 days,
d = 7 days) the window is ``(t - d - n, t - d]``; the fraud rate is the share of the window's
payments whose fraud label arrived before the event and became known (label ``event_time``)
before t. Labels come from the label stream, joined in the job. Windows come from the spec.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import msgspec

from features.events import FRAUD, LabelLike, TransactionLike
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


class TerminalState(msgspec.Struct, array_like=True, omit_defaults=True):
    """Everything the terminal stage keeps for one terminal."""

    clock: int = 0
    times: list[int] = msgspec.field(default_factory=list)
    """Event times of the retained payments, sorted."""
    frauds: dict[str, list[int]] = msgspec.field(default_factory=dict)
    """Transaction id -> [transaction time, earliest fraud label time]."""


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(TerminalState)


def encode(state: TerminalState) -> bytes:
    """The state as one msgpack blob."""
    return _ENCODER.encode(state)


def decode(blob: bytes | None) -> TerminalState:
    """The state from its blob; a fresh state for ``None``."""
    return TerminalState() if blob is None else _DECODER.decode(blob)


def values(state: TerminalState, tx: TransactionLike, out: FeatureValues) -> None:
    """Set the terminal features of ``tx`` in ``out`` by name (the current payment never counts)."""
    t = tx.event_time
    times = state.times
    known = [tx_time for tx_time, label_time in state.frauds.values() if label_time < t]
    for window in WINDOWS:
        window_end = t - window.delay_ms
        end = bisect_right(times, window_end)
        count = end - bisect_right(times, window_end - window.length_ms, 0, end)
        if window.count:
            setattr(out, window.count, float(count))
        if window.fraud_rate:
            frauds = sum(1 for tx_time in known if 0 <= window_end - tx_time < window.length_ms)
            setattr(out, window.fraud_rate, min(1.0, frauds / count) if count else 0.0)


def add(state: TerminalState, tx: TransactionLike, params: FeatureParams) -> None:
    """Add a non-duplicate payment and evict by event time."""
    state.times.insert(bisect_right(state.times, tx.event_time), tx.event_time)
    state.clock = max(state.clock, tx.event_time)
    prune(state, params)


def prune(state: TerminalState, params: FeatureParams) -> None:
    """Drop payments and labels older than the longest delayed window plus the lateness."""
    horizon = state.clock - RETENTION_MS - params.allowed_lateness_ms
    k = bisect_right(state.times, horizon)
    if k:
        del state.times[:k]
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
