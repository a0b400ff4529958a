"""The plain-Python driver: features of a whole event list in arrival order.

This is the reference the stream is compared to, and what the backfill and the training-set
builder import. It calls exactly the per-stage entry points the Flink operators call
(:mod:`features.stages`: card -> device -> terminal), with one state object per stage key held in
dicts instead of Flink state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeGuard

from features import card, device, stages, terminal
from features.events import LabelLike, TransactionLike
from features.params import FeatureParams
from schemas.feature_set import PAYMENT_FEATURES, FeatureSet


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

    def _device(self, device_id: str) -> device.DeviceState:
        return self.devices.setdefault(device_id, device.DeviceState())

    def transaction(self, tx: TransactionLike) -> FeatureRow:
        """Process one payment through the card, device and terminal stages."""
        card_state = self.cards.setdefault(stages.card_key(tx), card.CardState())
        values, duplicate = stages.card_stage(card_state, tx, self.params)
        stages.device_stage(tx, duplicate, values, self.params, self._device)
        terminal_state = self.terminals.setdefault(
            stages.terminal_key(tx), terminal.TerminalState()
        )
        stages.terminal_stage(terminal_state, tx, duplicate, values, self.params)
        return FeatureRow(tx.event_id, tx.event_time, tx.card_id, values.vector(), duplicate)

    def label(self, label: LabelLike) -> None:
        """Apply a label to the device and terminal states it concerns."""
        device_id = stages.label_device_key(label)
        if device_id is not None:
            device.add_label(self._device(device_id), label)
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
