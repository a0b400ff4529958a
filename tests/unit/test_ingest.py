"""Ingestion without a JVM: dead letters are lossless up to their cap, the validation function
survives anything a producer sends, and the Kafka clients get the same security settings."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from core.config import ENV_SASL_PASSWORD, ENV_SASL_USERNAME, Settings, load_settings
from jobs import features as features_job
from riskstream.support.factories import payment
from schemas.records import DeadLetter, Transaction
from schemas.validation import decode
from udfs.ingest import (
    DEAD_LETTER_TAG,
    IngestRules,
    ValidateRecords,
    dead_letter_json,
    now_ms,
)

CAP = 32_768
SHADED_PLAIN = (
    "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.plain.PlainLoginModule"
)


class FakeCounter:
    def __init__(self) -> None:
        self.count = 0

    def inc(self) -> None:
        self.count += 1


class FakeHistogram:
    def update(self, *_: Any) -> None:
        pass


class FakeContext:
    """What ValidateRecords reads of Flink's context: the record timestamp."""

    def __init__(self, timestamp: int | None) -> None:
        self._timestamp = timestamp

    def timestamp(self) -> int | None:
        return self._timestamp


def _letter(raw: bytes | str | None, **kw: Any) -> tuple[str, DeadLetter]:
    text = dead_letter_json(
        raw,
        record_type="transaction",
        reason=kw.pop("reason", "bad"),
        field=kw.pop("field", None),
        topic="transactions",
        source="test",
        record_time=kw.pop("record_time", 1_700_000_000_000),
        max_bytes=kw.pop("max_bytes", CAP),
        **kw,
    )
    letter = decode("dead_letter", text)
    assert isinstance(letter, DeadLetter)
    return text, letter


def _bytes_of(letter: DeadLetter) -> bytes:
    assert letter.payload is not None
    if letter.payload_encoding == "base64":
        return base64.b64decode(letter.payload)
    return letter.payload.encode()


HOSTILE = {
    "escaped quotes": json.dumps({"event_id": "x", "note": '"' * 200_000}).encode(),
    "0xFF": b"\xff" * 100_000,
    "control characters": b'"' + b"\x01" * 50_000 + b'"',
    "empty": b"",
    "short text": b"{not json",
    "short binary": b"\x00\xfe\xc3\x28",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_dead_letter_fits_its_cap_and_keeps_the_bytes(name: str) -> None:
    raw = HOSTILE[name]
    text, letter = _letter(raw, partition=3, offset=41)
    assert len(text.encode()) <= CAP
    assert letter.payload_size == len(raw)
    assert letter.payload_sha256 == hashlib.sha256(raw).hexdigest()
    assert (letter.partition, letter.offset, letter.topic) == (3, 41, "transactions")
    assert letter.record_timestamp == 1_700_000_000_000
    kept = _bytes_of(letter)
    if letter.payload_truncated:
        assert raw.startswith(kept) and len(kept) > CAP // 8  # a useful prefix, not a stub
    else:
        assert kept == raw
    try:
        raw.decode("utf-8")
        assert letter.payload_encoding == "utf-8"
    except UnicodeDecodeError:
        assert letter.payload_encoding == "base64"


def test_a_tombstone_letter_has_no_payload() -> None:
    _, letter = _letter(None, reason="null value")
    assert letter.payload is None and letter.payload_sha256 is None
    assert letter.payload_size == 0 and not letter.payload_truncated


def test_letter_ids_are_stable_per_position_and_distinct_across_positions() -> None:
    first = _letter(b"", partition=0, offset=1)[1]
    again = _letter(b"", partition=0, offset=1, record_time=5)[1]
    other = _letter(b"", partition=0, offset=2)[1]
    assert first.event_id == again.event_id != other.event_id
    # without a position (file replays) the payload identifies it
    assert _letter(b"a")[1].event_id == _letter(b"a")[1].event_id != _letter(b"b")[1].event_id


def test_huge_reasons_and_field_paths_are_cut() -> None:
    text, letter = _letter(b"x", reason="r" * 100_000, field="$." + "f" * 100_000)
    assert len(letter.reason) <= 1024 and letter.field is not None and len(letter.field) <= 256
    assert len(text) <= CAP


def _validate(rules: IngestRules, value: Any, stamp: int | None = None) -> list[Any]:
    function = ValidateRecords("transaction", "transactions", "test", rules)
    function._rejected, function._events_in = FakeCounter(), FakeCounter()
    function._latency = FakeHistogram()
    return list(function.process_element(value, FakeContext(stamp)))


def _row(value: bytes | None, offset: int = 7) -> tuple[bytes | None, int, int, None]:
    return (value, 0, offset, None)


RULES = IngestRules(max_future_skew_ms=60_000, min_event_time_ms=946_684_800_000)


def _tx(event_time: int) -> bytes:
    return msgspec.json.encode(payment("tx-1", event_time))


def _rejection(out: list[Any]) -> DeadLetter:
    assert len(out) == 1 and out[0][0] is DEAD_LETTER_TAG
    letter = decode("dead_letter", out[0][1])
    assert isinstance(letter, DeadLetter)
    return letter


def test_valid_rows_and_lines_become_records() -> None:
    now = now_ms()
    for value in (_row(_tx(now)), _tx(now).decode()):
        out = _validate(RULES, value, now)
        assert len(out) == 1 and isinstance(out[0], Transaction)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"", "empty"),
        (b"\xff" * 10, "JSON"),
        (b"[1]", "expected"),
    ],
)
def test_anything_else_becomes_a_dead_letter(value: bytes | None, reason: str) -> None:
    letter = _rejection(_validate(RULES, _row(value), 123))
    assert reason in letter.reason and letter.offset == 7 and letter.record_timestamp == 123


