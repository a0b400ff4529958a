"""The scoring UDF's lean Arrow columns, a whole batch at a time: the packed feature vectors in,
the packed results out (layouts in :mod:`scoring.fields`).

One BYTES column instead of one DOUBLE column per feature keeps the rows narrow where they are
converted one by one (the thread-mode steps before and after the Table API); on the UDF's side a
batch decodes with one ``b"".join`` and one ``numpy.frombuffer``, and the results encode with one
structured array, never a Python loop per row. Pure numpy, so it is tested without a JVM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring import stacking
from scoring.fields import DECISIONS, FEATURES_LAYOUT, MODES, RESULT_LAYOUT, RESULT_VERSION

F64 = npt.NDArray[np.float64]
FEATURE_WIDTH = FEATURES_LAYOUT.size // 8
_RESULT_DTYPE = np.dtype(
    [
        ("probability", "<f8"),
        *((stacking.STACKED[i], "<f8") for i in range(len(stacking.STACKED))),
        ("decision", "u1"),
        ("mode", "u1"),
        ("version", "u1"),
    ]
)
if _RESULT_DTYPE.itemsize != RESULT_LAYOUT.size:  # one layout, two readers
    raise RuntimeError(
        f"result layout: the struct has {RESULT_LAYOUT.size} bytes, the dtype "
        f"{_RESULT_DTYPE.itemsize}"
    )


def features_matrix(packed: Sequence[bytes] | npt.NDArray[Any]) -> F64:
    """Rows of packed feature vectors (:data:`scoring.fields.FEATURES_LAYOUT`) as one float64
    matrix, a copy-free view of one joined buffer.

    >>> from scoring.fields import pack_features
    >>> features_matrix([pack_features(range(FEATURE_WIDTH))])[0, :3].tolist()
    [0.0, 1.0, 2.0]
    """
    data = b"".join(packed)
    rows = len(packed)
    if len(data) != rows * FEATURES_LAYOUT.size:
        sizes = sorted({len(b) for b in packed})
        raise ValueError(
            f"packed features: expected {FEATURES_LAYOUT.size} bytes per row "
            f"({FEATURE_WIDTH} float64), found sizes {sizes[:5]}"
        )
    return np.frombuffer(data, dtype="<f8").reshape(rows, FEATURE_WIDTH)


def codes(values: npt.NDArray[Any], names: Sequence[str]) -> npt.NDArray[np.uint8]:
    """The code (index in ``names``) of each value, vectorized (one comparison per name).

    >>> codes(np.array(["block", "approve"], dtype=object), DECISIONS).tolist()
    [2, 0]
    """
    out = np.zeros(len(values), dtype=np.uint8)
    for code, name in enumerate(names[1:], start=1):
        out[values == name] = code
    return out


def pack_results(
    probability: F64,
    scores: Mapping[str, F64],
    decision: npt.NDArray[Any],
    mode: npt.NDArray[Any],
) -> npt.NDArray[np.object_]:
    """One :data:`scoring.fields.RESULT_LAYOUT` bytes value per row (object array for Arrow's
    BYTES column); ``decision`` and ``mode`` are names (:data:`DECISIONS`, :data:`MODES`)."""
    rows = len(probability)
    out = np.empty(rows, dtype=_RESULT_DTYPE)
    out["probability"] = probability
    for name in stacking.STACKED:
        out[name] = scores[name]
    out["decision"] = codes(decision, DECISIONS)
    out["mode"] = codes(mode, MODES)
    out["version"] = RESULT_VERSION
    # Fixed-width bytes drop trailing NULs only; the last byte is the (non-zero) version.
    return np.frombuffer(out.tobytes(), dtype=f"S{RESULT_LAYOUT.size}").astype(object)


def unpack_results(packed: Sequence[bytes] | npt.NDArray[Any]) -> npt.NDArray[np.void]:
    """The structured array of :func:`pack_results` bytes (fields ``probability``, one per model
    of :data:`scoring.stacking.STACKED`, ``decision``, ``mode``, ``version``)."""
    out = np.frombuffer(b"".join(packed), dtype=_RESULT_DTYPE)
    if len(out) != len(packed) or (out["version"] != RESULT_VERSION).any():
        raise ValueError(f"packed scoring results: expected layout version {RESULT_VERSION}")
    return out
