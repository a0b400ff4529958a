"""Running exported models with onnxruntime: sessions and the score each model gives.

onnxruntime and numpy only (no scikit-learn, no skl2onnx), so the scoring job can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from scoring import stacking

TARGET_OPSET: Mapping[str, int] = {"": 17, "ai.onnx.ml": 3}
"""Pinned opsets: ai.onnx 17 and ai.onnx.ml 3 (onnxruntime 1.32 runs both)."""
PROBABILITIES = "probabilities"
ANOMALY_SCORES = "scores"
PROVIDERS = ["CPUExecutionProvider"]


def session(data: bytes) -> ort.InferenceSession:
    """An onnxruntime session over serialized model bytes (CPU)."""
    return ort.InferenceSession(data, providers=PROVIDERS)


def onnx_score(name: str, sess: ort.InferenceSession, x: npt.NDArray[np.float32]) -> Any:
    """The score an ONNX model gives, the same quantity as :func:`training.models.predict`."""
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
    if name == stacking.ANOMALY:
        (scores,) = sess.run([ANOMALY_SCORES], feed)
        return -np.asarray(scores, dtype=np.float64).reshape(-1)
    (probabilities,) = sess.run([PROBABILITIES], feed)
    return np.asarray(probabilities, dtype=np.float64)[:, 1]
