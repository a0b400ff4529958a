"""The enriched-payment seam: packed vectors and contexts round-trip, and bad widths are refused."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import SchemaError
from schemas.enriched import (
    EnrichedContext,
    pack_context,
    pack_features,
    unpack_context,
    unpack_features,
)
from schemas.feature_set import PAYMENT_FEATURES

WIDTH = len(PAYMENT_FEATURES.names)


def _context(event_id: str = "tx-1", device_id: str | None = None) -> EnrichedContext:
    return EnrichedContext(
        event_id=event_id,
        event_time=1_700_000_000_000,
        ingest_time=1_700_000_000_005,
        features_time=1_700_000_000_007,
        correlation_id="c-1",
        card_id="card-1",
        terminal_id="t-1",
        merchant_id="m-1",
        mcc="5411",
        device_id=device_id,
        feature_set_hash=PAYMENT_FEATURES.spec_hash(),
        duplicate=False,
        late=True,
        watermark_lag_ms=-1,
    )


def test_a_batch_of_vectors_unpacks_to_the_same_matrix() -> None:
    rows = np.arange(3 * WIDTH, dtype=np.float64).reshape(3, WIDTH) / 7.0
    rows[1, 0] = -1.0
    matrix = unpack_features([pack_features(list(r)) for r in rows])
    assert matrix.shape == (3, WIDTH)
    assert np.array_equal(matrix, rows)


def test_a_vector_of_the_wrong_width_is_refused_with_both_widths() -> None:
    with pytest.raises(SchemaError, match=f"expected {WIDTH} values"):
        pack_features([1.0] * (WIDTH - 1))
    with pytest.raises(SchemaError, match="found a vector of 8 bytes"):
        unpack_features([pack_features([0.0] * WIDTH), b"\x00" * 8])


def test_contexts_round_trip_with_and_without_a_device() -> None:
    for context in (_context(), _context("tx-2", device_id="dev-9")):
        assert unpack_context(pack_context(context)) == context


def test_a_truncated_context_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="enriched context"):
        unpack_context(pack_context(_context())[:-3])
