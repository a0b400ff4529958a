"""Per-card state and features: windowed amounts, previous payment, location, novelty, dedup.

One :class:`CardState` per card is the whole keyed state of the card stage (one msgpack blob).
A feature of event e reads only entries that arrived before e with event time <= e's, plus e itself
where the feature includes the current payment (the windowed counts, sums and means).
"""

from __future__ import annotations

import msgspec

from schemas.feature_set import MISSING, MS_PER_DAY, MS_PER_HOUR, PAYMENT_FEATURES, Key
from udfs.features.events import CARD_PRESENT, TransactionLike, haversine_km
from udfs.features.params import FeatureParams

WINDOWS_MS = (MS_PER_HOUR, MS_PER_DAY, 7 * MS_PER_DAY, 30 * MS_PER_DAY)
LONGEST_WINDOW_MS = WINDOWS_MS[-1]
MIN_SPEED_INTERVAL_S = 60.0
"""Implied speed uses at least this interval, so same-second payments are not infinitely fast."""
SECONDS_PER_HOUR = 3600.0
NAMES = tuple(f.name for f in PAYMENT_FEATURES.features if f.key is Key.CARD)


class CardState(msgspec.Struct, array_like=True, omit_defaults=True):
    """Everything the card stage keeps for one card (columnar lists keep the blob small)."""

    clock: int = 0
    """Latest event time seen for the card; pruning is relative to it (never wall time)."""
    times: list[int] = msgspec.field(default_factory=list)
    amounts: list[float] = msgspec.field(default_factory=list)
    cp_times: list[int] = msgspec.field(default_factory=list)
    cp_lats: list[float] = msgspec.field(default_factory=list)
    cp_lons: list[float] = msgspec.field(default_factory=list)
    mccs: dict[str, list[int]] = msgspec.field(default_factory=dict)
    """MCC -> [first, last] event time the card paid in it."""
    devices: dict[str, list[int]] = msgspec.field(default_factory=dict)
    """Device id -> [first, last] event time the card used it."""
    ids: dict[str, int] = msgspec.field(default_factory=dict)
    """Event id -> event time of recent payments, to recognise duplicates."""


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(CardState)


def encode(state: CardState) -> bytes:
    """The state as one compact msgpack blob (what the Flink ValueState holds)."""
    return _ENCODER.encode(state)


def decode(blob: bytes | None) -> CardState:
    """The state from its blob; a fresh state for ``None`` (a card never seen)."""
    return CardState() if blob is None else _DECODER.decode(blob)


def is_duplicate(state: CardState, tx: TransactionLike) -> bool:
    """Whether this payment's event id was already seen within the dedup horizon."""
    return tx.event_id in state.ids


def values(state: CardState, tx: TransactionLike, include_current: bool = True) -> list[float]:
    """The card features of ``tx`` in :data:`NAMES` order, as of ``tx.event_time``.

    ``include_current=False`` is used for duplicates: the original is already in the state.
    """
    t = tx.event_time
    counts = [0, 0, 0, 0]
    sums = [0.0, 0.0, 0.0, 0.0]
    prev = -1
    for ti, amount in zip(state.times, state.amounts, strict=True):
        if ti > t:
            continue
        prev = max(prev, ti)
        age = t - ti
        for j, length in enumerate(WINDOWS_MS):
            if age < length:
                counts[j] += 1
                sums[j] += amount
    if include_current:
        counts = [c + 1 for c in counts]
        sums = [s + tx.amount for s in sums]
    out: list[float] = []
    for count, total in zip(counts, sums, strict=True):
        out += [float(count), total, total / count if count else MISSING]
    mean_30d = out[-1]
    out.append(tx.amount / mean_30d if mean_30d > 0 else MISSING)
    out.append((t - prev) / 1000.0 if prev >= 0 else MISSING)
    out += _location_values(state, tx)
    out.append(_is_new(state.mccs, tx.mcc, t))
    out.append(0.0 if tx.device_id is None else _is_new(state.devices, tx.device_id, t))
    return out


