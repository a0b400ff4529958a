"""The enriched-features record the feature job emits (one per payment) and its JSON encoding.

It carries the feature-set name, version and hash, so the scoring stage can refuse features a model
was not trained on, plus the flags and the watermark lag at the moment of computation.
"""

from __future__ import annotations

import msgspec

from schemas.feature_set import PAYMENT_FEATURES, FeatureValues
from schemas.records import Transaction

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
    merchant_id: str = ""
    """The payment's merchant and merchant category, for the windowed analytics downstream."""
    mcc: str = ""


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
) -> EnrichedFeatures:
    """Assemble the record of transaction ``tx``; ``features`` maps each name to its value."""
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
    )


def encode(record: EnrichedFeatures) -> bytes:
    """JSON bytes of a record."""
    return _ENCODER.encode(record)


def decode(data: bytes | str) -> EnrichedFeatures:
    """A record from its JSON."""
    return _DECODER.decode(data)
