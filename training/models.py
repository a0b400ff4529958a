"""The learned models and how the ensemble stacks them.

Every learned model is a scikit-learn estimator that skl2onnx converts (checked by the parity step
and a CI test per class). Inputs are float32 feature vectors in the card's input order, both when
fitting and when predicting, so scikit-learn and onnxruntime see the very same numbers.

The ensemble is a logistic regression over the base scores (rules, anomaly, and the three
classifiers), fitted on out-of-fold scores of whole training days, so its output is a calibrated
probability (sigmoid/Platt-style; isotonic calibration is avoided because it disagrees in ONNX).
:func:`stack_inputs` is the one transform from base scores to the stacker's input; the scoring UDF
imports it too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from scoring.stacking import (
    ALL_MODELS,
    ANOMALY,
    ANOMALY_MODELS,
    BOOSTING,
    CLASSIFIERS,
    DERIVED,
    DEVIATION,
    ENSEMBLE,
    LEARNED,
    LOGISTIC,
    MLP,
    PROBABILITY_CLIP,
    RULES,
    STACKED,
    derived_scores,
    stack_inputs,
)

__all__ = [
    "ALL_MODELS",
    "ANOMALY",
    "ANOMALY_MODELS",
    "BOOSTING",
    "CLASSIFIERS",
    "DERIVED",
    "DEVIATION",
    "ENSEMBLE",
    "LEARNED",
    "LOGISTIC",
    "MLP",
    "PROBABILITY_CLIP",
    "RULES",
    "STACKED",
    "derived_scores",
    "stack_inputs",
]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

LR_MAX_ITER = 1_000
HGB_MAX_ITER = 300
"""Most boosting rounds a candidate may use; the number is chosen on the validation days."""
HGB_STAGE_STEP = 10
"""Validation AP is measured every this many rounds."""
HGB_FALLBACK_ITER = 100
HGB_KEYS = ("learning_rate", "max_leaf_nodes", "min_samples_leaf", "l2_regularization")
HGB_CANDIDATES: tuple[Mapping[str, float], ...] = tuple(
    dict(zip(HGB_KEYS, values, strict=True))
    for values in (
        (0.1, 31, 20, 0.0),
        (0.1, 15, 50, 1.0),
        (0.05, 15, 100, 1.0),
        (0.05, 7, 200, 10.0),
    )
)
"""Gradient-boosting settings tried on the time-ordered validation split, from the former fixed
setting (first) to a strongly regularised one (last); the first is the fallback."""
VALIDATION_SHARE = 0.3
"""Share of the training days (the latest ones) held out to choose the boosting settings."""
MLP_HIDDEN = (32, 16)
MLP_MAX_ITER = 200
IFOREST_TREES = 100
IFOREST_MAX_SAMPLES = 256
FIT_THREADS = 1
"""OpenMP/BLAS threads while fitting: measured on the 2-core CI machine, HistGradientBoosting
took 40 s with 2 threads and 2 s with 1 on the same 14k rows (thread contention)."""


def logistic_regression(seed: int) -> Pipeline:
    """Standardised logistic regression (the Handbook's first baseline)."""
    return make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=LR_MAX_ITER, random_state=seed)
    )


def gradient_boosting(seed: int, params: Mapping[str, Any] | None = None) -> Any:
    """Histogram gradient-boosted trees with ``params`` (from :func:`select_boosting`; default:
    the first candidate and :data:`HGB_FALLBACK_ITER` rounds). No early stopping inside the
    estimator: scikit-learn's would hold out a *random* share of rows."""
    chosen = dict(params or {**HGB_CANDIDATES[0], "max_iter": HGB_FALLBACK_ITER})
    return HistGradientBoostingClassifier(early_stopping=False, random_state=seed, **chosen)


def mlp(seed: int) -> Pipeline:
    """A small two-layer perceptron on standardised inputs."""
    return make_pipeline(
        StandardScaler(),
        MLPClassifier(
            hidden_layer_sizes=MLP_HIDDEN,
            max_iter=MLP_MAX_ITER,
            early_stopping=True,
            random_state=seed,
        ),
    )


def isolation_forest(
    seed: int, trees: int = IFOREST_TREES, max_samples: int = IFOREST_MAX_SAMPLES
) -> IsolationForest:
    """Anomaly detector fitted on legitimate traffic only."""
    return IsolationForest(n_estimators=trees, max_samples=max_samples, random_state=seed)


BUILDERS: Mapping[str, Callable[[int], Any]] = {
    LOGISTIC: logistic_regression,
    BOOSTING: gradient_boosting,
    MLP: mlp,
    ANOMALY: isolation_forest,
}


@dataclass(frozen=True)
class BoostingChoice:
    """The gradient-boosting settings chosen on the validation days, and how they scored."""

    params: Mapping[str, Any]
    validation_ap: float | None
    validation_days: tuple[int, ...]
    tried: tuple[Mapping[str, Any], ...]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """For the model card (``training.boosting_selection``)."""
        return {
            "params": dict(self.params),
            "validation_ap": self.validation_ap,
            "validation_days": list(self.validation_days),
            "tried": [dict(t) for t in self.tried],
            "note": self.note,
        }


