"""Per-terminal state and features: the Handbook's delayed-window count and fraud rate.

For an event at t and n in 1/7/30 days the window is ``(t - 7d - n, t - 7d]``; the fraud rate is
the share of the window's payments whose fraud label arrived before the event and became known
(label ``event_time``) before t. Labels come from the label stream, joined in the job.
"""

from __future__ import annotations

from bisect import bisect_right

import msgspec

from features.events import FRAUD, LabelLike, TransactionLike
from features.params import FeatureParams
from schemas.feature_set import LABEL_DELAY_MS, MS_PER_DAY, PAYMENT_FEATURES, Key

WINDOWS_MS = (MS_PER_DAY, 7 * MS_PER_DAY, 30 * MS_PER_DAY)
RETENTION_MS = LABEL_DELAY_MS + WINDOWS_MS[-1]
NAMES = tuple(f.name for f in PAYMENT_FEATURES.features if f.key is Key.TERMINAL)


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


def values(state: TerminalState, tx: TransactionLike) -> list[float]:
    """The terminal features of ``tx`` in :data:`NAMES` order (the current payment never counts)."""
    t = tx.event_time
    window_end = t - LABEL_DELAY_MS
    times = state.times
    end = bisect_right(times, window_end)
    counts = [end - bisect_right(times, window_end - length, 0, end) for length in WINDOWS_MS]
    frauds = [0, 0, 0]
    for tx_time, label_time in state.frauds.values():
        age = window_end - tx_time
        if label_time >= t or age < 0:
            continue
        for j, length in enumerate(WINDOWS_MS):
            if age < length:
                frauds[j] += 1
    out: list[float] = []
    for count, fraud in zip(counts, frauds, strict=True):
        out += [float(count), min(1.0, fraud / count) if count else 0.0]
    return out


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
    state: TerminalState, tx: TransactionLike, duplicate: bool, params: FeatureParams
) -> list[float]:
    """One payment through the terminal stage; duplicates are read but not added."""
    out = values(state, tx)
    if not duplicate:
        add(state, tx, params)
    return out


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
