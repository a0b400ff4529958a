"""Per-device state and features: distinct cards in 24 h and the fraud-label graph signal.

Fed by payments that carry a device id (online payments) and by fraud labels of payments made with
the device. A label counts for events whose time is after the label's ``event_time`` (when it
became known) and that arrive after the label.
"""

from __future__ import annotations

from bisect import bisect_right

import msgspec

from features.events import FRAUD, LabelLike, TransactionLike
from features.params import FeatureParams
from schemas.feature_set import MS_PER_DAY, PAYMENT_FEATURES, Key

DISTINCT_WINDOW_MS = MS_PER_DAY
NAMES = tuple(f.name for f in PAYMENT_FEATURES.features if f.key is Key.DEVICE)
NO_DEVICE_VALUES = (1.0, 0.0)
"""Device features of a payment without a device: only its own card, no fraud seen."""


class DeviceState(msgspec.Struct, array_like=True, omit_defaults=True):
    """Everything the device stage keeps for one device."""

    clock: int = 0
    times: list[int] = msgspec.field(default_factory=list)
    """Event times of recent payments, sorted; ``cards`` holds their card ids."""
    cards: list[str] = msgspec.field(default_factory=list)
    fraud_since: int | None = None
    """Earliest ``event_time`` of a fraud label on a payment made with this device."""


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(DeviceState)


def encode(state: DeviceState) -> bytes:
    """The state as one msgpack blob."""
    return _ENCODER.encode(state)


def decode(blob: bytes | None) -> DeviceState:
    """The state from its blob; a fresh state for ``None``."""
    return DeviceState() if blob is None else _DECODER.decode(blob)


def values(state: DeviceState, tx: TransactionLike, include_current: bool = True) -> list[float]:
    """The device features of ``tx`` in :data:`NAMES` order (entries are sorted by time)."""
    t = tx.event_time
    end = bisect_right(state.times, t)
    start = bisect_right(state.times, t - DISTINCT_WINDOW_MS, 0, end)
    cards = set(state.cards[start:end])
    if include_current:
        cards.add(tx.card_id)
    fraud = state.fraud_since is not None and state.fraud_since < t
    return [float(len(cards)), float(fraud)]


def add(state: DeviceState, tx: TransactionLike, params: FeatureParams) -> None:
    """Add a non-duplicate payment and evict entries no future on-time event can need."""
    i = bisect_right(state.times, tx.event_time)
    state.times.insert(i, tx.event_time)
    state.cards.insert(i, tx.card_id)
    state.clock = max(state.clock, tx.event_time)
    horizon = state.clock - DISTINCT_WINDOW_MS - params.allowed_lateness_ms
    k = bisect_right(state.times, horizon)
    if k:
        del state.times[:k]
        del state.cards[:k]


def process(
    state: DeviceState, tx: TransactionLike, duplicate: bool, params: FeatureParams
) -> list[float]:
    """One payment through the device stage; duplicates are read but not added."""
    out = values(state, tx, include_current=not duplicate)
    if not duplicate:
        add(state, tx, params)
    return out


def add_label(state: DeviceState, label: LabelLike) -> bool:
    """Record a fraud label for the device; returns whether the state changed."""
    if label.label != FRAUD:
        return False
    if state.fraud_since is not None and state.fraud_since <= label.event_time:
        return False
    state.fraud_since = label.event_time
    return True