def select_boosting(
    x: F32, y: npt.NDArray[np.int64], days: npt.NDArray[np.int64], seed: int
) -> BoostingChoice:
    """Choose the boosting settings and round count on a time-ordered validation split.

    The latest :data:`VALIDATION_SHARE` of the training days (at least one) are held out; each
    candidate of :data:`HGB_CANDIDATES` is fitted on the earlier days with up to
    :data:`HGB_MAX_ITER` rounds and scored (average precision) on the held-out days every
    :data:`HGB_STAGE_STEP` rounds. The best (candidate, rounds) wins; ties go to fewer rounds and
    to the earlier candidate. Without two distinct days, or without frauds on both sides, the
    first candidate with :data:`HGB_FALLBACK_ITER` rounds is used and the note says why.
    """
    distinct = np.unique(days)
    fallback = {**HGB_CANDIDATES[0], "max_iter": HGB_FALLBACK_ITER}
    if len(distinct) < 2:
        return BoostingChoice(fallback, None, (), (), "fewer than two training days")
    held_count = max(1, round(len(distinct) * VALIDATION_SHARE))
    held_days = distinct[-held_count:]
    held = np.isin(days, held_days)
    if len(np.unique(y[~held])) < 2 or len(np.unique(y[held])) < 2:
        return BoostingChoice(
            fallback,
            None,
            tuple(int(d) for d in held_days),
            (),
            "no fraud on one side of the validation split",
        )
    best: tuple[float, int, int] = (-1.0, 0, 0)
    tried = []
    with threadpool_limits(FIT_THREADS):
        for index, candidate in enumerate(HGB_CANDIDATES):
            model = gradient_boosting(seed, {**candidate, "max_iter": HGB_MAX_ITER})
            model.fit(x[~held], y[~held])
            scores = []
            for rounds, proba in enumerate(model.staged_predict_proba(x[held]), start=1):
                if rounds % HGB_STAGE_STEP == 0 or rounds == model.n_iter_:
                    scores.append((float(average_precision_score(y[held], proba[:, 1])), rounds))
            ap, rounds = max(scores, key=lambda item: (item[0], -item[1]))
            tried.append({**candidate, "max_iter": rounds, "validation_ap": ap})
            if ap > best[0]:
                best = (ap, rounds, index)
    ap, rounds, index = best
    return BoostingChoice(
        {**HGB_CANDIDATES[index], "max_iter": rounds},
        ap,
        tuple(int(d) for d in held_days),
        tuple(tried),
    )


@dataclass(frozen=True)
class Spec:
    """How to build one base model: a fresh estimator, and whether it is an anomaly detector."""

    build: Callable[[], Any]
    anomaly: bool


def specs(
    names: Sequence[str], seed: int, boosting: Mapping[str, Any] | None = None
) -> dict[str, Spec]:
    """Specs of the named family members (``boosting``: the chosen boosting settings)."""
    out: dict[str, Spec] = {}
    for name in names:
        if name == BOOSTING:
            out[name] = Spec(functools.partial(gradient_boosting, seed, boosting), False)
        else:
            out[name] = Spec(functools.partial(BUILDERS[name], seed), name in ANOMALY_MODELS)
    return out


def fit(
    name: str,
    x: F32,
    y: npt.NDArray[np.int64],
    seed: int,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """Fit learned model ``name``; the anomaly detector sees only the legitimate rows.

    ``params`` are the gradient-boosting settings (ignored by the other models).
    """
    model = gradient_boosting(seed, params) if name == BOOSTING else BUILDERS[name](seed)
    return fit_estimator(model, x, y, anomaly=name in ANOMALY_MODELS)


def fit_estimator(model: Any, x: F32, y: npt.NDArray[np.int64], anomaly: bool) -> Any:
    """Fit an estimator on one thread; an anomaly detector on the legitimate rows only."""
    with threadpool_limits(FIT_THREADS):
        if anomaly:
            model.fit(x[y == 0])
        else:
            model.fit(x, y)
    return model


def predict(name: str, model: Any, x: F32) -> F64:
    """The score the model contributes: P(fraud), or the anomaly score (higher = stranger)."""
    return score_estimator(model, x, anomaly=name in ANOMALY_MODELS)


def score_estimator(model: Any, x: F32, anomaly: bool) -> F64:
    """P(fraud) of a classifier, or ``-decision_function`` of an anomaly detector."""
    with threadpool_limits(FIT_THREADS):
        if anomaly:
            return np.asarray(-model.decision_function(x), dtype=np.float64)
        return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)


def stacker(seed: int) -> LogisticRegression:
    """The ensemble: a logistic regression over :func:`stack_inputs` (exportable to ONNX)."""
    return LogisticRegression(max_iter=LR_MAX_ITER, random_state=seed)


@dataclass(frozen=True)
class Fitted:
    """The fitted learned models (by name) and the fitted stacker."""

    learned: Mapping[str, Any]
    ensemble: LogisticRegression


def time_periods(times: npt.NDArray[np.int64], periods: int) -> npt.NDArray[np.int64]:
    """Period number of each row: ``periods`` blocks of consecutive times with equal row counts.

    The stand-in for whole days when a table's time column spans too few days (e.g. the ULB
    set's two days): folds and the boosting validation then follow these time blocks.

    >>> time_periods(np.array([5, 1, 3, 2]), 2).tolist()
    [1, 0, 1, 0]
    """
    order = np.argsort(times, kind="stable")
    period = np.empty(len(times), dtype=np.int64)
    period[order] = (np.arange(len(times)) * periods) // max(len(times), 1)
    return period


def day_folds(days: npt.NDArray[np.int64], folds: int) -> list[npt.NDArray[np.bool_]]:
    """Held-out masks of ``folds`` groups of whole days (day d goes to fold d mod folds).

    No randomness: the folds follow the calendar, so out-of-fold scores never mix one day's
    payments between fitting and scoring.

    >>> [m.tolist() for m in day_folds(np.array([0, 0, 1, 2]), 2)]
    [[True, True, False, True], [False, False, True, False]]
    """
    distinct = np.unique(days)
    count = max(1, min(folds, len(distinct)))
    fold_of_day = {int(d): i % count for i, d in enumerate(distinct)}
    fold = np.array([fold_of_day[int(d)] for d in days])
    return [fold == k for k in range(count)]
