"""The enriched-payment record that crosses from the feature operators to the scoring UDF.

Two compact BYTES columns instead of a wide Row: converting a 40-field Row between a thread-mode
Python operator and the Table API costs far more than the features themselves (issue 16), while
two byte strings cross cheaply and the pandas UDF unpacks a whole Arrow batch at once.

- ``features``: the feature vector as packed little-endian float64 in ``PAYMENT_FEATURES`` order
  (:func:`pack_features`; a batch is decoded with one ``np.frombuffer`` by
  :func:`unpack_features`);
- ``context``: an :class:`EnrichedContext` as a msgpack array (:func:`pack_context`), i.e. what
  the decision, the prediction log and the analytics need besides the features.

The same columns (context fields, then one float64 column per feature name) are the schema of the
enriched-features archive (Parquet), see :data:`CONTEXT_COLUMNS`.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Sequence
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from core.errors import SchemaError
from schemas.feature_set import PAYMENT_FEATURES, FeatureSet

FEATURES_COLUMN: Final = "features"
CONTEXT_COLUMN: Final = "context"
FEATURE_BYTES: Final = 8
"""Each feature is one IEEE-754 float64."""
_LITTLE: Final = "<"

if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
    raise SchemaError("schemas.enriched: packed vectors assume a little-endian platform")


class EnrichedContext(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """Everything about one payment the scoring side needs besides its feature vector.

    Times are epoch milliseconds UTC. ``ingest_time`` is stamped by the validate step when the job
    first read the record (latency and load shedding are measured from it); ``features_time`` when
    the features were complete; ``watermark_lag_ms`` is wall clock minus the operator's watermark
    at that moment (-1 before the first watermark).
    """

    event_id: str
    event_time: int
    ingest_time: int
    features_time: int
    correlation_id: str
    card_id: str
    terminal_id: str
    merchant_id: str
    mcc: str
    device_id: str | None
    feature_set_hash: str
    duplicate: bool
    late: bool
    watermark_lag_ms: int


CONTEXT_COLUMNS: Final = EnrichedContext.__struct_fields__
"""Context column names, in record order (the archive's leading columns)."""

_CONTEXT_ENCODER: Final = msgspec.msgpack.Encoder()
_CONTEXT_DECODER: Final = msgspec.msgpack.Decoder(EnrichedContext)


def pack_context(context: EnrichedContext) -> bytes:
    """The context as a msgpack array."""
    return _CONTEXT_ENCODER.encode(context)


def unpack_context(data: bytes) -> EnrichedContext:
    """A context from :func:`pack_context` bytes."""
    try:
        return _CONTEXT_DECODER.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise SchemaError(f"enriched context: {exc}") from exc


def pack_features(values: Sequence[float], feature_set: FeatureSet = PAYMENT_FEATURES) -> bytes:
    """The feature vector as packed little-endian float64, checked against the set's width.

    >>> n = len(PAYMENT_FEATURES.names)
    >>> len(pack_features([0.0] * n)) == FEATURE_BYTES * n
    True
    """
    width = len(feature_set.names)
    if len(values) != width:
        raise SchemaError(
            f"enriched features: expected {width} values for {feature_set.name} "
            f"v{feature_set.version}, found {len(values)}"
        )
    return struct.pack(f"{_LITTLE}{width}d", *values)


def unpack_features(
    blobs: Sequence[bytes], feature_set: FeatureSet = PAYMENT_FEATURES
) -> npt.NDArray[np.float64]:
    """A (rows, features) float64 matrix from a batch of packed vectors (one copy, no loop)."""
    width = len(feature_set.names)
    joined = b"".join(blobs)
    if len(joined) != len(blobs) * width * FEATURE_BYTES:
        bad = next((len(b) for b in blobs if len(b) != width * FEATURE_BYTES), len(joined))
        raise SchemaError(
            f"enriched features: expected {width * FEATURE_BYTES} bytes per vector for "
            f"{feature_set.name} v{feature_set.version}, found a vector of {bad} bytes"
        )
    return np.frombuffer(joined, dtype=f"{_LITTLE}f8").reshape(len(blobs), width)
