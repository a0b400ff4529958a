"""What the feature logic reads from transactions and labels, plus small pure helpers.

The records themselves are the contracts in ``schemas/`` (msgspec Structs); the logic only needs
these attributes, so it is typed against Protocols and also accepts any object that has them.
"""

from __future__ import annotations

import math
from typing import Protocol

from schemas.feature_set import MS_PER_DAY, MS_PER_HOUR

CARD_PRESENT = "card_present"
FRAUD = "fraud"
EARTH_RADIUS_KM = 6371.0088
NIGHT_LAST_HOUR = 6
EPOCH_WEEKDAY = 3
"""1970-01-01 was a Thursday (Monday = 0)."""
SATURDAY = 5


class TransactionLike(Protocol):
    """The transaction fields the features use."""

    @property
    def event_id(self) -> str: ...
    @property
    def event_time(self) -> int: ...
    @property
    def card_id(self) -> str: ...
    @property
    def terminal_id(self) -> str: ...
    @property
    def mcc(self) -> str: ...
    @property
    def amount(self) -> float: ...
    @property
    def channel(self) -> str: ...
    @property
    def latitude(self) -> float: ...
    @property
    def longitude(self) -> float: ...
    @property
    def device_id(self) -> str | None: ...


class LabelLike(Protocol):
    """The label fields the features use (``event_time`` is when the label became known)."""

    @property
    def event_time(self) -> int: ...
    @property
    def transaction_id(self) -> str: ...
    @property
    def transaction_time(self) -> int: ...
    @property
    def terminal_id(self) -> str: ...
    @property
    def device_id(self) -> str | None: ...
    @property
    def label(self) -> str: ...


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km.

    >>> round(haversine_km(0.0, 0.0, 0.0, 1.0), 3)
    111.195
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def time_features(event_time_ms: int) -> tuple[float, float, float]:
    """(hour of day, is weekend, is night) of an epoch-ms UTC time.

    >>> time_features(2 * 86_400_000 + 5 * 3_600_000)  # Saturday 1970-01-03 05:00 UTC
    (5.0, 1.0, 1.0)
    """
    hour = (event_time_ms // MS_PER_HOUR) % 24
    weekday = (event_time_ms // MS_PER_DAY + EPOCH_WEEKDAY) % 7
    return float(hour), float(weekday >= SATURDAY), float(hour <= NIGHT_LAST_HOUR)
