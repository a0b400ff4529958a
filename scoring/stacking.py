"""The model family, in one place: names, the derived scores and the ensemble's input transform.

numpy only, for training and the scoring job: the scoring UDF imports this module (through
:mod:`scoring.registry`) without pulling in scikit-learn or skl2onnx. Serving code follows the
names here (:data:`LEARNED` have ONNX files, :data:`DERIVED` are computed by
:func:`derived_scores`, :data:`STACKED` is the ensemble's input order), so a change of the family
is a change of this module.

The family (issue 16, chosen on the Handbook protocol, docs/handbook.md): rules, the per-card
amount deviation, logistic regression, gradient boosting, MLP, and the stacking ensemble. The
isolation forest (15.7 us of the 28 us per row at serving) was dropped: on the four chapter-5
folds the ensemble with the amount deviation instead had a higher AP on every fold than with no
anomaly score, and matched or beat the forest's on three of four, at no cost per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

RULES, DEVIATION, LOGISTIC, BOOSTING, MLP, ENSEMBLE = (
    "rules",
    "amount_deviation",
    "logistic_regression",
    "gradient_boosting",
    "mlp",
    "ensemble",
)
ANOMALY = "isolation_forest"
"""The former anomaly model: no longer in the family (kept for the Handbook study, bench/)."""
DERIVED = (DEVIATION,)
"""Scores computed from the feature vector by :func:`derived_scores` (no model file)."""
ANOMALY_MODELS = (DEVIATION, ANOMALY)
"""Scores that are not probabilities (they enter the ensemble as they are, not as log-odds)."""
CLASSIFIERS = (LOGISTIC, BOOSTING, MLP)
LEARNED = CLASSIFIERS
"""Models exported to ONNX over the feature vector (the rule model is scored by ``rules.py``)."""
STACKED = (RULES, DEVIATION, *CLASSIFIERS)
"""Base scores the ensemble combines, in the order of its input columns."""
ALL_MODELS = (*STACKED, ENSEMBLE)
PROBABILITY_CLIP = 1e-6
DEVIATION_INPUTS = ("amount", "amount_mean_by_card_30d")
"""The amount deviation reads these inputs (both are Handbook features and payment features)."""
DEVIATION_EPSILON = 1e-6


def derived_scores(
    x: npt.NDArray[Any], inputs: Sequence[str]
) -> dict[str, npt.NDArray[np.float64]]:
    """The :data:`DERIVED` scores of rows ``x`` (columns ``inputs``).

    ``amount_deviation`` = log(amount / the card's 30-day mean amount): how far the payment is from
    the card's own profile. A model whose inputs lack either feature (e.g. a ``--table`` model)
    gets 0 for every row.

    >>> derived_scores(np.array([[100.0, 50.0], [10.0, 10.0]]), DEVIATION_INPUTS)[
    ...     "amount_deviation"].round(4).tolist()
    [0.6931, 0.0]
    """
    if not all(name in inputs for name in DEVIATION_INPUTS):
        return {DEVIATION: np.zeros(len(x), dtype=np.float64)}
    amount = np.asarray(x[:, list(inputs).index(DEVIATION_INPUTS[0])], dtype=np.float64)
    mean = np.asarray(x[:, list(inputs).index(DEVIATION_INPUTS[1])], dtype=np.float64)
    ratio = (amount + DEVIATION_EPSILON) / np.maximum(mean + DEVIATION_EPSILON, DEVIATION_EPSILON)
    return {DEVIATION: np.log(np.maximum(ratio, DEVIATION_EPSILON))}


def stack_inputs(scores: Mapping[str, npt.NDArray[Any]], names: Sequence[str] = STACKED) -> F32:
    """Base scores -> the ensemble's input matrix (columns in ``names`` order, by default the
    served family :data:`STACKED`).

    Probabilities enter as log-odds (clipped), the anomaly score as is.

    >>> stack_inputs({"rules": np.array([0.5]), "amount_deviation": np.array([0.1]),
    ...     "logistic_regression": np.array([0.5]), "gradient_boosting": np.array([0.5]),
    ...     "mlp": np.array([0.5])}).tolist()
    [[0.0, 0.10000000149011612, 0.0, 0.0, 0.0]]
    """
    columns = []
    for name in names:
        values = np.asarray(scores[name], dtype=np.float64).reshape(-1)
        if name not in ANOMALY_MODELS:
            p = np.clip(values, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
            values = np.log(p / (1.0 - p))
        columns.append(values)
    return np.column_stack(columns).astype(np.float32)
