"""Enriched-features records (JSON) as named rows for the Table API crossing.

A light module on purpose: the map runs in thread mode inside the TaskManager's embedded
interpreter, so it must not import the scoring stack (onnxruntime, pandas).
"""

from __future__ import annotations

from pyflink.common import Row, Types
from pyflink.common.typeinfo import RowTypeInfo

from features import output
from schemas.feature_set import PAYMENT_FEATURES

PASSTHROUGH = (
    ("event_id", Types.STRING()),
    ("event_time", Types.LONG()),
    ("correlation_id", Types.STRING()),
    ("card_id", Types.STRING()),
    ("terminal_id", Types.STRING()),
    ("merchant_id", Types.STRING()),
    ("mcc", Types.STRING()),
    ("duplicate", Types.BOOLEAN()),
    ("late", Types.BOOLEAN()),
    ("watermark_lag_ms", Types.LONG()),
    ("computed_time", Types.LONG()),
    ("ingest_time", Types.LONG()),
)
COLUMNS = tuple(n for n, _ in PASSTHROUGH) + PAYMENT_FEATURES.names


def row_type() -> RowTypeInfo:
    """Named row type of the features stream handed to the Table API."""
    kinds = [k for _, k in PASSTHROUGH] + [Types.DOUBLE()] * len(PAYMENT_FEATURES.names)
    return Types.ROW_NAMED(list(COLUMNS), kinds)


def to_row(record_json: str) -> Row:
    """An enriched-features record (JSON) as a row of :func:`row_type`."""
    return record_row(output.decode(record_json))


def record_row(record: output.EnrichedFeatures) -> Row:
    """A decoded enriched-features record as a row of :func:`row_type`."""
    values = record.features
    return Row(
        record.event_id,
        record.event_time,
        record.correlation_id,
        record.card_id,
        record.terminal_id,
        record.merchant_id,
        record.mcc,
        record.duplicate,
        record.late,
        record.watermark_lag_ms,
        record.computed_time,
        output.ingest_time(record),
        *[float(values[name]) for name in PAYMENT_FEATURES.names],
    )
