"""The scoring stage refuses features of another feature-set hash as dead letters (issue 12.7)."""

from __future__ import annotations

import json
import pickle

import msgspec
from pyflink.common import Row

from features import output
from features.output import FEATURE_SET_HASH, EnrichedFeatures
from schemas.feature_set import PAYMENT_FEATURES
from schemas.records import DeadLetter
from scoring.fields import unpack_features
from udfs.feature_gate import HASH_FIELD, REFUSED_TAG, FeatureRows, hash_mismatch
from udfs.feature_rows import COLUMNS, unpack_record

OTHER_HASH = "0" * 64


def _record(feature_set_hash: str = FEATURE_SET_HASH) -> EnrichedFeatures:
    return EnrichedFeatures(
        event_id="tx-1",
        event_time=1_700_000_000_000,
        correlation_id="corr-1",
        card_id="card-1",
        terminal_id="term-1",
        device_id=None,
        feature_set=PAYMENT_FEATURES.name,
        feature_set_version=PAYMENT_FEATURES.version,
        feature_set_hash=feature_set_hash,
        features=dict.fromkeys(PAYMENT_FEATURES.names, 1.5),
        duplicate=False,
        late=False,
        watermark_lag_ms=3,
        computed_time=1_700_000_000_010,
        merchant_id="m-1",
        mcc="5411",
    )


def _gate() -> FeatureRows:
    return FeatureRows(
        FEATURE_SET_HASH, "v0001", topic="features", source="scoring", max_bytes=65_536
    )


def test_the_models_hash_passes_and_another_is_named() -> None:
    assert hash_mismatch(FEATURE_SET_HASH, FEATURE_SET_HASH, "v0001") is None
    reason = hash_mismatch(OTHER_HASH, FEATURE_SET_HASH, "v0001")
    assert reason is not None
    assert OTHER_HASH[:12] in reason and FEATURE_SET_HASH[:12] in reason and "v0001" in reason


def test_a_matching_record_becomes_its_row() -> None:
    (row,) = list(_gate().process_element(output.encode(_record()).decode(), None))
    assert isinstance(row, Row)
    assert len(row) == len(COLUMNS)
    event_id, lag_time, features, record = row
    assert (event_id, lag_time) == ("tx-1", _record().computed_time)
    assert unpack_features(features) == (1.5,) * len(PAYMENT_FEATURES.names)
    passthrough = unpack_record(record)
    assert passthrough.event_time == _record().event_time and passthrough.mcc == "5411"
    assert passthrough.watermark_lag_ms == 3 and not passthrough.late


def test_a_structured_record_is_not_decoded_again() -> None:
    """The feature stage may hand the record itself over: the same row, no JSON in between."""
    (row,) = list(_gate().process_element(_record(), None))
    (from_json,) = list(_gate().process_element(output.encode(_record()).decode(), None))
    assert tuple(row) == tuple(from_json)
    ((tag, letter_json),) = list(_gate().process_element(_record(OTHER_HASH), None))
    assert tag is REFUSED_TAG
    letter = msgspec.json.decode(letter_json, type=DeadLetter)
    assert json.loads(letter.payload or "")["feature_set_hash"] == OTHER_HASH


def test_a_record_of_another_hash_is_a_dead_letter_with_reason_and_field() -> None:
    value = output.encode(_record(OTHER_HASH)).decode()
    ((tag, letter_json),) = list(_gate().process_element(value, None))
    assert tag is REFUSED_TAG
    letter = msgspec.json.decode(letter_json, type=DeadLetter)
    assert letter.field == HASH_FIELD
    assert "feature-set hash mismatch" in letter.reason
    assert letter.record_type == "features"
    assert letter.event_time == _record().event_time
    assert json.loads(letter.payload or "")["feature_set_hash"] == OTHER_HASH  # lossless


def test_an_undecodable_record_is_a_dead_letter_not_a_failure() -> None:
    ((tag, letter_json),) = list(_gate().process_element('{"event_id": 3}', None))
    assert tag is REFUSED_TAG
    assert msgspec.json.decode(letter_json, type=DeadLetter).reason.startswith("enriched")


def test_the_gate_pickles() -> None:
    gate = pickle.loads(pickle.dumps(_gate()))
    assert gate.expected_hash == FEATURE_SET_HASH
