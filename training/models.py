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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from scoring.stacking import (
    ALL_MODELS,
    ANOMALY,
    BOOSTING,
    CLASSIFIERS,
    ENSEMBLE,
    LEARNED,
    LOGISTIC,
    MLP,
    PROBABILITY_CLIP,
    RULES,
    STACKED,
    stack_inputs,
)

__all__ = [
    "ALL_MODELS",
    "ANOMALY",
    "BOOSTING",
    "CLASSIFIERS",
    "ENSEMBLE",
    "LEARNED",
    "LOGISTIC",
    "MLP",
    "PROBABILITY_CLIP",
    "RULES",
    "STACKED",
    "stack_inputs",
]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

LR_MAX_ITER = 1_000
HGB_MAX_ITER = 200
HGB_LEARNING_RATE = 0.1
HGB_MAX_LEAF_NODES = 31
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


def gradient_boosting(seed: int) -> HistGradientBoostingClassifier:
    """Histogram gradient-boosted trees; fixed iterations (no random validation split)."""
    return HistGradientBoostingClassifier(
        max_iter=HGB_MAX_ITER,
        learning_rate=HGB_LEARNING_RATE,
        max_leaf_nodes=HGB_MAX_LEAF_NODES,
        early_stopping=False,
        random_state=seed,
    )


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


def isolation_forest(seed: int) -> IsolationForest:
    """Anomaly detector fitted on legitimate traffic only."""
    return IsolationForest(
        n_estimators=IFOREST_TREES, max_samples=IFOREST_MAX_SAMPLES, random_state=seed
    )


BUILDERS: Mapping[str, Callable[[int], Any]] = {
    LOGISTIC: logistic_regression,
    BOOSTING: gradient_boosting,
    MLP: mlp,
    ANOMALY: isolation_forest,
}


def fit(name: str, x: F32, y: npt.NDArray[np.int64], seed: int) -> Any:
    """Fit learned model ``name``; the anomaly detector sees only the legitimate rows."""
    model = BUILDERS[name](seed)
    with threadpool_limits(FIT_THREADS):
        if name == ANOMALY:
            model.fit(x[y == 0])
        else:
            model.fit(x, y)
    return model


def predict(name: str, model: Any, x: F32) -> F64:
    """The score the model contributes: P(fraud), or the anomaly score (higher = stranger)."""
    with threadpool_limits(FIT_THREADS):
        if name == ANOMALY:
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
