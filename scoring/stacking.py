"""Model names and the ensemble's input transform: numpy only, for training and the scoring job.

The scoring UDF imports this module (through :mod:`scoring.registry`) without pulling in
scikit-learn or skl2onnx.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

RULES, ANOMALY, LOGISTIC, BOOSTING, MLP, ENSEMBLE = (
    "rules",
    "isolation_forest",
    "logistic_regression",
    "gradient_boosting",
    "mlp",
    "ensemble",
)
CLASSIFIERS = (LOGISTIC, BOOSTING, MLP)
LEARNED = (ANOMALY, *CLASSIFIERS)
"""Models exported to ONNX over the feature vector (the rule model is scored by ``rules.py``)."""
STACKED = (RULES, ANOMALY, *CLASSIFIERS)
"""Base scores the ensemble combines, in the order of its input columns."""
ALL_MODELS = (*STACKED, ENSEMBLE)
PROBABILITY_CLIP = 1e-6


def stack_inputs(scores: Mapping[str, npt.NDArray[Any]]) -> F32:
    """Base scores -> the ensemble's input matrix (columns in :data:`STACKED` order).

    Probabilities enter as log-odds (clipped), the anomaly score as is.

    >>> stack_inputs({"rules": np.array([0.5]), "isolation_forest": np.array([0.1]),
    ...     "logistic_regression": np.array([0.5]), "gradient_boosting": np.array([0.5]),
    ...     "mlp": np.array([0.5])}).tolist()
    [[0.0, 0.10000000149011612, 0.0, 0.0, 0.0]]
    """
    columns = []
    for name in STACKED:
        values = np.asarray(scores[name], dtype=np.float64).reshape(-1)
        if name != ANOMALY:
            p = np.clip(values, PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
            values = np.log(p / (1.0 - p))
        columns.append(values)
    return np.column_stack(columns).astype(np.float32)