def test_time_guards() -> None:
    now = now_ms()
    assert "min_event_time" in _rejection(_validate(RULES, _row(_tx(0)))).reason
    seconds_not_ms = now // 1000
    assert "min_event_time" in _rejection(_validate(RULES, _row(_tx(seconds_not_ms)))).reason
    assert "ahead" in _rejection(_validate(RULES, _row(_tx(now + 120_000)))).reason
    day = 86_400_000
    aged = IngestRules(60_000, 0, max_event_age_ms=day)
    assert (
        "older than its ingestion" in _rejection(_validate(aged, _row(_tx(now - 2 * day)))).reason
    )
    assert isinstance(_validate(aged, _row(_tx(now - day // 2)))[0], Transaction)


def test_age_bound_comes_from_lateness_plus_horizon_and_only_for_kafka() -> None:
    settings = load_settings(overrides={"ingest": {"retention_horizon_ms": 1000}}, environ={})
    live = IngestRules.from_settings(settings.features, settings.ingest, live=True)
    files = IngestRules.from_settings(settings.features, settings.ingest, live=False)
    assert live.max_event_age_ms == settings.features.allowed_lateness_ms + 1000
    assert files.max_event_age_ms is None
    off = load_settings(environ={})
    assert IngestRules.from_settings(off.features, off.ingest, live=True).max_event_age_ms is None


@pytest.fixture
def sasl_settings() -> Iterator[Settings]:
    yield load_settings(
        overrides={"kafka": {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}},
        environ={ENV_SASL_USERNAME: "svc", ENV_SASL_PASSWORD: 'pa"ss\\word'},
    )


def test_the_flink_clients_get_the_same_security(sasl_settings: Settings) -> None:
    java = sasl_settings.kafka.java_client_config()
    assert java["security.protocol"] == "SASL_SSL" and java["sasl.mechanism"] == "PLAIN"
    assert java["sasl.jaas.config"] == (
        f'{SHADED_PLAIN} required username="svc" password="pa\\"ss\\\\word";'
    )
    source = features_job.kafka_source(sasl_settings, "transactions", bounded=True)
    options = features_job.kafka_table_options(source)
    for key, value in java.items():
        assert options[f"properties.{key}"] == value
    assert options["scan.bounded.mode"] == "latest-offset"
    assert 'pa"ss' not in repr(source) and "svc" not in repr(source)  # secrets stay masked
    plain = load_settings(environ={})
    assert plain.kafka.java_client_config() == {"security.protocol": "PLAINTEXT"}


def test_source_options_follow_replay_bounds() -> None:
    settings = load_settings(
        overrides={"features": {"start_timestamp_ms": 5, "stop_timestamp_ms": 9}}, environ={}
    )
    options = features_job.kafka_table_options(
        features_job.kafka_source(settings, "labels", bounded=True, group_id="g")
    )
    assert options["topic"] == settings.kafka.topic("labels")
    assert options["properties.group.id"] == "g"
    assert (options["scan.startup.mode"], options["scan.startup.timestamp-millis"]) == (
        "timestamp",
        "5",
    )
    assert (options["scan.bounded.mode"], options["scan.bounded.timestamp-millis"]) == (
        "timestamp",
        "9",
    )
    unbounded = features_job.kafka_table_options(features_job.kafka_source(settings, "labels"))
    assert "scan.bounded.mode" not in unbounded


def test_the_watermark_ignores_record_timestamps_too_far_ahead() -> None:
    settings = load_settings(environ={})
    expression = features_job.watermark_expression(settings)
    skew, ooo = settings.features.max_future_skew_ms, settings.features.out_of_orderness_ms
    assert f"TIMESTAMPADD(MILLISECOND, {skew}, CURRENT_TIMESTAMP)" in expression
    assert "THEN CAST(NULL AS TIMESTAMP_LTZ(3))" in expression
    assert f"TIMESTAMPADD(MILLISECOND, -{ooo + 1}, `rowtime`)" in expression  # as the backfill


def test_a_replayed_line_with_a_lone_surrogate_is_kept_as_base64() -> None:
    _, letter = _letter("a\ud800b")
    assert letter.payload_encoding == "base64"
    assert _bytes_of(letter) == "a\ud800b".encode("utf-8", "surrogatepass")


def test_the_local_broker_can_require_sasl_plain(tmp_path: Any) -> None:
    from core.errors import ConfigError
    from riskstream.infra.kafka import LocalKafka

    secrets = {ENV_SASL_USERNAME: "svc", ENV_SASL_PASSWORD: 'p"w'}
    kafka = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "port": 19099}
    paths = {"run_dir": str(tmp_path)}
    broker = LocalKafka(load_settings(overrides={"kafka": kafka, "paths": paths}, environ=secrets))
    broker._write_config()
    lines = dict(x.split("=", 1) for x in broker.properties.read_text().splitlines())
    assert lines["listeners"].startswith("SASL_PLAINTEXT://127.0.0.1:19099,")
    assert lines["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert lines["message.max.bytes"] == "1048576"
    assert 'user_svc="p\\"w"' in lines["listener.name.sasl_plaintext.plain.sasl.jaas.config"]
    assert broker.properties.stat().st_mode & 0o077 == 0  # the password is in this file
    scram = {**kafka, "sasl_mechanism": "SCRAM-SHA-256"}
    other = LocalKafka(load_settings(overrides={"kafka": scram, "paths": paths}, environ=secrets))
    with pytest.raises(ConfigError, match="supports PLAINTEXT, or SASL_PLAINTEXT with PLAIN"):
        other._write_config()
