"""The Handbook protocol's metric functions on small hand-made cases.

Card Precision@k removes the fraudulent cards found on earlier test days (the Handbook's default);
the known-compromised cards are removed per test day with the Handbook's rule (a fraud on a day in
``[train_start, D - delay)``), not as one fixed set.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from training import evaluate, split

DAY = split.MS_PER_DAY


def _cards(
    rows: list[tuple[int, str, int, float]],
) -> tuple[pd.DataFrame, npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(frame, scores, day) from (day, card, label, score) rows."""
    frame = pd.DataFrame({"card_id": [r[1] for r in rows], "label": [r[2] for r in rows]})
    scores = np.array([r[3] for r in rows], dtype=np.float64)
    days = np.array([r[0] for r in rows], dtype=np.int64)
    return frame, scores, days


def test_a_card_detected_on_day_1_does_not_count_on_day_2() -> None:
    # card a is fraudulent on both days and the top-scored card both days
    frame, scores, days = _cards(
        [
            (1, "a", 1, 0.9),
            (1, "b", 0, 0.2),
            (2, "a", 1, 0.95),
            (2, "b", 0, 0.3),
            (2, "c", 0, 0.1),
        ]
    )
    per_day = evaluate.card_precision_per_day(frame, scores, days, k=1)
    assert per_day == [1.0, 0.0]  # day 2: a is gone, b (legit) is now the top card
    assert evaluate.card_precision_at_k(frame, scores, days, k=1) == 0.5
    without = evaluate.card_precision_per_day(frame, scores, days, k=1, remove_detected=False)
    assert without == [1.0, 1.0]  # the former method counts a again: inflated


def test_only_detected_fraudulent_cards_are_removed() -> None:
    # day 1: b (legit) is in the top 1 -> a false positive, not removed; a is missed (not in top 1)
    frame, scores, days = _cards(
        [
            (1, "a", 1, 0.5),
            (1, "b", 0, 0.9),
            (2, "a", 1, 0.8),
            (2, "b", 0, 0.9),
        ]
    )
    assert evaluate.card_precision_per_day(frame, scores, days, k=1) == [0.0, 0.0]
    assert evaluate.card_precision_per_day(frame, scores, days, k=2) == [0.5, 0.0]
    # with k=2, a is detected on day 1, so on day 2 only b remains: 0 hits out of k=2


def test_card_score_is_its_daily_max_and_fraud_if_any_payment_is() -> None:
    frame, scores, days = _cards(
        [
            (0, "a", 0, 0.1),
            (0, "a", 1, 0.2),  # a: max 0.9, fraudulent that day
            (0, "a", 0, 0.9),
            (0, "b", 0, 0.5),
        ]
    )
    assert evaluate.card_precision_per_day(frame, scores, days, k=1) == [1.0]


def test_precision_divides_by_k_even_when_fewer_cards() -> None:
    frame, scores, days = _cards([(0, "a", 1, 0.9), (0, "b", 1, 0.8)])
    assert evaluate.card_precision_at_k(frame, scores, days, k=100) == 0.02


def test_ties_are_broken_by_card_id() -> None:
    frame, scores, days = _cards([(0, "b", 1, 0.5), (0, "a", 0, 0.5)])
    assert evaluate.card_precision_per_day(frame, scores, days, k=1) == [0.0]


def _history() -> pd.DataFrame:  # rows: (card, day, label, label day)
    """Train days 0-6, delay days 7-13, test days 14-20 (like the Handbook's 7/7/7)."""
    rows = [
        ("t", 3, 1, 3),  # card t: fraud on a training day, label the same day
        ("d1", 7, 1, 30),  # card d1: fraud on the first delay day, label arrives late (day 30)
        ("d5", 11, 1, 12),  # card d5: fraud on delay day 11, label on day 12
        ("q", 14, 1, 14),  # card q: fraud on test day 14, reported within the day
        ("x", 2, 0, None),  # card x: legitimate throughout
    ]
    cards = ("t", "d1", "d5", "q", "x")
    test_rows = [(card, day, 0, None) for card in cards for day in range(14, 21)]
    records = [*rows, *test_rows]
    return pd.DataFrame(
        {
            "event_id": [str(i) for i in range(len(records))],
            "event_time": [r[1] * DAY + 3_600_000 for r in records],
            "card_id": [r[0] for r in records],
            "label": [r[2] for r in records],
            "label_time": pd.array(
                [None if r[3] is None else r[3] * DAY + 7_200_000 for r in records], dtype="Int64"
            ),
        }
    )


def _kept_days(rule: str) -> dict[str, list[int]]:
    plan = split.TimeSplit(0, 7 * DAY, 14 * DAY, 21 * DAY)
    frame = _history()
    _, test = split.apply(frame, plan, only_known_labels=False, known_rule=rule)
    kept = test.assign(day=test["event_time"] // DAY).groupby("card_id")["day"].apply(list)
    return {card: sorted(set(days)) for card, days in kept.items()}


def test_handbook_rule_grows_the_known_set_by_one_delay_day_per_test_day() -> None:
    kept = _kept_days(split.HANDBOOK_RULE)
    assert "t" not in kept  # training fraud: known from the first test day
    assert kept["d1"] == [14]  # delay day 7 counts from test day 14 + 1 = 15 on
    assert kept["d5"] == [14, 15, 16, 17, 18]  # delay day 11 counts from day 19 on
    assert kept["q"] == list(range(14, 21))  # a test-period fraud is never "known" in the week
    assert kept["x"] == list(range(14, 21))


def test_label_time_rule_uses_the_real_label_arrival_per_day() -> None:
    kept = _kept_days(split.LABEL_TIME_RULE)
    assert "t" not in kept
    assert kept["d1"] == list(range(14, 21))  # its label arrives after the test week
    assert "d5" not in kept  # labelled on day 12, before the test week
    assert kept["q"] == [14]  # reported on day 14: removed from day 15 on


def test_fixed_rule_is_one_set_as_of_the_test_start() -> None:
    kept = _kept_days(split.FIXED_RULE)
    assert "t" not in kept and "d5" not in kept
    assert kept["d1"] == list(range(14, 21)) and kept["q"] == list(range(14, 21))
