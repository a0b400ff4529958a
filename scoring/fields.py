"""Names shared by the scoring UDF and the decision step: decision classes, degraded modes, the
reason-code format and the score columns.

Deliberately free of heavy imports (no onnxruntime, pandas or pyflink.table): thread-mode
operators import it inside the TaskManager's embedded interpreter, where importing onnxruntime
hangs the operator's start.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import cast

from schemas.feature_set import PAYMENT_FEATURES
from schemas.records import DecisionClass, DegradedMode
from scoring import stacking

CARD_FILE = "model_card.json"
"""A registry version's model card (``<registry>/<version>/model_card.json``)."""
APPROVE, STEP_UP, BLOCK = "approve", "step_up", "block"
SEVERITY = {APPROVE: 0, STEP_UP: 1, BLOCK: 2}
MODE_FULL, MODE_SHED, MODE_RULES = "full", "shed", "rules_only"
REASON_SEPARATOR = ";"
SCORE_PREFIX = "s_"
DECISIONS = (APPROVE, STEP_UP, BLOCK)
"""Decision classes by code (the code is the severity)."""
MODES = (MODE_FULL, MODE_SHED, MODE_RULES)
"""Degraded modes by code."""

FEATURES_LAYOUT = struct.Struct(f"<{len(PAYMENT_FEATURES.names)}d")
"""A payment's feature vector packed in one BYTES value: float64 little-endian, in
``PAYMENT_FEATURES.names`` order (the scoring UDF decodes a batch with one ``numpy.frombuffer``)."""


def pack_features(values: Sequence[float]) -> bytes:
    """One feature vector (``PAYMENT_FEATURES.names`` order) as :data:`FEATURES_LAYOUT` bytes.

    >>> len(pack_features([1.0] * len(PAYMENT_FEATURES.names))) == 8 * len(PAYMENT_FEATURES.names)
    True
    """
    return FEATURES_LAYOUT.pack(*values)


def unpack_features(blob: bytes) -> tuple[float, ...]:
    """The feature vector of :func:`pack_features` bytes."""
    return FEATURES_LAYOUT.unpack(blob)


RESULT_COLUMNS = ("result", "reasons", "model_version")
"""The scoring UDF's output, three Arrow columns: ``result`` (BYTES, :data:`RESULT_LAYOUT`),
``reasons`` (STRING, codes joined by :data:`REASON_SEPARATOR`) and ``model_version`` (STRING)."""
RESULT_VERSION = 1
"""The last byte of every packed result: the layout's version. It is never zero, so numpy's
fixed-width bytes (which drop trailing NUL bytes) give back each packed row whole."""
RESULT_LAYOUT = struct.Struct(f"<{1 + len(stacking.STACKED)}dBBB")
"""One scored row, little-endian: the probability, the score of each model of
:data:`scoring.stacking.STACKED` (NaN: not run), the decision code (:data:`DECISIONS`), the mode
code (:data:`MODES`) and :data:`RESULT_VERSION`."""


def unpack_result(blob: bytes) -> tuple[float, tuple[float, ...], DecisionClass, DegradedMode]:
    """Probability, model scores (:data:`scoring.stacking.STACKED` order), decision and mode of
    one packed result.

    >>> blob = RESULT_LAYOUT.pack(0.25, *[0.5] * len(stacking.STACKED), 2, 1, RESULT_VERSION)
    >>> unpack_result(blob)[0], unpack_result(blob)[2:]
    (0.25, ('block', 'shed'))
    """
    values = RESULT_LAYOUT.unpack(blob)
    if values[-1] != RESULT_VERSION:
        raise ValueError(
            f"packed scoring result: expected layout version {RESULT_VERSION}, found {values[-1]}"
        )
    scores = len(stacking.STACKED)
    decision = cast(DecisionClass, DECISIONS[values[-3]])
    return values[0], values[1 : 1 + scores], decision, cast(DegradedMode, MODES[values[-2]])


def split_reasons(text: str) -> list[str]:
    """Reason codes from the UDF's joined string.

    >>> split_reasons("rule:large_amount;feature:amount")
    ['rule:large_amount', 'feature:amount']
    """
    return [code for code in text.split(REASON_SEPARATOR) if code]
