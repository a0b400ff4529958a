"""Enriched-features records as narrow rows for the Table API crossing.

Every field of a row crossing between the DataStream and Table APIs is converted one by one (about
0.3 us a field in thread mode, and a 53-field row was the widest part of the scoring job), so the
row is four fields: the two the scoring UDF reads (``event_id`` for the replay memory,
``ingest_time``, the ingestion stamp, for the lag), the feature vector packed in one BYTES value
(:data:`scoring.fields.FEATURES_LAYOUT`) and the rest of the record the decision step needs,
packed in one BYTES value (:class:`Passthrough`, msgpack). The Table API only carries the two
BYTES values through; the decision step unpacks them.

A light module on purpose: the map runs in thread mode inside the TaskManager's embedded
interpreter, so it must not import the scoring stack (onnxruntime, pandas).
"""

from __future__ import annotations

import msgspec
from pyflink.common import Row, Types
from pyflink.common.typeinfo import RowTypeInfo

from features import output
from schemas.feature_set import PAYMENT_FEATURES
from scoring.fields import pack_features

EVENT_ID, LAG_TIME, FEATURES, RECORD = "event_id", "ingest_time", "features", "record"
"""Columns of the row: the payment's id, the wall-clock stamp the shedding lag is measured from
(the ingestion stamp),
the packed features and the packed :class:`Passthrough`."""
COLUMNS = (EVENT_ID, LAG_TIME, FEATURES, RECORD)


class Passthrough(msgspec.Struct, frozen=True, array_like=True):
    """What the decision step reads of the enriched record besides the features (msgpack array)."""

    event_id: str
    event_time: int
    correlation_id: str
    card_id: str
    merchant_id: str
    mcc: str
    duplicate: bool
    late: bool
    watermark_lag_ms: int
    computed_time: int
    ingest_time: int


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Passthrough)


def row_type() -> RowTypeInfo:
    """Named row type of the features stream handed to the Table API."""
    packed = Types.PRIMITIVE_ARRAY(Types.BYTE())  # BYTES in the Table API
    kinds = [Types.STRING(), Types.LONG(), packed, packed]
    return Types.ROW_NAMED(list(COLUMNS), kinds)


def record_row(record: output.EnrichedFeatures) -> Row:
    """A decoded enriched-features record as a row of :func:`row_type`."""
    values = record.features
    passthrough = Passthrough(
        record.event_id,
        record.event_time,
        record.correlation_id,
        record.card_id,
        record.merchant_id,
        record.mcc,
        record.duplicate,
        record.late,
        record.watermark_lag_ms,
        record.computed_time,
        output.ingest_time(record),
    )
    return Row(
        record.event_id,
        passthrough.ingest_time,
        pack_features([values[name] for name in PAYMENT_FEATURES.names]),
        pack_record(passthrough),
    )


def pack_record(record: Passthrough) -> bytes:
    """A row's ``record`` value (msgpack array)."""
    return _ENCODER.encode(record)


def unpack_record(blob: bytes) -> Passthrough:
    """The :class:`Passthrough` of a row's ``record`` value."""
    return _DECODER.decode(blob)
