"""The evaluation report: ranking, Card Precision@k, decision thresholds and calibration.

Metrics are computed on the time split's test set only (see :mod:`training.split`). Card
Precision@k follows the Handbook (``card_precision_top_k`` of its shared functions, chapter 4.2):
per test day, each card's score is its highest score that day and the card is fraudulent if any of
its payments that day is; precision among the day's k highest-scored cards is averaged over the
test days. **A fraudulent card found in an earlier day's top k is removed from the later days**
(the Handbook's default, ``remove_detected_compromised_cards=True``): a compromised card stays
fraudulent for days and would otherwise count again every day. ``cp_at_100`` is that metric;
``cp_at_100_no_removal`` is the project's former variant without the removal, kept for comparison.
Ties in score are broken by card id (ascending), so the metric is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from scoring.thresholds import Thresholds, choose_thresholds

__all__ = [
    "Thresholds",
    "calibration",
    "card_precision_at_k",
    "card_precision_per_day",
    "choose_thresholds",
    "evaluate",
]

CP_K = 100
RELIABILITY_BINS = 10
F64 = npt.NDArray[np.float64]


def card_precision_per_day(
    frame: pd.DataFrame,
    scores: F64,
    day: npt.NDArray[np.int64],
    k: int = CP_K,
    remove_detected: bool = True,
) -> list[float]:
    """Card Precision@k of each test day, in day order (see the module docstring).

    ``frame`` has ``card_id`` and ``label``; ``day`` is each row's test-day number.

    >>> f = pd.DataFrame({"card_id": ["a", "b", "a", "b"], "label": [1, 0, 1, 0]})
    >>> s = np.array([0.9, 0.1, 0.9, 0.8])
    >>> card_precision_per_day(f, s, np.array([0, 0, 1, 1]), k=1)
    [1.0, 0.0]
    >>> card_precision_per_day(f, s, np.array([0, 0, 1, 1]), k=1, remove_detected=False)
    [1.0, 1.0]
    """
    cards = pd.DataFrame(
        {
            "day": np.asarray(day),
            "card": frame["card_id"].to_numpy(),
            "y": frame["label"].to_numpy(),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )
    per_card = cards.groupby(["day", "card"], sort=True).agg(score=("score", "max"), y=("y", "max"))
    detected: set[Any] = set()
    precisions = []
    for _, group in per_card.groupby(level="day", sort=True):
        day_cards = group.reset_index()
        if remove_detected and detected:
            day_cards = day_cards[~day_cards["card"].isin(detected)]
        top = day_cards.sort_values(["score", "card"], ascending=[False, True], kind="stable").head(
            k
        )
        hits = top.loc[top["y"] == 1, "card"]
        precisions.append(float(len(hits)) / k)
        if remove_detected:
            detected.update(hits.tolist())
    return precisions


def card_precision_at_k(
    frame: pd.DataFrame,
    scores: F64,
    day: npt.NDArray[np.int64],
    k: int = CP_K,
    remove_detected: bool = True,
) -> float:
    """Mean over test days of :func:`card_precision_per_day` (the Handbook's CP@k by default)."""
    precisions = card_precision_per_day(frame, scores, day, k, remove_detected)
    return float(np.mean(precisions)) if precisions else 0.0


def at_threshold(y: npt.NDArray[np.int64], scores: F64, threshold: float) -> dict[str, float]:
    """Share flagged, precision and recall of ``score >= threshold``."""
    flagged = scores >= threshold
    hits = int((flagged & (y == 1)).sum())
    return {
        "threshold": threshold,
        "flagged_share": float(flagged.mean()) if len(y) else 0.0,
        "precision": hits / int(flagged.sum()) if flagged.any() else 0.0,
        "recall": hits / int(y.sum()) if y.any() else 0.0,
    }


def calibration(y: npt.NDArray[np.int64], p: F64, bins: int = RELIABILITY_BINS) -> dict[str, Any]:
    """Brier score and a reliability table (equal-width probability bins, empty bins omitted)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            table.append(
                {
                    "bin": [float(edges[b]), float(edges[b + 1])],
                    "count": int(mask.sum()),
                    "mean_predicted": float(p[mask].mean()),
                    "fraud_rate": float(y[mask].mean()),
                }
            )
    return {"brier": float(brier_score_loss(y, p)), "reliability": table}


def evaluate(
    frame: pd.DataFrame,
    scores: F64,
    day: npt.NDArray[np.int64],
    thresholds: Thresholds | None,
    probabilistic: bool,
) -> dict[str, Any]:
    """Every metric of one model's test scores."""
    y = frame["label"].to_numpy().astype(np.int64)
    report: dict[str, Any] = {
        "auc_roc": float(roc_auc_score(y, scores)),
        "average_precision": float(average_precision_score(y, scores)),
        "cp_at_100": card_precision_at_k(frame, scores, day),
        "cp_at_100_no_removal": card_precision_at_k(frame, scores, day, remove_detected=False),
    }
    if thresholds is not None:
        report["thresholds"] = {
            "step_up": at_threshold(y, scores, thresholds.step_up),
            "block": at_threshold(y, scores, thresholds.block),
        }
    if probabilistic:
        report["calibration"] = calibration(y, scores)
    return report


def table(
    metrics: Mapping[str, Mapping[str, Any]],
    reference: Sequence[tuple[str, float, float, float]] = (),
) -> str:
    """A Markdown table: our models' AUC ROC, AP, CP@100 and Brier score (where the score is a
    probability); then ``reference`` rows (name, AUC ROC, AP, CP@100) without a Brier score."""
    lines = [
        "| model | AUC ROC | AP | CP@100 | Brier |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, m in metrics.items():
        brier = m.get("calibration", {}).get("brier")
        brier_text = f"{brier:.4f}" if brier is not None else "-"
        lines.append(
            f"| {name} | {m['auc_roc']:.3f} | {m['average_precision']:.3f} | "
            f"{m['cp_at_100']:.3f} | {brier_text} |"
        )
    for name, auc, ap, cp in reference:
        lines.append(f"| {name} | {auc:.3f} | {ap:.3f} | {cp:.3f} | - |")
    return "\n".join(lines)
