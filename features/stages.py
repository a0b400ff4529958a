"""The per-stage entry points: what each keyed stage does with one payment, written once.

The Flink operators (``udfs/feature_stages.py``) and the Python driver (:mod:`features.compute`)
both call exactly these functions, in the order card -> device -> terminal, with the key of each
stage given by :func:`card_key`, :func:`device_key` and :func:`terminal_key`:

- :func:`card_stage` starts the payment's :data:`~schemas.feature_set.PaymentFeatureValues`, sets
  the event and card features and decides whether it is a duplicate;
- :func:`device_stage` sets the device features (the no-device case included: such a payment
  touches no device state);
- :func:`terminal_stage` sets the terminal features.

Labels go to :func:`features.device.add_label` (labels with a device, keyed by
:func:`label_device_key`) and :func:`features.terminal.add_label` (keyed by the terminal).
Every value is set by its feature's name; at import this module checks that the stages together
compute every feature of the spec, each exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from core.errors import FeatureSpecError
from features import card, device, terminal
from features.events import LabelLike, TransactionLike, time_features
from features.params import FeatureParams
from features.plan import single, stage_features
from schemas.feature_set import (
    PAYMENT_FEATURES,
    Aggregation,
    FeatureValues,
    Key,
    PaymentFeatureValues,
)

_EVENT = stage_features(
    Key.EVENT,
    (
        Aggregation.EVENT_AMOUNT,
        Aggregation.EVENT_HOUR_OF_DAY,
        Aggregation.EVENT_IS_WEEKEND,
        Aggregation.EVENT_IS_NIGHT,
    ),
)
AMOUNT = single(_EVENT, Aggregation.EVENT_AMOUNT)
HOUR_OF_DAY = single(_EVENT, Aggregation.EVENT_HOUR_OF_DAY)
IS_WEEKEND = single(_EVENT, Aggregation.EVENT_IS_WEEKEND)
IS_NIGHT = single(_EVENT, Aggregation.EVENT_IS_NIGHT)
EVENT_NAMES = tuple(f.name for f in PAYMENT_FEATURES.features_of(Key.EVENT))

_COMPUTED = Counter((*EVENT_NAMES, *card.NAMES, *device.NAMES, *terminal.NAMES))
if set(_COMPUTED) != set(PAYMENT_FEATURES.names) or max(_COMPUTED.values()) != 1:
    raise FeatureSpecError(
        f"feature stages: expected each of {PAYMENT_FEATURES.name} "
        f"v{PAYMENT_FEATURES.version}'s features computed once, found {dict(_COMPUTED)}"
    )


def card_key(tx: TransactionLike) -> str:
    """Key of the card stage."""
    return tx.card_id


def device_key(tx: TransactionLike) -> str:
    """Key of the device stage: the device, or the card for payments without a device (they
    touch no device state; keying them by card keeps one card's payments in order)."""
    return tx.device_id if tx.device_id is not None else f"card:{tx.card_id}"


def terminal_key(tx: TransactionLike) -> str:
    """Key of the terminal stage."""
    return tx.terminal_id


def label_device_key(label: LabelLike) -> str | None:
    """Key of a label in the device stage; ``None``: the payment had no device, skip it."""
    return label.device_id


def event_values(tx: TransactionLike, out: FeatureValues) -> None:
    """Set the features of the payment alone (amount, hour of day, weekend, night) by name."""
    if AMOUNT:
        setattr(out, AMOUNT, tx.amount)
    hour, weekend, night = time_features(tx.event_time)
    if HOUR_OF_DAY:
        setattr(out, HOUR_OF_DAY, hour)
    if IS_WEEKEND:
        setattr(out, IS_WEEKEND, weekend)
    if IS_NIGHT:
        setattr(out, IS_NIGHT, night)


def card_stage(
    state: card.CardState, tx: TransactionLike, params: FeatureParams
) -> tuple[FeatureValues, bool]:
    """Stage 1, keyed by :func:`card_key`: a new value struct with the event and card features,
    and the duplicate flag; ``state`` is updated unless the payment is a duplicate."""
    values = PaymentFeatureValues()
    event_values(tx, values)
    duplicate = card.process(state, tx, params, values)
    return values, duplicate


def device_stage(
    tx: TransactionLike,
    duplicate: bool,
    values: FeatureValues,
    params: FeatureParams,
    load: Callable[[str], device.DeviceState],
) -> device.DeviceState | None:
    """Stage 2, keyed by :func:`device_key`: set the device features in ``values``.

    ``load(device_id)`` returns the device's state; it is called only for a payment with a
    device. Returns the state to store back, or ``None`` when no state changed (no device, or a
    duplicate).
    """
    if tx.device_id is None:
        device.no_device_values(values)
        return None
    state = load(tx.device_id)
    device.process(state, tx, duplicate, params, values)
    return None if duplicate else state


def terminal_stage(
    state: terminal.TerminalState,
    tx: TransactionLike,
    duplicate: bool,
    values: FeatureValues,
    params: FeatureParams,
) -> bool:
    """Stage 3, keyed by :func:`terminal_key`: set the terminal features in ``values``; returns
    whether ``state`` changed (not for a duplicate)."""
    terminal.process(state, tx, duplicate, params, values)
    return not duplicate
