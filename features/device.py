"""Per-device state and features: distinct cards in 24 h and the fraud-label graph signal.

Fed by payments that carry a device id (online payments) and by fraud labels of payments made with
the device. A label counts for events whose time is after the label's ``event_time`` (when it
became known) and that arrive after the label. Windows come from the spec.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right

import msgspec

from features.events import FRAUD, LabelLike, TransactionLike
from features.packed import body, column, int64s, layout, versioned
from features.params import FeatureParams
from features.plan import single, stage_features, windowed
from schemas.feature_set import PAYMENT_FEATURES, Aggregation, FeatureValues, Key

_FEATURES = stage_features(Key.DEVICE, (Aggregation.DISTINCT_CARDS, Aggregation.FRAUD_SEEN))
DISTINCT_WINDOWS = tuple(
    (length, name)
    for (length, _), name in sorted(windowed(_FEATURES, Aggregation.DISTINCT_CARDS).items())
)
"""(window length ms, name) of the distinct-cards counts, current card included."""
FRAUD_SEEN = single(_FEATURES, Aggregation.FRAUD_SEEN)
LONGEST_WINDOW_MS = max((length for length, _ in DISTINCT_WINDOWS), default=0)
NAMES = tuple(f.name for f in PAYMENT_FEATURES.features_of(Key.DEVICE))


class DeviceState(msgspec.Struct, gc=False):
    """Everything the device stage keeps for one device."""

    clock: int = 0
    times: array[int] = msgspec.field(default_factory=int64s)
    """Event times of recent payments, sorted (an int64 column: :mod:`features.packed`);
    ``cards`` holds their card ids."""
    cards: list[str] = msgspec.field(default_factory=list)
    fraud_since: int | None = None
    """Earliest ``event_time`` of a fraud label on a payment made with this device."""


LAYOUT = 2
"""Blob layout written (:mod:`features.packed`); layout 1 blobs (before issue 16) are read."""


class _Blob(msgspec.Struct, array_like=True):
    """Layout 2: :class:`DeviceState` with ``times`` as its bytes."""

    clock: int
    times: bytes
    cards: list[str]
    fraud_since: int | None


class _LegacyBlob(msgspec.Struct, array_like=True, omit_defaults=True):
    """Layout 1, as riskstream wrote it before issue 16 (read only)."""

    clock: int = 0
    times: list[int] = msgspec.field(default_factory=list)
    cards: list[str] = msgspec.field(default_factory=list)
    fraud_since: int | None = None


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Blob)
_LEGACY_DECODER = msgspec.msgpack.Decoder(_LegacyBlob)


def encode(state: DeviceState) -> bytes:
    """The state as one blob, layout :data:`LAYOUT`."""
    blob = _Blob(state.clock, column(state.times), state.cards, state.fraud_since)
    return versioned(LAYOUT, _ENCODER.encode(blob))


def decode(blob: bytes | None) -> DeviceState:
    """The state from its blob (layout 2, or layout 1 from an older checkpoint or savepoint);
    a fresh state for ``None``."""
    if blob is None:
        return DeviceState()
    if layout(blob) != LAYOUT:
        old = _LEGACY_DECODER.decode(blob)
        return DeviceState(old.clock, int64s(old.times), old.cards, old.fraud_since)
    b = _DECODER.decode(body(blob))
    return DeviceState(b.clock, int64s(b.times), b.cards, b.fraud_since)


def values(
    state: DeviceState, tx: TransactionLike, out: FeatureValues, include_current: bool = True
) -> None:
    """Set the device features of ``tx`` in ``out`` by name (entries are sorted by time)."""
    t = tx.event_time
    end = bisect_right(state.times, t)
    for length, name in DISTINCT_WINDOWS:
        start = bisect_right(state.times, t - length, 0, end)
        cards = set(state.cards[start:end])
        if include_current:
            cards.add(tx.card_id)
        setattr(out, name, float(len(cards)))
    if FRAUD_SEEN:
        fraud = state.fraud_since is not None and state.fraud_since < t
        setattr(out, FRAUD_SEEN, float(fraud))


def no_device_values(out: FeatureValues) -> None:
    """Set the device features of a payment without a device: only its own card, no fraud seen."""
    for _, name in DISTINCT_WINDOWS:
        setattr(out, name, 1.0)
    if FRAUD_SEEN:
        setattr(out, FRAUD_SEEN, 0.0)


def add(state: DeviceState, tx: TransactionLike, params: FeatureParams) -> None:
    """Add a non-duplicate payment and evict entries no future on-time event can need."""
    t = tx.event_time
    times = state.times
    if not times or times[-1] <= t:
        times.append(t)
        state.cards.append(tx.card_id)
    else:
        i = bisect_right(times, t)
        times.insert(i, t)
        state.cards.insert(i, tx.card_id)
    state.clock = max(state.clock, t)
    horizon = state.clock - LONGEST_WINDOW_MS - params.allowed_lateness_ms
    if times[0] <= horizon:
        k = bisect_right(times, horizon)
        del times[:k]
        del state.cards[:k]


def process(
    state: DeviceState,
    tx: TransactionLike,
    duplicate: bool,
    params: FeatureParams,
    out: FeatureValues,
) -> None:
    """One payment through the device stage (features set in ``out``); duplicates are read but
    not added."""
    values(state, tx, out, include_current=not duplicate)
    if not duplicate:
        add(state, tx, params)


def add_label(state: DeviceState, label: LabelLike) -> bool:
    """Record a fraud label for the device; returns whether the state changed."""
    if label.label != FRAUD:
        return False
    if state.fraud_since is not None and state.fraud_since <= label.event_time:
        return False
    state.fraud_since = label.event_time
    return True