def _location_values(state: CardState, tx: TransactionLike) -> list[float]:
    """km and km/h from the previous card-present payment, km from the usual location."""
    t = tx.event_time
    prev_t, prev_lat, prev_lon = -1, 0.0, 0.0
    n, lat_sum, lon_sum = 0, 0.0, 0.0
    for ti, lat, lon in zip(state.cp_times, state.cp_lats, state.cp_lons, strict=True):
        if ti > t:
            continue
        if ti >= prev_t:
            prev_t, prev_lat, prev_lon = ti, lat, lon
        if t - ti < LONGEST_WINDOW_MS:
            n, lat_sum, lon_sum = n + 1, lat_sum + lat, lon_sum + lon
    km_prev = kmh_prev = km_usual = MISSING
    if prev_t >= 0 and tx.channel == CARD_PRESENT:
        km_prev = haversine_km(prev_lat, prev_lon, tx.latitude, tx.longitude)
        hours = max((t - prev_t) / 1000.0, MIN_SPEED_INTERVAL_S) / SECONDS_PER_HOUR
        kmh_prev = km_prev / hours
    if n:
        km_usual = haversine_km(lat_sum / n, lon_sum / n, tx.latitude, tx.longitude)
    return [km_prev, kmh_prev, km_usual]


def _is_new(seen: dict[str, list[int]], value: str, t: int) -> float:
    first_last = seen.get(value)
    return 0.0 if first_last is not None and first_last[0] <= t else 1.0


def _remember(seen: dict[str, list[int]], value: str, t: int) -> None:
    first_last = seen.get(value)
    if first_last is None:
        seen[value] = [t, t]
    else:
        first_last[0], first_last[1] = min(first_last[0], t), max(first_last[1], t)


def add(state: CardState, tx: TransactionLike, params: FeatureParams) -> None:
    """Add a (non-duplicate) payment to the state, then evict what no future event can need."""
    t = tx.event_time
    state.times.append(t)
    state.amounts.append(tx.amount)
    if tx.channel == CARD_PRESENT:
        state.cp_times.append(t)
        state.cp_lats.append(tx.latitude)
        state.cp_lons.append(tx.longitude)
    _remember(state.mccs, tx.mcc, t)
    if tx.device_id is not None:
        _remember(state.devices, tx.device_id, t)
    state.ids[tx.event_id] = t
    state.clock = max(state.clock, t)
    prune(state, params)


def prune(state: CardState, params: FeatureParams) -> None:
    """Evict by event time relative to the card's clock (a replay prunes exactly like live)."""
    horizon = state.clock - LONGEST_WINDOW_MS - params.allowed_lateness_ms
    if state.times and min(state.times) <= horizon:
        keep = [i for i, ti in enumerate(state.times) if ti > horizon]
        state.times = [state.times[i] for i in keep]
        state.amounts = [state.amounts[i] for i in keep]
    if state.cp_times and min(state.cp_times) <= horizon:
        keep = [i for i, ti in enumerate(state.cp_times) if ti > horizon]
        state.cp_times = [state.cp_times[i] for i in keep]
        state.cp_lats = [state.cp_lats[i] for i in keep]
        state.cp_lons = [state.cp_lons[i] for i in keep]
    profile_horizon = state.clock - params.profile_retention_ms
    for seen in (state.mccs, state.devices):
        for value in [v for v, (_, last) in seen.items() if last <= profile_horizon]:
            del seen[value]
    dedup_horizon = state.clock - params.dedup_horizon_ms
    for event_id in [e for e, ti in state.ids.items() if ti <= dedup_horizon]:
        del state.ids[event_id]


def process(
    state: CardState, tx: TransactionLike, params: FeatureParams
) -> tuple[list[float], bool]:
    """One event through the card stage: (card features, duplicate flag); updates ``state``."""
    duplicate = is_duplicate(state, tx)
    out = values(state, tx, include_current=not duplicate)
    if not duplicate:
        add(state, tx, params)
    return out, duplicate
