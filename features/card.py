"""Per-card state and features: windowed amounts, previous payment, location, novelty, dedup.

One :class:`CardState` per card is the whole keyed state of the card stage (one blob of packed
columns, :mod:`features.packed`; blobs of the earlier msgpack-lists layout are still read).
A feature of event e reads only entries that arrived before e with event time <= e's, plus e itself
where the feature includes the current payment (the windowed counts, sums and means).

What is computed comes from the spec: every card feature's aggregation and window is read from
:data:`~schemas.feature_set.PAYMENT_FEATURES` at import (:data:`AMOUNT_WINDOWS`,
:data:`USUAL_WINDOWS`, the window-less names), and :func:`values` sets each value by name.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from dataclasses import dataclass
from math import asin, cos, radians, sin, sqrt

import msgspec

from features.events import CARD_PRESENT, EARTH_RADIUS_KM, TransactionLike
from features.packed import body, column, float64s, int64s, layout, versioned
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


class CardState(msgspec.Struct, gc=False):
    """Everything the card stage keeps for one card, as columns (``array`` of int64/float64, so
    the blob is the columns' bytes: :mod:`features.packed`)."""

    clock: int = 0
    """Latest event time seen for the card; pruning is relative to it (never wall time)."""
    times: array[int] = msgspec.field(default_factory=int64s)
    """Event times of the retained payments, sorted (ties in arrival order)."""
    amounts: array[float] = msgspec.field(default_factory=float64s)
    cp_times: array[int] = msgspec.field(default_factory=int64s)
    cp_lats: array[float] = msgspec.field(default_factory=float64s)
    cp_lons: array[float] = msgspec.field(default_factory=float64s)
    mccs: list[str] = msgspec.field(default_factory=list)
    """MCCs the card paid in; ``mcc_seen[2i]``, ``mcc_seen[2i + 1]``: first and last event time."""
    mcc_seen: array[int] = msgspec.field(default_factory=int64s)
    devices: list[str] = msgspec.field(default_factory=list)
    """Device ids the card used; ``device_seen`` as ``mcc_seen``."""
    device_seen: array[int] = msgspec.field(default_factory=int64s)
    ids: list[str] = msgspec.field(default_factory=list)
    """Event ids of recent payments (to recognise duplicates); ``id_times[i]``: event time."""
    id_times: array[int] = msgspec.field(default_factory=int64s)


LAYOUT = 2
"""Blob layout written (:mod:`features.packed`); layout 1 blobs (before issue 16) are read."""


class _Blob(msgspec.Struct, array_like=True):
    """Layout 2: :class:`CardState` with every column as its bytes."""

    clock: int
    times: bytes
    amounts: bytes
    cp_times: bytes
    cp_lats: bytes
    cp_lons: bytes
    mccs: list[str]
    mcc_seen: bytes
    devices: list[str]
    device_seen: bytes
    ids: list[str]
    id_times: bytes


class _LegacyBlob(msgspec.Struct, array_like=True, omit_defaults=True):
    """Layout 1, the card state as riskstream wrote it before issue 16 (read only)."""

    clock: int = 0
    times: list[int] = msgspec.field(default_factory=list)
    amounts: list[float] = msgspec.field(default_factory=list)
    cp_times: list[int] = msgspec.field(default_factory=list)
    cp_lats: list[float] = msgspec.field(default_factory=list)
    cp_lons: list[float] = msgspec.field(default_factory=list)
    mccs: dict[str, list[int]] = msgspec.field(default_factory=dict)
    devices: dict[str, list[int]] = msgspec.field(default_factory=dict)
    ids: dict[str, int] = msgspec.field(default_factory=dict)


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Blob)
_LEGACY_DECODER = msgspec.msgpack.Decoder(_LegacyBlob)


