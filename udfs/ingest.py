"""Ingestion: validate raw Kafka payloads against the contracts; reject to the dead-letter topic.

Every payload either becomes a typed record (``schemas.records.Transaction`` or ``Label``) or a
``DeadLetter`` JSON on the side output: nothing is dropped silently. A record whose event time lies
further ahead of the wall clock than the configured skew is rejected too (a clock or unit bug would
otherwise poison event time). PyFlink's ``KafkaSource`` only exposes the record value (and its
timestamp), so the dead letter carries the topic but partition and offset are ``-1``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import msgspec
from pyflink.common import Types
from pyflink.datastream import OutputTag, ProcessFunction, RuntimeContext

from core.errors import SchemaError
from schemas.records import DeadLetter
from schemas.validation import RecordSchemaError, decode
from udfs import metrics

DEAD_LETTER_TAG = OutputTag("dead-letter", Types.STRING())
UNKNOWN_POSITION = -1
MAX_REASON_CHARS = 1024
ID_DIGEST_CHARS = 32
MS_PER_S = 1000


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


def dead_letter_json(
    raw: str,
    *,
    record_type: str,
    reason: str,
    field: str | None,
    topic: str,
    source: str,
    record_time: int | None,
) -> str:
    """A ``DeadLetter`` record (JSON) for a rejected payload; its id is a digest of the payload."""
    digest = hashlib.sha256(f"{topic}\0{raw}".encode()).hexdigest()[:ID_DIGEST_CHARS]
    received = now_ms()
    letter = DeadLetter(
        event_id=f"dl-{digest}",
        event_time=record_time if record_time is not None and record_time >= 0 else received,
        schema_version=1,
        source=source,
        correlation_id=f"dl-{digest}",
        payload=raw,
        payload_encoding="utf-8",
        record_type=record_type,
        reason=reason[:MAX_REASON_CHARS] or "rejected",
        field=field,
        topic=topic,
        partition=UNKNOWN_POSITION,
        offset=UNKNOWN_POSITION,
        received_time=received,
    )
    return msgspec.json.encode(letter).decode()


class ValidateRecords(ProcessFunction):  # type: ignore[misc]
    """Decode one contract (``transaction`` or ``label``); emit records, dead-letter the rest."""

    def __init__(self, record_type: str, topic: str, source: str, max_future_skew_ms: int) -> None:
        self.record_type = record_type
        self.topic = topic
        self.source = source
        self.max_future_skew_ms = max_future_skew_ms
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

    def process_element(self, value: str, ctx: ProcessFunction.Context) -> Iterator[Any]:
        """Yield the decoded record, or ``(DEAD_LETTER_TAG, json)``."""
        self._events_in.inc()
        stamp = ctx.timestamp()
        if stamp is not None and stamp > 0:  # no timestamp: None or Long.MIN_VALUE
            self._latency.update(metrics.STAGE_INGEST, now_ms() - stamp)
        try:
            record = decode(self.record_type, value)
        except RecordSchemaError as exc:
            yield DEAD_LETTER_TAG, self._letter(value, exc.reason, exc.path, ctx)
            return
        except SchemaError as exc:
            yield DEAD_LETTER_TAG, self._letter(value, str(exc), None, ctx)
            return
        skew = record.event_time - now_ms()
        if skew > self.max_future_skew_ms:
            reason = (
                f"event_time {record.event_time} is {skew} ms ahead of the wall clock; "
                f"expected at most {self.max_future_skew_ms} ms"
            )
            yield DEAD_LETTER_TAG, self._letter(value, reason, "$.event_time", ctx)
            return
        yield record

    def _letter(
        self, raw: str, reason: str, field: str | None, ctx: ProcessFunction.Context
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
        )
