"""Parameters of the feature logic outside the feature set itself (retention, dedup)."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import FeatureJobSettings
from core.errors import FeatureSpecError

_DEFAULTS = FeatureJobSettings()
"""The defaults live in the settings model (``features`` section), nowhere else."""
DEFAULT_ALLOWED_LATENESS_MS = _DEFAULTS.allowed_lateness_ms
DEFAULT_DEDUP_HORIZON_MS = _DEFAULTS.dedup_horizon_ms
DEFAULT_PROFILE_RETENTION_MS = _DEFAULTS.profile_retention_ms


@dataclass(frozen=True)
class FeatureParams:
    """How long state is kept, in event time, and how duplicates are recognised.

    Windowed history is kept for the longest window plus ``allowed_lateness_ms`` behind the key's
    latest event time, so an event that is late by at most the allowed lateness sees its full
    windows. A key whose latest event is older than ``profile_retention_ms`` is forgotten entirely.
    """

    allowed_lateness_ms: int = DEFAULT_ALLOWED_LATENESS_MS
    dedup_horizon_ms: int = DEFAULT_DEDUP_HORIZON_MS
    profile_retention_ms: int = DEFAULT_PROFILE_RETENTION_MS

    @classmethod
    def from_settings(cls, features: FeatureJobSettings) -> FeatureParams:
        """The parameters of the ``features`` settings section."""
        return cls(
            allowed_lateness_ms=features.allowed_lateness_ms,
            dedup_horizon_ms=features.dedup_horizon_ms,
            profile_retention_ms=features.profile_retention_ms,
        )

    def __post_init__(self) -> None:
        values = (self.allowed_lateness_ms, self.dedup_horizon_ms, self.profile_retention_ms)
        if min(values) < 0:
            raise FeatureSpecError(f"feature params: expected non-negative durations, found {self}")


def is_late(event_time_ms: int, watermark_ms: int, allowed_lateness_ms: int) -> bool:
    """Whether an event is behind the watermark by more than the allowed lateness.

    Late events are still scored (a payment needs an answer) and added to state; they are flagged.

    >>> is_late(1_000, 5_000, 3_000), is_late(2_000, 5_000, 3_000)
    (True, False)
    """
    return event_time_ms < watermark_ms - allowed_lateness_ms


def cleanup_timer(old_clock: int, new_clock: int, retention_ms: int, bucket_ms: int) -> int | None:
    """Event time at which to check a key for eviction, or ``None`` if one is already set.

    Timers are rounded up to ``bucket_ms`` so a key registers about one timer per bucket instead of
    one per event; the check at the timer clears the key only if it saw nothing newer.

    >>> cleanup_timer(0, 5, 10, 100), cleanup_timer(5, 7, 10, 100), cleanup_timer(5, 95, 10, 100)
    (100, None, 200)
    """
    new_bucket = (new_clock + retention_ms) // bucket_ms
    if old_clock and (old_clock + retention_ms) // bucket_ms == new_bucket:
        return None
    return (new_bucket + 1) * bucket_ms