def encode(state: CardState) -> bytes:
    """The state as one compact blob (what the Flink ValueState holds), layout :data:`LAYOUT`."""
    s = state
    return versioned(
        LAYOUT,
        _ENCODER.encode(
            _Blob(
                s.clock,
                column(s.times),
                column(s.amounts),
                column(s.cp_times),
                column(s.cp_lats),
                column(s.cp_lons),
                s.mccs,
                column(s.mcc_seen),
                s.devices,
                column(s.device_seen),
                s.ids,
                column(s.id_times),
            )
        ),
    )


def decode(blob: bytes | None) -> CardState:
    """The state from its blob (layout 2, or layout 1 from an older checkpoint or savepoint);
    a fresh state for ``None`` (a card never seen)."""
    if blob is None:
        return CardState()
    if layout(blob) != LAYOUT:
        return _from_legacy(_LEGACY_DECODER.decode(blob))
    b = _DECODER.decode(body(blob))
    return CardState(
        b.clock,
        int64s(b.times),
        float64s(b.amounts),
        int64s(b.cp_times),
        float64s(b.cp_lats),
        float64s(b.cp_lons),
        b.mccs,
        int64s(b.mcc_seen),
        b.devices,
        int64s(b.device_seen),
        b.ids,
        int64s(b.id_times),
    )


def _from_legacy(old: _LegacyBlob) -> CardState:
    return CardState(
        old.clock,
        int64s(old.times),
        float64s(old.amounts),
        int64s(old.cp_times),
        float64s(old.cp_lats),
        float64s(old.cp_lons),
        list(old.mccs),
        int64s(t for first_last in old.mccs.values() for t in first_last),
        list(old.devices),
        int64s(t for first_last in old.devices.values() for t in first_last),
        list(old.ids),
        int64s(old.ids.values()),
    )


def is_duplicate(state: CardState, tx: TransactionLike) -> bool:
    """Whether this payment's event id was already seen within the dedup horizon."""
    return tx.event_id in state.ids


_AMOUNT_PLAN = tuple(
    (w.length_ms, w.count, w.total, w.mean, w.ratio)
    for w in sorted(AMOUNT_WINDOWS, key=lambda w: -w.length_ms)
)
"""The amount windows, longest first (each window's start bounds the next one's bisection)."""
_TWO_R = 2 * EARTH_RADIUS_KM
_NOT_SEEN = -1


def values(
    state: CardState, tx: TransactionLike, out: FeatureValues, include_current: bool = True
) -> None:
    """Set the card features of ``tx`` in ``out``, by name, as of ``tx.event_time``.

    The columns are sorted by event time (ties in arrival order), so every window is two
    bisections and a slice sum (left to right over the window's amounts, in time order).
    ``include_current=False`` is for duplicates (the original is in the state).
    """
    _values(state, tx, out, include_current)


def _values(
    state: CardState, tx: TransactionLike, out: FeatureValues, include_current: bool
) -> tuple[int, int, int, int]:
    """:func:`values`; returns what :func:`_add` reuses: the insertion points of ``tx`` in
    ``times`` and ``cp_times`` and the index of its MCC and device in the profiles (-1: new)."""
    t = tx.event_time
    amount = tx.amount
    times, amounts = state.times, state.amounts
    n = len(times)
    end = n if not n or times[n - 1] <= t else bisect_right(times, t)
    current = 1 if include_current else 0
    current_amount = amount if include_current else 0.0
    start = 0
    for length, count_name, total_name, mean_name, ratio_name in _AMOUNT_PLAN:
        start = bisect_right(times, t - length, start, end)
        count = end - start + current
        total = sum(amounts[start:end]) + current_amount
        mean = total / count if count else MISSING
        if count_name:
            setattr(out, count_name, float(count))
        if total_name:
            setattr(out, total_name, total)
        if mean_name:
            setattr(out, mean_name, mean)
        if ratio_name:
            setattr(out, ratio_name, amount / mean if mean > 0 else MISSING)
    if SINCE_PREV:
        setattr(out, SINCE_PREV, (t - times[end - 1]) / 1000.0 if end else MISSING)
    cp_end = _location_values(state, tx, out)
    mcc = tx.mcc
    mccs = state.mccs
    mcc_index = mccs.index(mcc) if mcc in mccs else _NOT_SEEN
    if IS_NEW_MCC:
        new_mcc = 0.0 if mcc_index >= 0 and state.mcc_seen[2 * mcc_index] <= t else 1.0
        setattr(out, IS_NEW_MCC, new_mcc)
    device_id = tx.device_id
    device_index = _NOT_SEEN
    if device_id is not None:
        devices = state.devices
        device_index = devices.index(device_id) if device_id in devices else _NOT_SEEN
    if IS_NEW_DEVICE:
        new_device = 0.0
        if device_id is not None:
            seen = device_index >= 0 and state.device_seen[2 * device_index] <= t
            new_device = 0.0 if seen else 1.0
        setattr(out, IS_NEW_DEVICE, new_device)
    return end, cp_end, mcc_index, device_index


