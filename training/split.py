"""The time split of the evaluation rule: train on earlier days, skip the label delay, test later.

Deterministic by construction: the split is a function of event times and label times only (no
random component), so metrics are never computed on a random split. Cards already known
compromised (a fraud since the training period started whose label was known before the test
period starts) are removed from the test set, as in the Handbook's protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from core.config import TrainingSettings
from core.errors import ConfigError, ModelContractError

MS_PER_DAY = 86_400_000
NO_LABEL_TIME = -1


@dataclass(frozen=True)
class TimeSplit:
    """Half-open windows ``[start, end)`` in epoch ms UTC."""

    train_start_ms: int
    train_end_ms: int
    test_start_ms: int
    test_end_ms: int

    @property
    def delay_ms(self) -> int:
        """The skipped gap between training and test (the label delay)."""
        return self.test_start_ms - self.train_end_ms

    def to_dict(self) -> dict[str, object]:
        """The windows as ISO dates and ms (for the model card)."""
        return {
            "train_start": _iso(self.train_start_ms),
            "train_end": _iso(self.train_end_ms),
            "test_start": _iso(self.test_start_ms),
            "test_end": _iso(self.test_end_ms),
            "label_delay_days": self.delay_ms / MS_PER_DAY,
            "train_start_ms": self.train_start_ms,
            "train_end_ms": self.train_end_ms,
            "test_start_ms": self.test_start_ms,
            "test_end_ms": self.test_end_ms,
        }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_ms(date: str) -> int:
    """Epoch ms of midnight UTC of ``YYYY-MM-DD``.

    >>> day_ms("2018-08-08")
    1533686400000
    """
    try:
        day = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"training.test_start: expected YYYY-MM-DD, found {date!r}") from None
    return int(day.timestamp()) * 1000


def plan(data_start_ms: int, data_end_ms: int, s: TrainingSettings) -> TimeSplit:
    """The split for data covering ``[data_start_ms, data_end_ms)`` under settings ``s``.

    Without ``test_start`` the test period is the last ``test_days`` full UTC days of the data.

    >>> s = TrainingSettings(train_days=7, delay_days=7, test_days=7, test_start="")
    >>> p = plan(0, 30 * MS_PER_DAY, s)
    >>> [v // MS_PER_DAY for v in (p.train_start_ms, p.train_end_ms, p.test_start_ms)]
    [9, 16, 23]
    """
    if min(s.train_days, s.test_days) < 1 or s.delay_days < 0:
        raise ConfigError(
            "training: expected train_days >= 1, test_days >= 1 and delay_days >= 0, found "
            f"{s.train_days}, {s.test_days}, {s.delay_days}"
        )
    if s.test_start:
        test_start = day_ms(s.test_start)
    else:
        test_start = (data_end_ms // MS_PER_DAY - s.test_days) * MS_PER_DAY
    split = TimeSplit(
        train_start_ms=test_start - (s.delay_days + s.train_days) * MS_PER_DAY,
        train_end_ms=test_start - s.delay_days * MS_PER_DAY,
        test_start_ms=test_start,
        test_end_ms=test_start + s.test_days * MS_PER_DAY,
    )
    if split.train_start_ms < data_start_ms or split.test_end_ms > data_end_ms:
        raise ConfigError(
            f"training: the split {split.to_dict()['train_start']} .. "
            f"{split.to_dict()['test_end']} does not fit the data "
            f"{_iso(data_start_ms)} .. {_iso(data_end_ms)}; change training.test_start or the "
            "day counts"
        )
    return split


def known_compromised(frame: pd.DataFrame, since_ms: int, as_of_ms: int) -> set[str]:
    """Cards with a fraud at or after ``since_ms`` whose label was known before ``as_of_ms``.

    As in the Handbook, the look-back starts with the training period: a card defrauded months
    earlier has been reissued or cleared and is scored again.
    """
    label_time = _label_times(frame)
    known = (frame["label"].to_numpy() == 1) & (label_time != NO_LABEL_TIME)
    known &= (label_time < as_of_ms) & (frame["event_time"].to_numpy() >= since_ms)
    return set(frame.loc[known, "card_id"].tolist())


def _label_times(frame: pd.DataFrame) -> np.ndarray:  # type: ignore[type-arg]
    """``label_time`` as int64 with ``NO_LABEL_TIME`` for null (no label had arrived)."""
    times: np.ndarray = (  # type: ignore[type-arg]
        frame["label_time"].astype("Int64").fillna(NO_LABEL_TIME).to_numpy(dtype=np.int64)
    )
    return times


def apply(
    frame: pd.DataFrame, split: TimeSplit, only_known_labels: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) rows of a training-set frame.

    Training labels are those known when the test period starts if ``only_known_labels`` (a
    fraud whose label arrives later is trained on as legitimate, as it would be in production);
    test labels are the eventual ground truth. Test rows of known-compromised cards are dropped.
    """
    t = frame["event_time"].to_numpy()
    train = frame[(t >= split.train_start_ms) & (t < split.train_end_ms)].copy()
    test = frame[(t >= split.test_start_ms) & (t < split.test_end_ms)].copy()
    if only_known_labels:
        lt = _label_times(train)
        known = (lt != NO_LABEL_TIME) & (lt < split.test_start_ms)
        train["label"] = np.where(known, train["label"].to_numpy(), 0)
    compromised = known_compromised(frame, split.train_start_ms, split.test_start_ms)
    test = test[~test["card_id"].isin(compromised)]
    for name, part in (("train", train), ("test", test)):
        if part.empty or part["label"].nunique() < 2:
            raise ModelContractError(
                f"the {name} period of {split.to_dict()} needs both fraud and legitimate rows; "
                f"found {len(part)} rows with {int(part['label'].sum())} frauds"
            )
    return train, test


def day_index(event_time_ms: np.ndarray, start_ms: int) -> np.ndarray:  # type: ignore[type-arg]
    """UTC day number of each event relative to ``start_ms`` (for per-day folds and CP@k)."""
    return (event_time_ms - start_ms) // MS_PER_DAY
