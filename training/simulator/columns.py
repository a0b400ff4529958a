"""Columnar records of a simulation: numpy arrays, so generation and ordering stay vectorised.

Entities (cards, merchants, terminals, devices) are integer indexes here; they become the string
ids of the event contracts only when encoded (:mod:`training.simulator.encode`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Idx = npt.NDArray[np.intp]

NO_DEVICE = -1
MS_PER_S = 1_000
MS_PER_MIN = 60 * MS_PER_S
MS_PER_HOUR = 60 * MS_PER_MIN
MS_PER_DAY = 24 * MS_PER_HOUR
S_PER_DAY = 86_400

SCENARIOS: tuple[str, ...] = (
    "none",
    "handbook_amount",
    "handbook_terminal",
    "handbook_customer",
    "card_testing",
    "impossible_travel",
    "account_takeover",
    "fraud_ring",
    "compromised_merchant",
    "amount_spike",
)
SCENARIO_CODE = {name: code for code, name in enumerate(SCENARIOS)}


class _Columns:
    """Shared take/concat over every array field of a columnar dataclass."""

    def __len__(self) -> int:
        first: npt.NDArray[Any] = getattr(self, dataclasses.fields(self)[0].name)  # type: ignore[arg-type]
        return len(first)

    def take(self, index: npt.NDArray[Any]) -> Self:
        """Rows at ``index`` (integer positions or a boolean mask)."""
        return dataclasses.replace(
            self,  # type: ignore[type-var]
            **{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)},  # type: ignore[arg-type]
        )

    @classmethod
    def concat(cls, parts: list[Self]) -> Self:
        """Rows of all ``parts`` one after the other."""
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        return cls(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})


@dataclass(frozen=True)
class Transactions(_Columns):
    """Payment transactions, one row each; ``fraud``/``scenario`` are the simulated truth."""

    event_time: I64
    card: I64
    customer: I64
    merchant: I64
    terminal: I64
    mcc: I64
    amount: F64
    online: Bools
    latitude: F64
    longitude: F64
    device: I64
    country: I64
    currency: I64
    fraud: Bools
    scenario: I64

    def sorted_by_time(self) -> Transactions:
        """Rows in event-time order (stable, so equal times keep generation order)."""
        return self.take(np.argsort(self.event_time, kind="stable"))


@dataclass(frozen=True)
class Labels(_Columns):
    """Label events; ``transaction`` is the row of the labelled transaction."""

    transaction: I64
    event_time: I64
    fraud: Bools
    label_type: I64


LABEL_TYPES: tuple[str, ...] = ("chargeback", "fraud_report", "confirmed_legitimate")
LABEL_TYPE_CODE = {name: code for code, name in enumerate(LABEL_TYPES)}


@dataclass(frozen=True)
class Delivery(_Columns):
    """How transactions reach the consumer, in arrival order.

    ``source`` is the transaction row delivered; ``kind`` says whether the copy is on time,
    out of order, late, a duplicate re-send or a malformed record (see ``DELIVERY_KINDS``).
    ``malformed_kind``/``variant`` pick the corruption of malformed records (-1 otherwise).
    """

    source: I64
    arrival_time: I64
    kind: I64
    malformed_kind: I64
    variant: I64


DELIVERY_KINDS: tuple[str, ...] = ("on_time", "out_of_order", "late", "duplicate", "malformed")
DELIVERY_CODE = {name: code for code, name in enumerate(DELIVERY_KINDS)}
MALFORMED_KINDS: tuple[str, ...] = ("bad_json", "missing_field", "wrong_type", "out_of_range")


@dataclass(frozen=True)
class Entities:
    """String ids of the entity indexes used in :class:`Transactions`."""

    cards: npt.NDArray[np.object_]
    customers: npt.NDArray[np.object_]
    merchants: npt.NDArray[np.object_]
    terminals: npt.NDArray[np.object_]
    devices: npt.NDArray[np.object_]  # last entry is None, so index NO_DEVICE maps to null
    mccs: npt.NDArray[np.object_]
    countries: npt.NDArray[np.object_]
    currencies: npt.NDArray[np.object_]


def id_table(prefix: str, count: int, width: int) -> npt.NDArray[np.object_]:
    """``[prefix-000..., ...]`` as an object array, indexable by numpy integer arrays."""
    return np.array([f"{prefix}-{i:0{width}d}" for i in range(count)], dtype=object)


def device_table(count: int) -> npt.NDArray[np.object_]:
    """Device ids plus a trailing ``None`` so that ``NO_DEVICE`` (-1) encodes as null."""
    return np.array([*(f"dev-{i:08d}" for i in range(count)), None], dtype=object)


def mcc_table() -> npt.NDArray[np.object_]:
    """Every 4-digit MCC string, indexed by its integer value."""
    return np.array([f"{i:04d}" for i in range(10_000)], dtype=object)
