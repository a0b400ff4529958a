"""Ingestion: raw records in, a typed record or a lossless, size-capped dead letter out.

Every record either becomes a typed record (``schemas.records.Transaction`` or ``Label``) or a
``DeadLetter`` JSON on the side output: nothing is dropped silently and nothing a producer sends
can fail the operator. The Kafka sources deliver ``Row(value, partition, offset, rowtime)`` with
the value as raw bytes (``None`` for a tombstone) and the Kafka record timestamp as the stream
timestamp (:mod:`jobs.features`); a file replay (the backfill) delivers the payload text. A valid
payment is stamped with its ingestion time (``IngestedTransaction.ingest_time``, the wall clock
when it was validated), from which the job measures its latencies and load-shedding lag.

A dead letter keeps the original bytes (UTF-8 text, or base64 when they are not valid UTF-8), their
size and SHA-256, the source topic, partition, offset and record timestamp; a payload too large
for ``IngestRules.dead_letter_max_bytes`` is cut to the longest prefix that fits. Time guards:
an event_time before ``min_event_time_ms``, older than ``max_event_age_ms`` before the time the
record is read (Kafka sources only, when configured), or further than ``max_future_skew_ms``
ahead of it is rejected (docs/ingestion.md).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from pyflink.common import Types
from pyflink.datastream import OutputTag, ProcessFunction, RuntimeContext

from core.config import FeatureJobSettings, IngestSettings
from core.errors import SchemaError
from schemas.records import (
    MAX_EVENT_TIME_MS,
    MAX_FIELD_PATH_LENGTH,
    MAX_REASON_LENGTH,
    DeadLetter,
    IngestedTransaction,
    Transaction,
)
from schemas.validation import RecordSchemaError, decode
from udfs import metrics

DEAD_LETTER_TAG = OutputTag("dead-letter", Types.STRING())
UNKNOWN_POSITION = -1
MAX_REASON_CHARS = MAX_REASON_LENGTH
ID_DIGEST_CHARS = 32
MS_PER_S = 1000
FIT_ATTEMPTS = 8
"""Rounds of shrinking a too-large payload prefix (each aims at the room left; then halves)."""
DEFAULT_DEAD_LETTER_MAX_BYTES = 262_144
TOMBSTONE_REASON = "null value (a tombstone): expected a JSON record"
EMPTY_REASON = "empty value: expected a JSON record"


@dataclass(frozen=True)
class IngestRules:
    """What a validation stage accepts (from the ``features`` and ``ingest`` settings)."""

    max_future_skew_ms: int
    min_event_time_ms: int = 0
    max_event_age_ms: int | None = None
    """Oldest accepted event_time relative to the time of reading; None = no such bound."""
    dead_letter_max_bytes: int = DEFAULT_DEAD_LETTER_MAX_BYTES

    @classmethod
    def from_settings(
        cls, features: FeatureJobSettings, ingest: IngestSettings, live: bool
    ) -> IngestRules:
        """From the ``features`` and ``ingest`` settings sections; ``live`` (Kafka) sources get
        the age bound ``features.allowed_lateness_ms + ingest.retention_horizon_ms`` when the
        horizon is set, file replays never (their "ingestion" is the replay)."""
        age = None
        if live and ingest.retention_horizon_ms > 0:
            age = features.allowed_lateness_ms + ingest.retention_horizon_ms
        return cls(
            max_future_skew_ms=features.max_future_skew_ms,
            min_event_time_ms=ingest.min_event_time_ms,
            max_event_age_ms=age,
            dead_letter_max_bytes=ingest.dead_letter_max_bytes,
        )


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _encode_prefix(data: bytes, size: int, text: bool) -> str:
    """The first ``size`` bytes as UTF-8 text (cut at a character boundary) or base64."""
    if text:
        return data[:size].decode("utf-8", errors="ignore")
    return base64.b64encode(data[:size]).decode("ascii")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def dead_letter_json(
    raw: bytes | str | None,
    *,
    record_type: str,
    reason: str,
    field: str | None,
    topic: str,
    source: str,
    record_time: int | None,
    partition: int = UNKNOWN_POSITION,
    offset: int = UNKNOWN_POSITION,
    max_bytes: int = DEFAULT_DEAD_LETTER_MAX_BYTES,
    received: int | None = None,
) -> str:
    """A ``DeadLetter`` record (JSON) for a rejected value, at most ``max_bytes`` long.

    Its id is stable across re-reads: a digest of topic, partition and offset when they are
    known, else of topic and payload.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    received = now_ms() if received is None else received
    sha = hashlib.sha256(data).hexdigest() if data is not None else None
    if partition >= 0 and offset >= 0:
        identity = f"{topic}\0{partition}\0{offset}"
    else:
        identity = f"{topic}\0{sha}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:ID_DIGEST_CHARS]
    text = data is None or _is_utf8(data)
    size = 0 if data is None else len(data)
    stamped = record_time is not None and 0 <= record_time <= MAX_EVENT_TIME_MS

    def letter(kept: int) -> bytes:
        payload = None if data is None else _encode_prefix(data, kept, text)
        return msgspec.json.encode(
            DeadLetter(
                event_id=f"dl-{digest}",
                event_time=record_time if stamped and record_time is not None else received,
                schema_version=1,
                source=source,
                correlation_id=f"dl-{digest}",
                payload=payload,
                payload_encoding="utf-8" if text else "base64",
                payload_size=size,
                payload_sha256=sha,
                payload_truncated=kept < size,
                record_type=record_type,
                reason=reason[:MAX_REASON_CHARS] or "rejected",
                field=None if field is None else field[:MAX_FIELD_PATH_LENGTH],
                topic=topic,
                partition=partition,
                offset=offset,
                record_timestamp=record_time,
                received_time=received,
            )
        )

    kept, attempts = size, 0
    encoded = letter(kept)
    empty = len(letter(0)) if len(encoded) > max_bytes else 0  # the letter around no payload
    while len(encoded) > max_bytes and kept > 0:
        # The encoded payload grows about linearly with the prefix: aim at the room left, and
        # halve if that does not converge (escapes are not spread evenly).
        room, cost = max_bytes - empty, len(encoded) - empty
        aim = kept * max(room, 0) // max(cost, 1)
        kept = min(aim, kept - 1) if attempts < FIT_ATTEMPTS else kept // 2
        if not text:
            kept -= kept % 3  # whole base64 groups
        encoded = letter(kept)
        attempts += 1
    return encoded.decode()


