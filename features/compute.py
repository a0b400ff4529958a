"""The plain-Python driver: features of a whole event list in arrival order.

This is the reference the stream is compared to, and what the backfill and the training-set
builder import. It runs exactly the per-stage functions the Flink operators run, in the same order
(card -> device -> terminal), with one state object per key held in dicts instead of Flink state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeGuard

from core.errors import FeatureSpecError
from features import card, device, terminal
from features.events import LabelLike, TransactionLike, time_features
from features.params import FeatureParams
from schemas.feature_set import PAYMENT_FEATURES, FeatureSet, Key

EVENT_NAMES = tuple(f.name for f in PAYMENT_FEATURES.features if f.key is Key.EVENT)
STAGE_NAMES = EVENT_NAMES + card.NAMES + device.NAMES + terminal.NAMES
if PAYMENT_FEATURES.names != STAGE_NAMES:
    raise FeatureSpecError(
        "the feature set must list event, card, device, then terminal features; "
        f"found order {PAYMENT_FEATURES.names}"
    )


def event_values(tx: TransactionLike) -> list[float]:
    """The features of the payment alone: amount, hour of day, weekend, night."""
    return [tx.amount, *time_features(tx.event_time)]


def is_label(event: TransactionLike | LabelLike) -> TypeGuard[LabelLike]:
    """Labels are told apart from payments by their ``transaction_id`` field."""
    return hasattr(event, "transaction_id")


@dataclass(frozen=True)
class FeatureRow:
    """The features of one payment, in feature-set order, with its duplicate flag."""

    event_id: str
    event_time: int
    card_id: str
    values: tuple[float, ...]
    duplicate: bool = False
    feature_set: FeatureSet = field(default=PAYMENT_FEATURES, repr=False, compare=False)

    def as_dict(self) -> dict[str, float]:
        """Feature name -> value."""
        return dict(zip(self.feature_set.names, self.values, strict=True))


class FeaturePipeline:
    """All keyed states of the feature job in memory; feed events in arrival order."""

    def __init__(self, params: FeatureParams | None = None) -> None:
        self.params = params or FeatureParams()
        self.cards: dict[str, card.CardState] = {}
        self.devices: dict[str, device.DeviceState] = {}
        self.terminals: dict[str, terminal.TerminalState] = {}

    def transaction(self, tx: TransactionLike) -> FeatureRow:
        """Process one payment through card, device and terminal stages."""
        card_state = self.cards.setdefault(tx.card_id, card.CardState())
        card_values, duplicate = card.process(card_state, tx, self.params)
        if tx.device_id is None:
            device_values = list(device.NO_DEVICE_VALUES)
        else:
            device_state = self.devices.setdefault(tx.device_id, device.DeviceState())
            device_values = device.process(device_state, tx, duplicate, self.params)
        terminal_state = self.terminals.setdefault(tx.terminal_id, terminal.TerminalState())
        terminal_values = terminal.process(terminal_state, tx, duplicate, self.params)
        values = event_values(tx) + card_values + device_values + terminal_values
        return FeatureRow(tx.event_id, tx.event_time, tx.card_id, tuple(values), duplicate)

    def label(self, label: LabelLike) -> None:
        """Apply a label to the device and terminal states it concerns."""
        if label.device_id is not None:
            device_state = self.devices.setdefault(label.device_id, device.DeviceState())
            device.add_label(device_state, label)
        terminal_state = self.terminals.setdefault(label.terminal_id, terminal.TerminalState())
        terminal.add_label(terminal_state, label, self.params)


def compute_features(
    events: Iterable[TransactionLike | LabelLike], params: FeatureParams | None = None
) -> list[FeatureRow]:
    """Features of every payment in ``events`` (payments and labels, in arrival order)."""
    pipeline = FeaturePipeline(params)
    rows: list[FeatureRow] = []
    for event in events:
        if is_label(event):
            pipeline.label(event)
        else:
            rows.append(pipeline.transaction(event))  # type: ignore[arg-type]
    return rows
