"""Hand-built payments and labels for the feature tests (fields as in the contracts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.feature_set import MS_PER_DAY, MS_PER_HOUR

T0 = int(datetime(2026, 11, 2, 12, 0, tzinfo=UTC).timestamp() * 1000)
"""Monday 2026-11-02 12:00 UTC."""
H = MS_PER_HOUR
D = MS_PER_DAY
MIN = 60_000


@dataclass(frozen=True)
class Tx:
    """A payment with the transaction contract's feature fields."""

    event_id: str
    event_time: int
    card_id: str = "c1"
    amount: float = 10.0
    terminal_id: str = "t1"
    mcc: str = "5411"
    channel: str = "card_present"
    latitude: float = 0.0
    longitude: float = 0.0
    device_id: str | None = None


@dataclass(frozen=True)
class Label:
    """A label with the label contract's feature fields."""

    event_time: int
    transaction_id: str
    transaction_time: int
    terminal_id: str = "t1"
    device_id: str | None = None
    card_id: str = "c1"
    label: str = "fraud"


def online(event_id: str, event_time: int, device: str, **kw: object) -> Tx:
    """An online payment made with ``device``."""
    return Tx(event_id, event_time, channel="online", device_id=device, **kw)  # type: ignore[arg-type]
