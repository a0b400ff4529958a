"""Per-card state and features: windowed amounts, previous payment, location, novelty, dedup.

One :class:`CardState` per card is the whole keyed state of the card stage (one msgpack blob).
A feature of event e reads only entries that arrived before e with event time <= e's, plus e itself
where the feature includes the current payment (the windowed counts, sums and means).

What is computed comes from the spec: every card feature's aggregation and window is read from
:data:`~schemas.feature_set.PAYMENT_FEATURES` at import (:data:`AMOUNT_WINDOWS`,
:data:`USUAL_WINDOWS`, the window-less names), and :func:`values` sets each value by name.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import msgspec

from features.events import CARD_PRESENT, TransactionLike, haversine_km
from features.params import FeatureParams
from features.plan import single, stage_features, windowed
from schemas.feature_set import (
    MISSING,
    MS_PER_HOUR,
    PAYMENT_FEATURES,
    Aggregation,
    FeatureValues,
    Key,
)

A = Aggregation
_AMOUNT = (A.TX_COUNT, A.AMOUNT_SUM, A.AMOUNT_MEAN, A.AMOUNT_RATIO)
_FEATURES = stage_features(
    Key.CARD,
    (
        *_AMOUNT,
        A.SECONDS_SINCE_PREV,
        A.KM_FROM_PREV_CP,
        A.KMH_FROM_PREV_CP,
        A.KM_FROM_USUAL,
        A.IS_NEW_MCC,
        A.IS_NEW_DEVICE,
    ),
)


@dataclass(frozen=True)
class AmountWindow:
    """One window of the card's payments and the output names read from it (``None``: not in
    the spec): count, sum and mean, current payment included, and amount / mean."""

    length_ms: int
    count: str | None
    total: str | None
    mean: str | None
    ratio: str | None


def _amount_windows() -> tuple[AmountWindow, ...]:
    count, total = windowed(_FEATURES, A.TX_COUNT), windowed(_FEATURES, A.AMOUNT_SUM)
    mean, ratio = windowed(_FEATURES, A.AMOUNT_MEAN), windowed(_FEATURES, A.AMOUNT_RATIO)
    windows = sorted({*count, *total, *mean, *ratio})  # (length, delay 0): card windows
    return tuple(
        AmountWindow(
            length_ms=w[0],
            count=count.get(w),
            total=total.get(w),
            mean=mean.get(w),
            ratio=ratio.get(w),
        )
        for w in windows
    )


AMOUNT_WINDOWS = _amount_windows()
USUAL_WINDOWS = tuple(
    (length, name) for (length, _), name in sorted(windowed(_FEATURES, A.KM_FROM_USUAL).items())
)
"""(window length ms, name) of the distance to the mean card-present location in the window."""
SINCE_PREV = single(_FEATURES, A.SECONDS_SINCE_PREV)
KM_FROM_PREV_CP = single(_FEATURES, A.KM_FROM_PREV_CP)
KMH_FROM_PREV_CP = single(_FEATURES, A.KMH_FROM_PREV_CP)
IS_NEW_MCC = single(_FEATURES, A.IS_NEW_MCC)
IS_NEW_DEVICE = single(_FEATURES, A.IS_NEW_DEVICE)
LONGEST_WINDOW_MS = max(
    [w.length_ms for w in AMOUNT_WINDOWS] + [length for length, _ in USUAL_WINDOWS], default=0
)
"""History is kept this long (plus the allowed lateness) behind the card's newest event."""
NAMES = tuple(f.name for f in PAYMENT_FEATURES.features_of(Key.CARD))
MIN_SPEED_INTERVAL_S = 60.0
"""Implied speed uses at least this interval, so same-second payments are not infinitely fast."""
SECONDS_PER_HOUR = 3600.0
PROFILE_PRUNE_MS = MS_PER_HOUR
"""Profiles and dedup ids are pruned when the card's clock enters a new bucket of this size."""


class CardState(msgspec.Struct, array_like=True, omit_defaults=True):
    """Everything the card stage keeps for one card (columnar lists keep the blob small)."""

    clock: int = 0
    """Latest event time seen for the card; pruning is relative to it (never wall time)."""
    times: list[int] = msgspec.field(default_factory=list)
    """Event times of the retained payments, sorted (ties in arrival order)."""
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