class ValidateRecords(ProcessFunction):  # type: ignore[misc]
    """Decode one contract (``transaction`` or ``label``); emit records, dead-letter the rest.

    A valid payment leaves as an :class:`~schemas.records.IngestedTransaction` stamped with the
    processing time it was read and validated (``ingest_time``, the start of every latency the
    job reports); labels leave as they are.

    Input: a Kafka ``Row(value bytes|None, partition, offset, rowtime)`` or the payload text of
    a file replay. Nothing raised by a payload escapes this function.
    """

    def __init__(self, record_type: str, topic: str, source: str, rules: IngestRules) -> None:
        self.record_type = record_type
        self.topic = topic
        self.source = source
        self.rules = rules
        self._rejected: Any = None
        self._events_in: Any = None
        self._latency: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        """Register the rejected-records counter."""
        group = runtime_context.get_metrics_group()
        self._rejected = group.counter("deadLettered")
        self._events_in = metrics.counter(
            group, metrics.EVENTS_IN, metrics.LABEL_RECORD_TYPE, self.record_type
        )
        self._latency = metrics.LatencyHistogram(group, (metrics.STAGE_INGEST,))

    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Iterator[Any]:
        """Yield the decoded record, or ``(DEAD_LETTER_TAG, json)``."""
        self._events_in.inc()
        received = now_ms()  # the ingestion time
        stamp = ctx.timestamp()
        if stamp is not None and stamp > 0:  # no timestamp: None or Long.MIN_VALUE
            self._latency.update(metrics.STAGE_INGEST, received - stamp)
        if isinstance(value, str):
            payload: bytes | str | None = value
            partition = offset = UNKNOWN_POSITION
        else:
            payload, partition, offset = value[0], value[1], value[2]
        position = (partition, offset)
        if payload is None:
            yield DEAD_LETTER_TAG, self._letter(payload, TOMBSTONE_REASON, None, ctx, position)
            return
        if len(payload) == 0:
            yield DEAD_LETTER_TAG, self._letter(payload, EMPTY_REASON, None, ctx, position)
            return
        try:
            record = decode(self.record_type, payload)
        except RecordSchemaError as exc:
            yield DEAD_LETTER_TAG, self._letter(payload, exc.reason, exc.path, ctx, position)
            return
        except SchemaError as exc:
            yield DEAD_LETTER_TAG, self._letter(payload, str(exc), None, ctx, position)
            return
        except Exception as exc:  # a payload must never fail the job
            why = f"undecodable: {type(exc).__name__}: {exc}"
            yield DEAD_LETTER_TAG, self._letter(payload, why, None, ctx, position)
            return
        reason = self._time_problem(record.event_time, received)
        if reason is not None:
            yield DEAD_LETTER_TAG, self._letter(payload, reason, "$.event_time", ctx, position)
            return
        if isinstance(record, Transaction):
            # The ingestion stamp: every latency and the load-shedding lag start here.
            yield IngestedTransaction.stamp(record, received)
            return
        yield record

    def _time_problem(self, event_time: int, received: int) -> str | None:
        """Why ``event_time`` is refused, or None."""
        rules = self.rules
        if event_time < rules.min_event_time_ms:
            return (
                f"event_time {event_time} is before ingest.min_event_time_ms "
                f"{rules.min_event_time_ms}: expected epoch milliseconds of a real event"
            )
        if rules.max_event_age_ms is not None and received - event_time > rules.max_event_age_ms:
            return (
                f"event_time {event_time} is {received - event_time} ms older than its ingestion "
                f"at {received}; expected at most {rules.max_event_age_ms} ms "
                "(features.allowed_lateness_ms + ingest.retention_horizon_ms)"
            )
        skew = event_time - received
        if skew > rules.max_future_skew_ms:
            return (
                f"event_time {event_time} is {skew} ms ahead of the wall clock; "
                f"expected at most {rules.max_future_skew_ms} ms"
            )
        return None

    def _letter(
        self,
        raw: bytes | str | None,
        reason: str,
        field: str | None,
        ctx: ProcessFunction.Context,
        position: tuple[int, int],
    ) -> str:
        self._rejected.inc()
        return dead_letter_json(
            raw,
            record_type=self.record_type,
            reason=reason,
            field=field,
            topic=self.topic,
            source=self.source,
            record_time=ctx.timestamp(),
            partition=position[0],
            offset=position[1],
            max_bytes=self.rules.dead_letter_max_bytes,
        )
