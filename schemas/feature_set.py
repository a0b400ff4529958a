"""The feature set contract: every feature the project computes, defined once, as data.

Training, the streaming job, the backfill and the model cards all read this module, so a feature's
name, type, key, aggregation, window and meaning cannot drift between them. The computation in
``features/`` reads each feature's aggregation and window from here (there are no window constants
in the code) and writes its value by name into :data:`PaymentFeatureValues`, a struct this module
derives from the spec, so no value depends on a position in a list. Output names are derived from
the spec (``amount_sum_by_card_1h``), the spec is validated when it is defined (a bad definition
raises :class:`~core.errors.FeatureSpecError` at import time), and :meth:`FeatureSet.spec_hash` is
a stable digest that models stamp and check at load.

Run ``python -m schemas.feature_set`` (``make golden``) to (re)write the JSON rendering in
``schemas/json/``; renderings of earlier versions stay there as the record of what models trained
on them computed.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import msgspec

from core.errors import FeatureSpecError

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 24 * MS_PER_HOUR
LABEL_DELAY_MS = 7 * MS_PER_DAY
"""Delay before a terminal's labels are assumed known (the Handbook's 7-day delay)."""
MISSING = -1.0
"""Value of a feature that is undefined for an event (e.g. no previous payment)."""
JSON_DIR = Path(__file__).parent / "json"
_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class Key(enum.StrEnum):
    """The entity a feature is computed per; ``event`` means from the event alone."""

    EVENT = "event"
    CARD = "card"
    DEVICE = "device"
    TERMINAL = "terminal"


class Dtype(enum.StrEnum):
    """Value type of a feature; every value is carried as a float64 in the vector."""

    FLOAT = "float64"
    INT = "int64"
    BOOL = "bool"


class Aggregation(enum.StrEnum):
    """What a keyed feature computes from its key's events; the value is the feature's ``base``.

    The stages in ``features/`` dispatch on it: adding a feature of an existing aggregation (say
    another window) is a change to the spec alone. Event features (``Key.EVENT``) are read off the
    payment itself; the payment pipeline knows the ``EVENT_*`` ones, other feature sets (a
    training table's columns) may name any column.
    """

    EVENT_AMOUNT = "amount"
    EVENT_HOUR_OF_DAY = "hour_of_day"
    EVENT_IS_WEEKEND = "is_weekend"
    EVENT_IS_NIGHT = "is_night"
    TX_COUNT = "tx_count"
    AMOUNT_SUM = "amount_sum"
    AMOUNT_MEAN = "amount_mean"
    AMOUNT_RATIO = "amount_ratio"
    SECONDS_SINCE_PREV = "seconds_since_prev"
    KM_FROM_PREV_CP = "km_from_prev_cp"
    KMH_FROM_PREV_CP = "kmh_from_prev_cp"
    KM_FROM_USUAL = "km_from_usual"
    IS_NEW_MCC = "is_new_mcc"
    IS_NEW_DEVICE = "is_new_device"
    DISTINCT_CARDS = "distinct_cards"
    FRAUD_SEEN = "fraud_seen"
    FRAUD_RATE = "fraud_rate"


@dataclass(frozen=True)
class AggregationRule:
    """Where an aggregation is defined: the keys it applies to and whether it needs a window."""

    keys: frozenset[Key]
    windowed: bool


_CARD, _DEVICE, _TERMINAL = (
    frozenset({Key.CARD}),
    frozenset({Key.DEVICE}),
    frozenset({Key.TERMINAL}),
)
_EVENT = frozenset({Key.EVENT})
AGGREGATION_RULES: dict[Aggregation, AggregationRule] = {
    Aggregation.EVENT_AMOUNT: AggregationRule(_EVENT, windowed=False),
    Aggregation.EVENT_HOUR_OF_DAY: AggregationRule(_EVENT, windowed=False),
    Aggregation.EVENT_IS_WEEKEND: AggregationRule(_EVENT, windowed=False),
    Aggregation.EVENT_IS_NIGHT: AggregationRule(_EVENT, windowed=False),
    Aggregation.TX_COUNT: AggregationRule(_CARD | _TERMINAL, windowed=True),
    Aggregation.AMOUNT_SUM: AggregationRule(_CARD, windowed=True),
    Aggregation.AMOUNT_MEAN: AggregationRule(_CARD, windowed=True),
    Aggregation.AMOUNT_RATIO: AggregationRule(_CARD, windowed=True),
    Aggregation.SECONDS_SINCE_PREV: AggregationRule(_CARD, windowed=False),
    Aggregation.KM_FROM_PREV_CP: AggregationRule(_CARD, windowed=False),
    Aggregation.KMH_FROM_PREV_CP: AggregationRule(_CARD, windowed=False),
    Aggregation.KM_FROM_USUAL: AggregationRule(_CARD, windowed=True),
    Aggregation.IS_NEW_MCC: AggregationRule(_CARD, windowed=False),
    Aggregation.IS_NEW_DEVICE: AggregationRule(_CARD, windowed=False),
    Aggregation.DISTINCT_CARDS: AggregationRule(_DEVICE, windowed=True),
    Aggregation.FRAUD_SEEN: AggregationRule(_DEVICE, windowed=False),
    Aggregation.FRAUD_RATE: AggregationRule(_TERMINAL, windowed=True),
}
"""Which key and window each aggregation takes (checked when a feature is defined)."""
DELAYED_KEYS = frozenset({Key.TERMINAL})
"""Keys whose windows may end before the event (``delay_ms``); card and device windows include
the current payment, so they cannot be delayed."""
_AGGREGATIONS = {a.value: a for a in Aggregation}


def _duration_label(ms: int) -> str:
    """A compact label for a duration: ``3600000 -> '1h'``, ``86400000 -> '1d'``.

    >>> _duration_label(7 * MS_PER_DAY)
    '7d'
    """
    if ms % MS_PER_DAY == 0:
        return f"{ms // MS_PER_DAY}d"
    if ms % MS_PER_HOUR == 0:
        return f"{ms // MS_PER_HOUR}h"
    return f"{ms}ms"


@dataclass(frozen=True)
class Window:
    """An event-time window ``(t - delay - length, t - delay]`` relative to the event time t."""

    length_ms: int
    delay_ms: int = 0

    def __post_init__(self) -> None:
        if self.length_ms <= 0 or self.delay_ms < 0:
            raise FeatureSpecError(
                f"window: expected length_ms > 0 and delay_ms >= 0, "
                f"found length_ms={self.length_ms}, delay_ms={self.delay_ms}"
            )

    @property
    def label(self) -> str:
        """Suffix used in output names: ``1h``, ``30d``, ``7d_delay7d``."""
        text = _duration_label(self.length_ms)
        return f"{text}_delay{_duration_label(self.delay_ms)}" if self.delay_ms else text


@dataclass(frozen=True)
class Feature:
    """One feature: ``base`` names the quantity (for keyed features an :class:`Aggregation`),
    the output name adds key and window."""

    base: str
    dtype: Dtype
    key: Key
    meaning: str
    window: Window | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", str(self.base))  # an Aggregation is stored as its value
        if not _NAME_PATTERN.match(self.base):
            raise FeatureSpecError(f"feature base: expected snake_case, found {self.base!r}")
        if not self.meaning.strip() or "\n" in self.meaning:
            raise FeatureSpecError(f"feature {self.base}: expected a one-line meaning")
        if self.key is Key.EVENT and self.window is not None:
            raise FeatureSpecError(f"feature {self.base}: an event feature cannot have a window")
        aggregation = self.aggregation
        if aggregation is None:
            if self.key is not Key.EVENT:
                known = sorted(a.value for a, r in AGGREGATION_RULES.items() if self.key in r.keys)
                raise FeatureSpecError(
                    f"feature {self.base} by {self.key.value}: expected an aggregation, one of "
                    f"{known}"
                )
            return
        rule = AGGREGATION_RULES[aggregation]
        if self.key not in rule.keys:
            raise FeatureSpecError(
                f"feature {self.name}: aggregation {aggregation.value} is defined by "
                f"{sorted(k.value for k in rule.keys)}, found key {self.key.value}"
            )
        if rule.windowed != (self.window is not None):
            raise FeatureSpecError(
                f"feature {self.name}: aggregation {aggregation.value} "
                f"{'needs' if rule.windowed else 'takes no'} window, found {self.window}"
            )
        if self.window is not None and self.window.delay_ms and self.key not in DELAYED_KEYS:
            raise FeatureSpecError(
                f"feature {self.name}: a {self.key.value} window includes the current payment "
                f"and cannot be delayed, found delay_ms={self.window.delay_ms}"
            )

    @property
    def aggregation(self) -> Aggregation | None:
        """What the feature computes; ``None`` for an event column no stage computes (a training
        table's column may be named like a keyed aggregation: it is still just a column)."""
        found = _AGGREGATIONS.get(self.base)
        if (
            found is not None
            and self.key is Key.EVENT
            and Key.EVENT not in AGGREGATION_RULES[found].keys
        ):
            return None
        return found

    @property
    def name(self) -> str:
        """Output name derived from the spec, e.g. ``amount_sum_by_card_1h``."""
        if self.key is Key.EVENT:
            return self.base
        suffix = f"_{self.window.label}" if self.window else ""
        return f"{self.base}_by_{self.key.value}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of this feature (stable key order)."""
        window = (
            None
            if self.window is None
            else {"length_ms": self.window.length_ms, "delay_ms": self.window.delay_ms}
        )
        return {
            "name": self.name,
            "base": self.base,
            "dtype": self.dtype.value,
            "key": self.key.value,
            "window": window,
            "meaning": self.meaning,
        }


@dataclass(frozen=True)
class FeatureSet:
    """A named, versioned, ordered list of features; the order is the model's input order."""

    name: str
    version: int
    features: tuple[Feature, ...]
    missing: float = MISSING
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not _NAME_PATTERN.match(self.name) or self.version < 1:
            raise FeatureSpecError(
                f"feature set: expected a snake_case name and version >= 1, "
                f"found {self.name!r} v{self.version}"
            )
        if not self.features:
            raise FeatureSpecError(f"feature set {self.name}: expected at least one feature")
        names = tuple(f.name for f in self.features)
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise FeatureSpecError(
                f"feature set {self.name}: expected unique output names, "
                f"found duplicates {duplicated}"
            )
        object.__setattr__(self, "names", names)

    def features_of(self, key: Key) -> tuple[Feature, ...]:
        """The features computed per ``key``, in feature-set order."""
        return tuple(f for f in self.features if f.key is key)

    def values_type(self, name: str, module: str) -> type[FeatureValues]:
        """A :class:`FeatureValues` struct with one float field per feature (named as the
        feature, default :attr:`missing`, in feature-set order). ``module.name`` must be where the
        caller binds it, so records carrying it pickle between Flink operators."""
        fields = [(n, float, self.missing) for n in self.names]
        struct = msgspec.defstruct(name, fields, bases=(FeatureValues,), module=module)
        return cast(type[FeatureValues], struct)  # defstruct is typed as returning type[Struct]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the feature set, including its hash."""
        body = self._body()
        return {**body, "spec_hash": self.spec_hash()}

    def _body(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "missing": self.missing,
            "features": [f.to_dict() for f in self.features],
        }

    def spec_hash(self) -> str:
        """SHA-256 of the canonical JSON spec: changes whenever any definition changes."""
        canonical = json.dumps(self._body(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def to_json(self) -> str:
        """The rendering stored in ``schemas/json/`` (and checked by a golden test)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @property
    def json_path(self) -> Path:
        """Where this version's JSON rendering lives."""
        return JSON_DIR / f"feature_set.{self.name}.v{self.version}.json"


class FeatureValues(msgspec.Struct, array_like=True, gc=False):
    """Base of the value structs of :meth:`FeatureSet.values_type`: the stages set each value by
    its feature's name (``setattr``; an unknown name raises ``AttributeError``)."""

    def vector(self) -> tuple[float, ...]:
        """The values in feature-set order (the model's input order)."""
        return msgspec.structs.astuple(self)

    def as_dict(self) -> dict[str, float]:
        """Feature name -> value, in feature-set order."""
        return msgspec.structs.asdict(self)


A = Aggregation


def _card_windowed() -> list[Feature]:
    """Per-card count, sum and mean over 1 h, 1 d (24 h), 7 d and 30 d, current tx included."""
    out: list[Feature] = []
    for length in (MS_PER_HOUR, MS_PER_DAY, 7 * MS_PER_DAY, 30 * MS_PER_DAY):
        w = Window(length)
        out += [
            Feature(A.TX_COUNT, Dtype.INT, Key.CARD, "payments of the card in the window", w),
            Feature(A.AMOUNT_SUM, Dtype.FLOAT, Key.CARD, "sum of the card's amounts in window", w),
            Feature(
                A.AMOUNT_MEAN, Dtype.FLOAT, Key.CARD, "mean of the card's amounts in the window", w
            ),
        ]
    return out


def _terminal_delayed() -> list[Feature]:
    """The Handbook's terminal risk: count and fraud rate over (t - 7d - n, t - 7d]."""
    out: list[Feature] = []
    for days in (1, 7, 30):
        w = Window(days * MS_PER_DAY, LABEL_DELAY_MS)
        out += [
            Feature(A.TX_COUNT, Dtype.INT, Key.TERMINAL, "payments at the terminal in window", w),
            Feature(
                A.FRAUD_RATE,
                Dtype.FLOAT,
                Key.TERMINAL,
                "share of the window's payments labelled fraud before t",
                w,
            ),
        ]
    return out


_D30 = Window(30 * MS_PER_DAY)

PAYMENT_FEATURES = FeatureSet(
    name="payment_features",
    version=2,
    features=(
        Feature(A.EVENT_AMOUNT, Dtype.FLOAT, Key.EVENT, "amount of the payment"),
        Feature(A.EVENT_HOUR_OF_DAY, Dtype.INT, Key.EVENT, "UTC hour of the event time, 0-23"),
        Feature(
            A.EVENT_IS_WEEKEND, Dtype.BOOL, Key.EVENT, "1 if the event time is a Saturday or Sunday"
        ),
        Feature(
            A.EVENT_IS_NIGHT, Dtype.BOOL, Key.EVENT, "1 if the UTC hour is <= 6 (Handbook night)"
        ),
        *_card_windowed(),
        Feature(
            A.AMOUNT_SUM,
            Dtype.FLOAT,
            Key.CARD,
            "sum of the card's amounts in window",
            Window(6 * MS_PER_HOUR),
        ),
        Feature(A.AMOUNT_RATIO, Dtype.FLOAT, Key.CARD, "amount / card mean amount in window", _D30),
        Feature(A.SECONDS_SINCE_PREV, Dtype.FLOAT, Key.CARD, "seconds since the previous payment"),
        Feature(
            A.KM_FROM_PREV_CP, Dtype.FLOAT, Key.CARD, "km from the previous card-present payment"
        ),
        Feature(
            A.KMH_FROM_PREV_CP,
            Dtype.FLOAT,
            Key.CARD,
            "implied speed km/h from the previous card-present payment",
        ),
        Feature(
            A.KM_FROM_USUAL,
            Dtype.FLOAT,
            Key.CARD,
            "km from the mean location of the card-present payments in window",
            _D30,
        ),
        Feature(A.IS_NEW_MCC, Dtype.BOOL, Key.CARD, "1 if the card never paid in this MCC before"),
        Feature(A.IS_NEW_DEVICE, Dtype.BOOL, Key.CARD, "1 if the card never used this device"),
        Feature(
            A.DISTINCT_CARDS,
            Dtype.INT,
            Key.DEVICE,
            "distinct cards that used the device in window, current included",
            Window(MS_PER_DAY),
        ),
        Feature(
            A.FRAUD_SEEN,
            Dtype.BOOL,
            Key.DEVICE,
            "1 if a payment on the device was labelled fraud before t",
        ),
        *_terminal_delayed(),
    ),
)
"""The feature set the scoring models consume (version 2: v1 plus ``amount_sum_by_card_6h``)."""

PaymentFeatureValues = PAYMENT_FEATURES.values_type("PaymentFeatureValues", __name__)
"""The values of one payment's :data:`PAYMENT_FEATURES`, set by name by the stages."""


def write_json(feature_set: FeatureSet = PAYMENT_FEATURES) -> Path:
    """Write the JSON rendering of ``feature_set`` and return its path."""
    feature_set.json_path.parent.mkdir(parents=True, exist_ok=True)
    feature_set.json_path.write_text(feature_set.to_json(), encoding="utf-8")
    return feature_set.json_path


if __name__ == "__main__":
    sys.stdout.write(f"wrote {write_json()}\n")
