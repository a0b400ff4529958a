"""Decoding records from JSON bytes: round trips and error messages that name the field."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from core.errors import SchemaError
from schemas import RecordSchemaError, Transaction, decode, decode_transaction

VALID: dict[str, Any] = {
    "event_id": "tx-1",
    "event_time": 1_522_540_800_000,
    "schema_version": 1,
    "source": "simulator",
    "correlation_id": "tx-1",
    "card_id": "card-1",
    "customer_id": "cust-1",
    "merchant_id": "merch-1",
    "terminal_id": "term-1",
    "mcc": "5411",
    "amount": 12.5,
    "currency": "EUR",
    "channel": "online",
    "latitude": 50.85,
    "longitude": 4.35,
    "device_id": "dev-1",
}


def _raw(**changes: Any) -> bytes:
    doc = {**VALID, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def test_valid_transaction_round_trips() -> None:
    record = decode_transaction(_raw())
    assert isinstance(record, Transaction)
    assert record.country is None
    assert json.loads(msgspec.json.encode(record)) == {**VALID, "country": None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": -3}, "transaction: $.amount: expected `float` >= 0.0, found -3"),
        ({"amount": "3"}, "transaction: $.amount: expected `float`, found str"),
        ({"mcc": ...}, "transaction: $.mcc: required field missing"),
        ({"tip": 1}, "transaction: $.tip: unknown field"),
        ({"latitude": 91}, "transaction: $.latitude: expected `float` <= 90.0, found 91"),
        ({"channel": "atm"}, "transaction: $.channel: invalid enum value 'atm', found \"atm\""),
        ({"currency": "eur"}, "transaction: $.currency: expected `str` matching regex"),
        (
            {"device_id": None},
            "transaction: $.device_id: expected a device id when channel is online",
        ),
        ({"schema_version": 2}, "transaction: $.schema_version: "),
    ],
)
def test_errors_name_the_field_and_the_reason(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordSchemaError) as caught:
        decode_transaction(_raw(**changes))
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, SchemaError)
    assert caught.value.path is not None
    assert caught.value.path.startswith("$.")


def test_card_present_needs_no_device() -> None:
    assert decode_transaction(_raw(channel="card_present", device_id=None)).device_id is None


def test_bad_json_is_a_schema_error_without_a_path() -> None:
    with pytest.raises(RecordSchemaError, match="not valid JSON") as caught:
        decode_transaction(b'{"event_id": "tx-1", "amount": 1')
    assert caught.value.path is None


def test_label_type_must_agree_with_label() -> None:
    label = {
        "event_id": "lb-1", "event_time": 2, "schema_version": 1, "source": "chargebacks",
        "correlation_id": "tx-1", "transaction_id": "tx-1", "transaction_time": 1,
        "card_id": "card-1", "merchant_id": "m", "terminal_id": "t", "device_id": None,
        "label": "legit", "label_type": "chargeback",
    }  # fmt: skip
    with pytest.raises(RecordSchemaError, match=r"label: \$\.label_type: expected"):
        decode("label", json.dumps(label).encode())
    assert decode("label", json.dumps({**label, "label": "fraud"}).encode()).label == "fraud"


def test_unknown_record_type_is_refused() -> None:
    with pytest.raises(SchemaError, match="unknown record type"):
        decode("refund", b"{}")
