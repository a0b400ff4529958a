"""The Flink functions of the feature job pickle (cloudpickle, as PyFlink ships them) and the
dead letters they write satisfy the dead-letter contract."""

from __future__ import annotations

import cloudpickle  # type: ignore[import-untyped]
import msgspec

from features.params import FeatureParams
from schemas.validation import decode
from tests.unit.features_helpers import T0
from udfs.feature_stages import CardStage, DeviceStage, TerminalStage, device_key
from udfs.ingest import IngestRules, ValidateRecords, dead_letter_json

PARAMS = FeatureParams(allowed_lateness_ms=123)


def test_stage_functions_pickle_with_their_parameters() -> None:
    for function in (CardStage(PARAMS), DeviceStage(PARAMS), TerminalStage(PARAMS)):
        restored = cloudpickle.loads(cloudpickle.dumps(function))
        assert type(restored) is type(function)
        assert restored.params == PARAMS
    rules = IngestRules(max_future_skew_ms=9, min_event_time_ms=1, max_event_age_ms=7)
    function = ValidateRecords("label", "labels", "src", rules)
    validate = cloudpickle.loads(cloudpickle.dumps(function))
    assert (validate.record_type, validate.topic, validate.rules) == ("label", "labels", rules)
    assert cloudpickle.loads(cloudpickle.dumps(device_key)) is device_key


def test_dead_letter_is_a_valid_contract_record() -> None:
    raw = '{"event_id": "x", "amount": -1}'
    text = dead_letter_json(
        raw,
        record_type="transaction",
        reason="$.amount: expected >= 0.0, found -1",
        field="$.amount",
        topic="transactions",
        source="riskstream-features",
        record_time=T0,
    )
    letter = decode("dead_letter", text)
    assert letter.payload == raw and letter.event_time == T0
    assert (letter.partition, letter.offset, letter.topic) == (-1, -1, "transactions")
    again = msgspec.json.decode(
        dead_letter_json(
            raw,
            record_type="transaction",
            reason="x",
            field=None,
            topic="transactions",
            source="s",
            record_time=None,
        )
    )
    assert again["event_id"] == letter.event_id  # stable id: a digest of topic and payload
