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
F64 = npt.NDArray[np.float64]


def session(data: bytes) -> ort.InferenceSession:
    """An onnxruntime session over serialized model bytes (CPU)."""
    return ort.InferenceSession(data, providers=PROVIDERS)


def onnx_score(name: str, sess: ort.InferenceSession, x: npt.NDArray[np.float32]) -> Any:
    """The score an ONNX model gives, the same quantity as :func:`training.models.predict`."""
    feed = {sess.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
    if name in stacking.ANOMALY_MODELS:
        (scores,) = sess.run([ANOMALY_SCORES], feed)
        return -np.asarray(scores, dtype=np.float64).reshape(-1)
    (probabilities,) = sess.run([PROBABILITIES], feed)
    return np.asarray(probabilities, dtype=np.float64)[:, 1]


def batch_invariant_score(name: str, sess: Any, x: npt.NDArray[Any]) -> F64:
    """A model's scores that do not depend on how rows were batched.

    onnxruntime's float32 matrix product takes another kernel for a single row than for two or
    more, which rounds the logistic regression's score one ulp differently; a payment scored
    alone (a quiet stream, an Arrow batch of one) and again in a larger batch (the replay after a
    restore from a checkpoint) would then get two different scores under one decision id. So a
    single row is scored as two copies of itself (measured batch-invariant for 2 to 32 rows and
    for 960). Every scorer calls this, never :func:`onnx_score` on a batch directly.
    """
    rows = len(x)
    padded = np.repeat(x, 2, axis=0) if rows == 1 else x
    return np.asarray(onnx_score(name, sess, padded), dtype=np.float64)[:rows]


def ensemble_probability(sess: Any, base: Mapping[str, npt.NDArray[Any]]) -> F64:
    """The ensemble's fraud probability over the base models' scores (batch-invariant)."""
    return batch_invariant_score(stacking.ENSEMBLE, sess, stacking.stack_inputs(base))
