"""The time split of the evaluation rule: train on earlier days, skip the label delay, test later.

Deterministic by construction: the split is a function of event times and label times only (no
random component), so metrics are never computed on a random split. Cards already known
compromised are removed from the test set **per test day** (``training.known_compromised``):

- ``handbook``: the Handbook's rule (its ``get_train_test_set``): on test day ``D`` a card is
  removed if it had a fraud on a day in ``[train_start, D - delay_days)``, i.e. a fraud of the
  training period or of the part of the delay period whose label (assumed to arrive exactly
  ``delay_days`` later) is known by ``D``. The set grows by one delay day per test day.
- ``label_time`` (default): the same idea with the labels' real arrival times: on test day ``D`` a
  card is removed if it had a fraud since ``train_start`` whose label arrived before ``D`` starts.
- ``fixed``: the project's former rule, one set for the whole test period (frauds since
  ``train_start`` whose label arrived before the test period starts); kept for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from core.config import TrainingSettings
from core.errors import ConfigError, ModelContractError

MS_PER_DAY = 86_400_000
NO_LABEL_TIME = -1
HANDBOOK_RULE, LABEL_TIME_RULE, FIXED_RULE = "handbook", "label_time", "fixed"
KNOWN_COMPROMISED_RULES = (HANDBOOK_RULE, LABEL_TIME_RULE, FIXED_RULE)


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


def known_from_day(frame: pd.DataFrame, split: TimeSplit, rule: str) -> pd.Series:
    """Per card, the first UTC day number (epoch days) from which it counts as known compromised.

    Cards without a qualifying fraud are absent. See the module docstring for the rules.

    >>> f = pd.DataFrame({"card_id": ["a", "b"], "label": [1, 1],
    ...                   "event_time": [10 * MS_PER_DAY + 5, 11 * MS_PER_DAY],
    ...                   "label_time": pd.array([10 * MS_PER_DAY + 9, None], dtype="Int64")})
    >>> s = TimeSplit(10 * MS_PER_DAY, 12 * MS_PER_DAY, 14 * MS_PER_DAY, 16 * MS_PER_DAY)
    >>> known_from_day(f, s, "handbook").to_dict()
    {'a': 13, 'b': 14}
    >>> known_from_day(f, s, "label_time").to_dict()
    {'a': 11}
    """
    if rule not in KNOWN_COMPROMISED_RULES:
        raise ConfigError(
            f"training.known_compromised: expected one of {list(KNOWN_COMPROMISED_RULES)}, "
            f"found {rule!r}"
        )
    t = frame["event_time"].to_numpy()
    fraud = (frame["label"].to_numpy() == 1) & (t >= split.train_start_ms)
    if rule == HANDBOOK_RULE:
        delay_days = split.delay_ms // MS_PER_DAY
        day = t // MS_PER_DAY + delay_days + 1
    else:
        label_time = _label_times(frame)
        fraud &= label_time != NO_LABEL_TIME
        day = label_time // MS_PER_DAY + 1
        if rule == FIXED_RULE:
            fraud &= label_time < split.test_start_ms
            day = np.full(len(frame), np.iinfo(np.int64).min, dtype=np.int64)
    known = pd.DataFrame({"card_id": frame["card_id"].to_numpy()[fraud], "day": day[fraud]})
    result: pd.Series = known.groupby("card_id", sort=True)["day"].min()
    return result


def known_compromised_mask(
    test: pd.DataFrame, frame: pd.DataFrame, split: TimeSplit, rule: str
) -> Any:
    """True for the rows of ``test`` whose card was known compromised on the row's test day."""
    known = known_from_day(frame, split, rule)
    first = test["card_id"].map(known).to_numpy(dtype=np.float64, na_value=np.inf)
    day = test["event_time"].to_numpy() // MS_PER_DAY
    return day >= first


def _label_times(frame: pd.DataFrame) -> np.ndarray:  # type: ignore[type-arg]
    """``label_time`` as int64 with ``NO_LABEL_TIME`` for null (no label had arrived)."""
    times: np.ndarray = (  # type: ignore[type-arg]
        frame["label_time"].astype("Int64").fillna(NO_LABEL_TIME).to_numpy(dtype=np.int64)
    )
    return times


def apply(
    frame: pd.DataFrame,
    split: TimeSplit,
    only_known_labels: bool,
    known_rule: str = LABEL_TIME_RULE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) rows of a training-set frame.

    Training labels are those known when the test period starts if ``only_known_labels`` (a
    fraud whose label arrives later is trained on as legitimate, as it would be in production);
    test labels are the eventual ground truth. Test rows of cards known compromised on the row's
    day (``known_rule``, see the module docstring) are dropped.
    """
    t = frame["event_time"].to_numpy()
    train = frame[(t >= split.train_start_ms) & (t < split.train_end_ms)].copy()
    test = frame[(t >= split.test_start_ms) & (t < split.test_end_ms)].copy()
    if only_known_labels:
        lt = _label_times(train)
        known = (lt != NO_LABEL_TIME) & (lt < split.test_start_ms)
        train["label"] = np.where(known, train["label"].to_numpy(), 0)
    test = test[~known_compromised_mask(test, frame, split, known_rule)]
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