def values(
    state: CardState, tx: TransactionLike, out: FeatureValues, include_current: bool = True
) -> None:
    """Set the card features of ``tx`` in ``out``, by name, as of ``tx.event_time``.

    The lists are sorted by event time (ties in arrival order), so every window is two bisections
    and a slice sum. ``include_current=False`` is for duplicates (the original is in the state).
    """
    t = tx.event_time
    times, amounts = state.times, state.amounts
    end = bisect_right(times, t)
    current = 1 if include_current else 0
    current_amount = tx.amount if include_current else 0.0
    for window in AMOUNT_WINDOWS:
        start = bisect_right(times, t - window.length_ms, 0, end)
        count = end - start + current
        total = sum(amounts[start:end]) + current_amount
        mean = total / count if count else MISSING
        if window.count:
            setattr(out, window.count, float(count))
        if window.total:
            setattr(out, window.total, total)
        if window.mean:
            setattr(out, window.mean, mean)
        if window.ratio:
            setattr(out, window.ratio, tx.amount / mean if mean > 0 else MISSING)
    if SINCE_PREV:
        setattr(out, SINCE_PREV, (t - times[end - 1]) / 1000.0 if end else MISSING)
    _location_values(state, tx, out)
    if IS_NEW_MCC:
        setattr(out, IS_NEW_MCC, _is_new(state.mccs, tx.mcc, t))
    if IS_NEW_DEVICE:
        new_device = 0.0 if tx.device_id is None else _is_new(state.devices, tx.device_id, t)
        setattr(out, IS_NEW_DEVICE, new_device)


def _location_values(state: CardState, tx: TransactionLike, out: FeatureValues) -> None:
    """km and km/h from the previous card-present payment, km from the usual location."""
    t = tx.event_time
    cp_times = state.cp_times
    end = bisect_right(cp_times, t)
    km_prev = kmh_prev = MISSING
    if end and tx.channel == CARD_PRESENT:
        prev = end - 1  # the latest earlier-or-equal one; among equal times the last to arrive
        km_prev = haversine_km(state.cp_lats[prev], state.cp_lons[prev], tx.latitude, tx.longitude)
        hours = max((t - cp_times[prev]) / 1000.0, MIN_SPEED_INTERVAL_S) / SECONDS_PER_HOUR
        kmh_prev = km_prev / hours
    if KM_FROM_PREV_CP:
        setattr(out, KM_FROM_PREV_CP, km_prev)
    if KMH_FROM_PREV_CP:
        setattr(out, KMH_FROM_PREV_CP, kmh_prev)
    for length, name in USUAL_WINDOWS:
        start = bisect_right(cp_times, t - length, 0, end)
        n = end - start
        km_usual = MISSING
        if n:
            lat = sum(state.cp_lats[start:end]) / n
            lon = sum(state.cp_lons[start:end]) / n
            km_usual = haversine_km(lat, lon, tx.latitude, tx.longitude)
        setattr(out, name, km_usual)


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
    i = bisect_right(state.times, t)
    state.times.insert(i, t)
    state.amounts.insert(i, tx.amount)
    if tx.channel == CARD_PRESENT:
        j = bisect_right(state.cp_times, t)
        state.cp_times.insert(j, t)
        state.cp_lats.insert(j, tx.latitude)
        state.cp_lons.insert(j, tx.longitude)
    _remember(state.mccs, tx.mcc, t)
    if tx.device_id is not None:
        _remember(state.devices, tx.device_id, t)
    state.ids[tx.event_id] = t
    old_clock = state.clock
    state.clock = max(old_clock, t)
    prune(state, params, full=state.clock // PROFILE_PRUNE_MS != old_clock // PROFILE_PRUNE_MS)


def prune(state: CardState, params: FeatureParams, full: bool = True) -> None:
    """Evict by event time relative to the card's clock (a replay prunes exactly like live).

    Window history is pruned on every call (a bisection); the MCC/device profiles and the dedup
    ids only when ``full`` (the job passes it when the clock enters a new hour), so an id or a
    profile entry may outlive its horizon by up to an hour.
    """
    horizon = state.clock - LONGEST_WINDOW_MS - params.allowed_lateness_ms
    k = bisect_right(state.times, horizon)
    if k:
        del state.times[:k]
        del state.amounts[:k]
    k = bisect_right(state.cp_times, horizon)
    if k:
        del state.cp_times[:k]
        del state.cp_lats[:k]
        del state.cp_lons[:k]
    if not full:
        return
    profile_horizon = state.clock - params.profile_retention_ms
    for seen in (state.mccs, state.devices):
        for value in [v for v, (_, last) in seen.items() if last <= profile_horizon]:
            del seen[value]
    dedup_horizon = state.clock - params.dedup_horizon_ms
    for event_id in [e for e, ti in state.ids.items() if ti <= dedup_horizon]:
        del state.ids[event_id]


def process(
    state: CardState, tx: TransactionLike, params: FeatureParams, out: FeatureValues
) -> bool:
    """One event through the card stage: sets the card features in ``out``, updates ``state``
    and returns the duplicate flag."""
    duplicate = is_duplicate(state, tx)
    values(state, tx, out, include_current=not duplicate)
    if not duplicate:
        add(state, tx, params)
    return duplicate
