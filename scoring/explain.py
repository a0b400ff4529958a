"""Which features drove a score: per-feature contributions of the logistic-regression model.

The exported logistic regression is a ``Scaler`` followed by a ``LinearClassifier`` (skl2onnx), so
its fraud log-odds is a sum over features of ``coef_j * (x_j - offset_j) * scale_j``: exact,
additive contributions, read from the ONNX graph itself (the model the job serves, not a copy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from core.errors import ModelContractError
from scoring.reasons import top_indices

SCALER_OP, LINEAR_OP = "Scaler", "LinearClassifier"
FRAUD_CLASS_ROW = 1


@dataclass(frozen=True)
class LinearExplainer:
    """Feature contributions to the fraud log-odds of a linear model."""

    names: tuple[str, ...]
    offset: npt.NDArray[np.float64]
    weight: npt.NDArray[np.float64]
    """``coef_j * scale_j`` for the fraud class."""

    @classmethod
    def from_onnx(cls, model_bytes: bytes, names: Sequence[str]) -> LinearExplainer:
        """Read the scaler and the fraud-class coefficients from an exported pipeline."""
        graph = onnx.load_model_from_string(model_bytes).graph
        attrs = {
            node.op_type: {a.name: np.asarray(a.floats, dtype=np.float64) for a in node.attribute}
            for node in graph.node
        }
        if LINEAR_OP not in attrs:
            raise ModelContractError(
                f"expected a {LINEAR_OP} node in the logistic-regression model, found "
                f"{sorted(attrs)}"
            )
        width = len(names)
        coefficients = attrs[LINEAR_OP]["coefficients"].reshape(-1, width)
        coef = coefficients[min(FRAUD_CLASS_ROW, len(coefficients) - 1)]
        scaler = attrs.get(SCALER_OP, {})
        offset = scaler.get("offset", np.zeros(width))
        scale = scaler.get("scale", np.ones(width))
        return cls(tuple(names), offset, coef * scale)

    def contributions(self, x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
        """Per-row, per-feature contribution to the fraud log-odds."""
        return (np.asarray(x, dtype=np.float64) - self.offset) * self.weight

    def top_indices(self, x: npt.NDArray[np.floating[Any]], k: int) -> npt.NDArray[np.intp]:
        """Per row, the indices (in :attr:`names`) of the ``k`` features that raised the fraud
        log-odds most, largest first, -1 where fewer than ``k`` contributions are positive
        (vectorized, :func:`scoring.reasons.top_indices`)."""
        return top_indices(self.contributions(x), k)

    def top(self, x: npt.NDArray[np.floating[Any]], k: int) -> list[list[str]]:
        """Names of the ``k`` features that raised the fraud log-odds most, per row (positive
        contributions only; ties go to the earlier feature)."""
        return [[self.names[j] for j in row if j >= 0] for row in self.top_indices(x, k)]
