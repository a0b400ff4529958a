"""Metrics are computed on the time split, never on a random split."""

from __future__ import annotations

import inspect
import random

import numpy as np
import pandas as pd
import pytest

from core.config import TrainingSettings, replace
from core.errors import ConfigError
from training import split, train
from training.data import TrainingData
from training.train import TrainingRun

DAY = split.MS_PER_DAY


def test_every_test_event_is_after_train_end_plus_delay(
    tiny_data: TrainingData, tiny_run: TrainingRun
) -> None:
    run = tiny_run
    _, test = split.apply(tiny_data.frame, run.split, only_known_labels=True)
    assert run.split.delay_ms == 3 * DAY
    assert test["event_time"].min() >= run.split.train_end_ms + run.split.delay_ms
    assert run.rows["test"] == len(test)


def test_split_has_no_random_component(
    monkeypatch: pytest.MonkeyPatch, tiny_data: TrainingData, tiny_run: TrainingRun
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the split must not draw random numbers")

    monkeypatch.setattr(np.random, "default_rng", refuse)
    monkeypatch.setattr(np.random, "permutation", refuse)
    monkeypatch.setattr(random, "random", refuse)
    frame = tiny_data.frame
    first = split.apply(frame, tiny_run.split, only_known_labels=True)
    second = split.apply(frame, tiny_run.split, only_known_labels=True)
    for a, b in zip(first, second, strict=True):
        pd.testing.assert_frame_equal(a, b)
    source = inspect.getsource(split) + inspect.getsource(train)
    assert "train_test_split" not in source and "shuffle" not in source


def _frame() -> pd.DataFrame:
    """Card a: fraud on day 1 known on day 2; card b: fraud on day 9 known on day 20."""
    return pd.DataFrame(
        {
            "event_id": ["1", "2", "3", "4", "5", "6"],
            "event_time": [1 * DAY, 2 * DAY, 9 * DAY, 12 * DAY, 13 * DAY, 13 * DAY],
            "card_id": ["a", "b", "b", "a", "c", "d"],
            "label": [1, 0, 1, 0, 1, 0],
            "label_time": pd.array([2 * DAY, None, 20 * DAY, None, 14 * DAY, None], dtype="Int64"),
        }
    )


def test_known_compromised_cards_leave_the_test_set_and_late_labels_the_train_set() -> None:
    settings = TrainingSettings(train_days=10, delay_days=1, test_days=3, test_start="")
    plan = split.plan(0, 14 * DAY, settings)
    assert (plan.train_start_ms, plan.train_end_ms, plan.test_start_ms) == (0, 10 * DAY, 11 * DAY)
    trained, test = split.apply(_frame(), plan, only_known_labels=True)
    assert test["event_id"].tolist() == ["5", "6"]  # card a was known compromised before day 11
    assert trained["label"].tolist() == [1, 0, 0]  # b's fraud label arrives after test start
    trained_all, _ = split.apply(_frame(), plan, only_known_labels=False)
    assert trained_all["label"].tolist() == [1, 0, 1]


def test_split_outside_the_data_is_refused() -> None:
    settings = TrainingSettings(train_days=20, delay_days=7, test_days=7, test_start="")
    with pytest.raises(ConfigError, match="does not fit the data"):
        split.plan(0, 14 * DAY, settings)
    with pytest.raises(ConfigError, match=r"training\.test_start: expected a date YYYY-MM-DD"):
        replace(TrainingSettings(), test_start="08/08/2018")
