"""Event contracts: JSON Schema files (``schemas/json``) and fast msgspec records.

This package imports no pyflink, so jobs, UDFs and offline training can all depend on it.
"""

from schemas.records import (
    SCHEMA_VERSION,
    DeadLetter,
    Decision,
    Label,
    PredictionLog,
    Transaction,
    WindowAnalytics,
)
from schemas.validation import RecordSchemaError, decode, decode_transaction, json_schema

__all__ = [
    "SCHEMA_VERSION",
    "DeadLetter",
    "Decision",
    "Label",
    "PredictionLog",
    "RecordSchemaError",
    "Transaction",
    "WindowAnalytics",
    "decode",
    "decode_transaction",
    "json_schema",
]
