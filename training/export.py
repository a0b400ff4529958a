"""ONNX export with skl2onnx, and the parity check that fails a training run if it is broken.

Every model is converted with explicit float32 ``initial_types`` over the ordered input list, a
pinned opset, probabilities as a tensor (``zipmap=False``), and metadata naming the feature set
(name, version, hash) and the inputs. :func:`check_parity` compares onnxruntime with scikit-learn
on the test set and raises :class:`~core.errors.ModelContractError` above the tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import IsolationForest

from core.errors import ModelContractError
from schemas.feature_set import FeatureSet
from scoring.onnx_io import PROBABILITIES, TARGET_OPSET, onnx_score, session
from training import models

__all__ = [
    "PROBABILITIES",
    "TARGET_OPSET",
    "check_parity",
    "export_all",
    "onnx_score",
    "session",
    "to_onnx",
]

INPUT_NAME = "features"
STACK_INPUT_NAME = "scores"
PARITY_TOLERANCE = 1e-5
"""Largest |p_sklearn - p_onnx| accepted on the test set, for every model."""
END_TO_END = "ensemble_end_to_end"


def to_onnx(
    name: str,
    model: Any,
    input_names: Sequence[str],
    feature_set: FeatureSet,
    input_name: str = INPUT_NAME,
) -> bytes:
    """The serialized ONNX model of a fitted estimator, with the feature-set metadata."""
    # skl2onnx's identity-node pass is quadratic on the IsolationForest graph (measured: half of
    # a 7 s conversion); onnxruntime removes identities itself, so that pass is skipped there.
    options = None if isinstance(model, IsolationForest) else {id(model): {"zipmap": False}}
    try:
        onx = convert_sklearn(
            model,
            name=name,
            initial_types=[(input_name, FloatTensorType([None, len(input_names)]))],
            target_opset=dict(TARGET_OPSET),
            options=options,
            model_optim=not isinstance(model, IsolationForest),
        )
    except Exception as exc:  # skl2onnx raises many types; the run must stop with one
        raise ModelContractError(
            f"{name}: skl2onnx could not convert {type(model).__name__}: {exc}"
        ) from exc
    onnx.helper.set_model_props(
        onx,
        {
            "riskstream.model": name,
            "riskstream.feature_set": feature_set.name,
            "riskstream.feature_set_version": str(feature_set.version),
            "riskstream.feature_set_hash": feature_set.spec_hash(),
            "riskstream.inputs": ",".join(input_names),
        },
    )
    data: bytes = onx.SerializeToString()
    return data


def check_parity(
    name: str, expected: npt.NDArray[np.float64], found: npt.NDArray[np.float64]
) -> float:
    """Max |sklearn - onnx|; raises :class:`ModelContractError` above ``PARITY_TOLERANCE``."""
    gap = float(np.max(np.abs(expected - found))) if len(expected) else 0.0
    if not gap <= PARITY_TOLERANCE:
        raise ModelContractError(
            f"{name}: ONNX disagrees with scikit-learn on the test set: expected "
            f"max |p_sklearn - p_onnx| <= {PARITY_TOLERANCE}, found {gap:.3g}"
        )
    return gap


def export_all(
    fitted: models.Fitted,
    input_names: Sequence[str],
    feature_set: FeatureSet,
    x_test: npt.NDArray[np.float32],
    sklearn_scores: Mapping[str, npt.NDArray[np.float64]],
) -> tuple[dict[str, bytes], dict[str, float]]:
    """ONNX bytes of every learned model and the ensemble, and each one's test-set parity gap.

    Each model is checked on the same input as scikit-learn (the ensemble on the stack of
    scikit-learn's base scores). The end-to-end gap of the all-ONNX path the scoring job runs
    (ensemble over ONNX base scores) is reported as ``ensemble_end_to_end``: the log-odds inputs
    amplify float32 rounding of near-certain probabilities, so it is informative, not a gate.
    """
    blobs: dict[str, bytes] = {}
    gaps: dict[str, float] = {}
    onnx_scores: dict[str, npt.NDArray[np.float64]] = {
        name: sklearn_scores[name] for name in (models.RULES, *models.DERIVED)
    }
    for name in models.LEARNED:
        blobs[name] = to_onnx(name, fitted.learned[name], input_names, feature_set)
        onnx_scores[name] = onnx_score(name, session(blobs[name]), x_test)
        gaps[name] = check_parity(name, sklearn_scores[name], onnx_scores[name])
    blobs[models.ENSEMBLE] = to_onnx(
        models.ENSEMBLE, fitted.ensemble, models.STACKED, feature_set, STACK_INPUT_NAME
    )
    ensemble = session(blobs[models.ENSEMBLE])
    same_input = onnx_score(models.ENSEMBLE, ensemble, models.stack_inputs(sklearn_scores))
    gaps[models.ENSEMBLE] = check_parity(
        models.ENSEMBLE, sklearn_scores[models.ENSEMBLE], same_input
    )
    end_to_end = onnx_score(models.ENSEMBLE, ensemble, models.stack_inputs(onnx_scores))
    gaps[END_TO_END] = float(np.max(np.abs(end_to_end - sklearn_scores[models.ENSEMBLE])))
    return blobs, gaps