def _location_values(state: CardState, tx: TransactionLike, out: FeatureValues) -> int:
    """km and km/h from the previous card-present payment, km from the usual location; returns
    the insertion point of ``tx`` in ``cp_times``.

    The distances are :func:`features.events.haversine_km`, written out so the payment's own
    ``cos(latitude)`` is computed once (the same operations in the same order: the same values).
    """
    t = tx.event_time
    cp_times = state.cp_times
    n = len(cp_times)
    end = n if not n or cp_times[n - 1] <= t else bisect_right(cp_times, t)
    km_prev = kmh_prev = MISSING
    lat, lon = tx.latitude, tx.longitude
    p2 = radians(lat)
    cos_p2 = cos(p2)
    if end and tx.channel == CARD_PRESENT:
        prev = end - 1  # the latest earlier-or-equal one; among equal times the last to arrive
        p1 = radians(state.cp_lats[prev])
        dl = radians(lon - state.cp_lons[prev])
        a = sin((p2 - p1) / 2) ** 2 + cos(p1) * cos_p2 * sin(dl / 2) ** 2
        root = sqrt(a)
        km_prev = _TWO_R * asin(root if root < 1.0 else 1.0)
        hours = max((t - cp_times[prev]) / 1000.0, MIN_SPEED_INTERVAL_S) / SECONDS_PER_HOUR
        kmh_prev = km_prev / hours
    if KM_FROM_PREV_CP:
        setattr(out, KM_FROM_PREV_CP, km_prev)
    if KMH_FROM_PREV_CP:
        setattr(out, KMH_FROM_PREV_CP, kmh_prev)
    for length, name in USUAL_WINDOWS:
        start = bisect_right(cp_times, t - length, 0, end)
        k = end - start
        km_usual = MISSING
        if k:
            p1 = radians(sum(state.cp_lats[start:end]) / k)
            dl = radians(lon - sum(state.cp_lons[start:end]) / k)
            a = sin((p2 - p1) / 2) ** 2 + cos(p1) * cos_p2 * sin(dl / 2) ** 2
            root = sqrt(a)
            km_usual = _TWO_R * asin(root if root < 1.0 else 1.0)
        setattr(out, name, km_usual)
    return end


def _remember(names: list[str], seen: array[int], index: int, value: str, t: int) -> None:
    """Widen the [first, last] of profile entry ``index`` to ``t`` (``-1``: add ``value``)."""
    if index < 0:
        names.append(value)
        seen.append(t)
        seen.append(t)
        return
    i = 2 * index
    seen[i] = min(seen[i], t)
    seen[i + 1] = max(seen[i + 1], t)


def add(state: CardState, tx: TransactionLike, params: FeatureParams) -> None:
    """Add a (non-duplicate) payment to the state, then evict what no future event can need."""
    t = tx.event_time
    mccs, devices, device_id = state.mccs, state.devices, tx.device_id
    found = (
        bisect_right(state.times, t),
        bisect_right(state.cp_times, t),
        mccs.index(tx.mcc) if tx.mcc in mccs else _NOT_SEEN,
        devices.index(device_id) if device_id is not None and device_id in devices else _NOT_SEEN,
    )
    _add(state, tx, params, found)


