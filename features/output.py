"""The enriched-features record the feature job emits (one per payment) and its JSON encoding.

It carries the feature-set name, version and hash, so the scoring stage can refuse features a model
was not trained on, plus the flags, the watermark lag at the moment of computation and two
wall-clock stamps: ``ingest_time`` (the validate step read the payment) and ``computed_time`` (its
features were complete). The scoring side measures latency and the load-shedding lag from
``ingest_time``.
"""

from __future__ import annotations

import msgspec

from schemas.feature_set import PAYMENT_FEATURES, FeatureValues
from schemas.records import NOT_STAMPED, Transaction, ingest_time_of

FEATURE_SET_HASH = PAYMENT_FEATURES.spec_hash()


class EnrichedFeatures(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Features of one payment, ready for scoring."""

    event_id: str
    event_time: int
    correlation_id: str
    card_id: str
    terminal_id: str
    device_id: str | None
    feature_set: str
    feature_set_version: int
    feature_set_hash: str
    features: dict[str, float]
    duplicate: bool
    late: bool
    watermark_lag_ms: int
    """Wall clock minus the operator's watermark when the card features were computed (-1: none)."""
    computed_time: int
    """Wall clock (epoch ms) when the payment's features were complete (the terminal stage)."""
    merchant_id: str = ""
    """The payment's merchant and merchant category, for the windowed analytics downstream."""
    mcc: str = ""
    ingest_time: int = NOT_STAMPED
    """Wall clock (epoch ms) when the validate step read the payment
    (:class:`schemas.records.IngestedTransaction`); -1 in records written before the stamp
    existed, which :func:`ingest_time` reads as ``computed_time``."""


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(EnrichedFeatures)


def build(
    tx: Transaction,
    *,
    values: FeatureValues,
    duplicate: bool,
    late: bool,
    watermark_lag_ms: int,
    computed_time: int,
    ingest_time: int | None = None,
) -> EnrichedFeatures:
    """Assemble the record of transaction ``tx``; ``features`` maps each name to its value.

    ``ingest_time`` defaults to the stamp the validate step put on ``tx``, or ``computed_time``
    for a transaction that never passed it (the Python driver, tests)."""
    if ingest_time is None:
        ingest_time = ingest_time_of(tx, computed_time)
    return EnrichedFeatures(
        event_id=tx.event_id,
        event_time=tx.event_time,
        correlation_id=tx.correlation_id,
        card_id=tx.card_id,
        terminal_id=tx.terminal_id,
        device_id=tx.device_id,
        feature_set=PAYMENT_FEATURES.name,
        feature_set_version=PAYMENT_FEATURES.version,
        feature_set_hash=FEATURE_SET_HASH,
        features=values.as_dict(),
        duplicate=duplicate,
        late=late,
        watermark_lag_ms=watermark_lag_ms,
        computed_time=computed_time,
        merchant_id=tx.merchant_id,
        mcc=tx.mcc,
        ingest_time=ingest_time,
    )


def ingest_time(record: EnrichedFeatures) -> int:
    """When the payment of ``record`` was read by the job: its ingestion stamp, or
    ``computed_time`` for a record written before the stamp existed.

    >>> ingest_time(decode(b'{"event_id":"e","event_time":1,"correlation_id":"c","card_id":"k",'
    ...     b'"terminal_id":"t","device_id":null,"feature_set":"f","feature_set_version":1,'
    ...     b'"feature_set_hash":"h","features":{},"duplicate":false,"late":false,'
    ...     b'"watermark_lag_ms":-1,"computed_time":42}'))
    42
    """
    return record.computed_time if record.ingest_time == NOT_STAMPED else record.ingest_time


def encode(record: EnrichedFeatures) -> bytes:
    """JSON bytes of a record."""
    return _ENCODER.encode(record)


def decode(data: bytes | str) -> EnrichedFeatures:
    """A record from its JSON."""
    return _DECODER.decode(data)