def _add(
    state: CardState, tx: TransactionLike, params: FeatureParams, found: tuple[int, int, int, int]
) -> None:
    """:func:`add` with the insertion points and profile indexes already found (:func:`_values`)."""
    at, cp_at, mcc_index, device_index = found
    t = tx.event_time
    times = state.times
    if at == len(times):  # in order: the common case
        times.append(t)
        state.amounts.append(tx.amount)
    else:
        times.insert(at, t)
        state.amounts.insert(at, tx.amount)
    if tx.channel == CARD_PRESENT:
        cp_times = state.cp_times
        if cp_at == len(cp_times):
            cp_times.append(t)
            state.cp_lats.append(tx.latitude)
            state.cp_lons.append(tx.longitude)
        else:
            cp_times.insert(cp_at, t)
            state.cp_lats.insert(cp_at, tx.latitude)
            state.cp_lons.insert(cp_at, tx.longitude)
    _remember(state.mccs, state.mcc_seen, mcc_index, tx.mcc, t)
    if tx.device_id is not None:
        _remember(state.devices, state.device_seen, device_index, tx.device_id, t)
    state.ids.append(tx.event_id)
    state.id_times.append(t)
    old_clock = state.clock
    if t > old_clock:
        state.clock = t
    prune(state, params, full=state.clock // PROFILE_PRUNE_MS != old_clock // PROFILE_PRUNE_MS)


def prune(state: CardState, params: FeatureParams, full: bool = True) -> None:
    """Evict by event time relative to the card's clock (a replay prunes exactly like live).

    Window history is pruned on every call (a bisection); the MCC/device profiles and the dedup
    ids only when ``full`` (the job passes it when the clock enters a new hour), so an id or a
    profile entry may outlive its horizon by up to an hour.
    """
    horizon = state.clock - LONGEST_WINDOW_MS - params.allowed_lateness_ms
    times = state.times
    if times and times[0] <= horizon:
        k = bisect_right(times, horizon)
        del times[:k]
        del state.amounts[:k]
    cp_times = state.cp_times
    if cp_times and cp_times[0] <= horizon:
        k = bisect_right(cp_times, horizon)
        del cp_times[:k]
        del state.cp_lats[:k]
        del state.cp_lons[:k]
    if not full:
        return
    profile_horizon = state.clock - params.profile_retention_ms
    if state.mccs and min(state.mcc_seen[1::2]) <= profile_horizon:
        state.mccs, state.mcc_seen = _profile_kept(state.mccs, state.mcc_seen, profile_horizon)
    if state.devices and min(state.device_seen[1::2]) <= profile_horizon:
        state.devices, state.device_seen = _profile_kept(
            state.devices, state.device_seen, profile_horizon
        )
    dedup_horizon = state.clock - params.dedup_horizon_ms
    id_times = state.id_times
    if id_times and min(id_times) <= dedup_horizon:
        keep = [i for i, ti in enumerate(id_times) if ti > dedup_horizon]
        state.ids = [state.ids[i] for i in keep]
        state.id_times = int64s(id_times[i] for i in keep)


def _profile_kept(names: list[str], seen: array[int], horizon: int) -> tuple[list[str], array[int]]:
    """The profile entries last seen after ``horizon``."""
    keep = [i for i in range(len(names)) if seen[2 * i + 1] > horizon]
    return [names[i] for i in keep], int64s(t for i in keep for t in (seen[2 * i], seen[2 * i + 1]))


def process(
    state: CardState, tx: TransactionLike, params: FeatureParams, out: FeatureValues
) -> bool:
    """One event through the card stage: sets the card features in ``out``, updates ``state``
    and returns the duplicate flag."""
    if tx.event_id in state.ids:
        _values(state, tx, out, include_current=False)
        return True
    _add(state, tx, params, _values(state, tx, out, include_current=True))
    return False
