"""Turns a scored row into the job's outputs: decision, prediction-log record, alert, and the
scored payment the windowed analytics aggregate.

One Python step per payment: the decision goes to the main output (low latency, at least once,
with a decision id derived from the transaction id and model version so consumers can drop
re-sends), the prediction log and the alerts (blocked payments) to side outputs. It runs in thread
mode, so it imports only light modules (see :mod:`scoring.fields`).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
from pyflink.common import Row, Types
from pyflink.datastream import OutputTag, ProcessFunction, RuntimeContext

from schemas.feature_set import PAYMENT_FEATURES
from schemas.records import MAX_REASON_CODES, SCHEMA_VERSION, Decision, PredictionLog
from scoring import stacking
from scoring.fields import (
    BLOCK,
    DECISIONS,
    MODE_FULL,
    MODES,
    RESULT_COLUMNS,
    RESULT_LAYOUT,
    RESULT_VERSION,
    pack_features,
    split_reasons,
    unpack_features,
    unpack_result,
)
from scoring.guardrails import SAFE_MODE_REASON
from udfs import metrics
from udfs.analytics.records import ScoredPayment
from udfs.feature_rows import FEATURES, RECORD, Passthrough, pack_record, unpack_record
from udfs.guardrails import DecisionGuard, encode_alerts

PREDICTION_LOG_TAG = OutputTag("prediction-log", Types.STRING())
ALERTS_TAG = OutputTag("alerts", Types.STRING())
SCORED_TAG = OutputTag("scored-payments", Types.PICKLED_BYTE_ARRAY())
"""Every decided payment as a :class:`ScoredPayment`, with its event time, for the analytics."""
GUARDRAIL_TAG = OutputTag("guardrail-alerts", Types.STRING())
"""Guardrail alerts (``guardrail_alert.v1.json``), when guardrail alerts are wired."""
DECISION_NAMESPACE = uuid.UUID("6f1c3c55-8e53-4d43-9f61-2f6b5b1c2a10")
FEATURE_SET_VERSION = f"{PAYMENT_FEATURES.name}.v{PAYMENT_FEATURES.version}"
_ENCODER = msgspec.json.Encoder()
_NAMES = PAYMENT_FEATURES.names
AMOUNT = "amount"
SCORED_COLUMNS = (RECORD, FEATURES, *RESULT_COLUMNS)
"""The decision step's input row, in this order: the packed record and features carried through
the Table API (:mod:`udfs.feature_rows`) and the scoring UDF's three columns
(:data:`scoring.fields.RESULT_COLUMNS`)."""


def decision_id(transaction_id: str, model_version: str) -> str:
    """Deterministic decision id: the same payment scored by the same model gets the same id.

    >>> decision_id("tx-1", "v0001") == decision_id("tx-1", "v0001")
    True
    """
    return str(uuid.uuid5(DECISION_NAMESPACE, f"{transaction_id}|{model_version}"))


def _finite(value: float) -> float | None:
    """A score or feature for JSON: NaN or infinite becomes null."""
    return value if math.isfinite(value) else None


def scored_row(
    record: Passthrough,
    features: Sequence[float],
    *,
    probability: float,
    scores: Sequence[float],
    decision: str,
    mode: str,
    reasons: str,
    model_version: str,
) -> Row:
    """A row of :data:`SCORED_COLUMNS` as the job hands it to :class:`DecisionOutputs` (the
    packing of :mod:`udfs.feature_rows` and :mod:`scoring.columns`, one row at a time; for tests
    and tools)."""
    result = RESULT_LAYOUT.pack(
        probability, *scores, DECISIONS.index(decision), MODES.index(mode), RESULT_VERSION
    )
    return Row(pack_record(record), pack_features(features), result, reasons, model_version)


def _amount(features: dict[str, float | None]) -> float:
    amount = features[AMOUNT]
    return math.nan if amount is None else amount


def feature_values(blob: bytes) -> dict[str, float | None]:
    """Feature name -> value of a packed feature vector, NaN or infinite as None (for JSON).

    >>> from scoring.fields import pack_features
    >>> values = feature_values(pack_features([float("nan")] + [1.0] * (len(_NAMES) - 1)))
    >>> values[_NAMES[0]], values[_NAMES[1]]
    (None, 1.0)
    """
    values = unpack_features(blob)
    if all(map(math.isfinite, values)):
        return dict(zip(_NAMES, values, strict=True))
    return dict(zip(_NAMES, map(_finite, values), strict=True))


class DecisionOutputs(ProcessFunction):  # type: ignore[misc]
    """Scored row -> decision JSON (main output), prediction log and alert (side outputs), and
    the scored payment for the windowed analytics when ``analytics`` is on (PyFlink fails the job
    on a side output nobody consumes). With a ``guard`` (:mod:`udfs.guardrails`), each decision
    passes the guardrails first (out-of-range features, safe mode) and their alerts go to
    :data:`GUARDRAIL_TAG` when ``guardrail_alerts`` is on."""

    def __init__(
        self,
        source_name: str,
        analytics: bool = True,
        guard: DecisionGuard | None = None,
        guardrail_alerts: bool = False,
    ) -> None:
        self.source_name = source_name
        self.analytics = analytics
        self.guard = guard
        self.guardrail_alerts = guardrail_alerts
        self._latency = metrics.LatencyHistogram(None, ())  # records once open() ran

    def open(self, runtime_context: RuntimeContext) -> None:
        """The per-stage latency histograms (:mod:`udfs.metrics`)."""
        stages = (metrics.STAGE_FEATURES, metrics.STAGE_SCORE, metrics.STAGE_TOTAL)
        self._latency = metrics.LatencyHistogram(runtime_context.get_metrics_group(), stages)
        if self.guard is not None:
            self.guard.open(runtime_context)

    def process_element(self, row: Row, ctx: ProcessFunction.Context) -> Iterator[Any]:
        """Emit the outputs of one payment (a row of :data:`SCORED_COLUMNS`, read by position)."""
        now = int(time.time() * 1000)
        record_blob, features_blob, result_blob, reason_text, version = row
        record = unpack_record(record_blob)
        probability, scores, model_decision, mode = unpack_result(result_blob)
        tx_id = record.event_id
        ident = decision_id(tx_id, version)
        reasons = split_reasons(reason_text)[:MAX_REASON_CODES]
        probability = min(max(probability, 0.0), 1.0)
        received = record.ingest_time  # the job read the payment (validate step)
        features_done = record.computed_time
        features = feature_values(features_blob)
        verdict = None
        if self.guard is not None:
            verdict = self.guard.check(
                record.event_time, version, model_decision, features, mode == MODE_FULL
            )
            if verdict.safe_mode:
                reasons = [SAFE_MODE_REASON, *reasons][:MAX_REASON_CODES]
        decision = Decision(
            event_id=ident,
            event_time=record.event_time,
            schema_version=SCHEMA_VERSION,
            source=self.source_name,
            correlation_id=record.correlation_id,
            decision_id=ident,
            transaction_id=tx_id,
            transaction_time=record.event_time,
            card_id=record.card_id,
            decision=model_decision if verdict is None else verdict.decision,
            score=probability,
            reason_codes=reasons,
            model_version=version,
            feature_set_version=FEATURE_SET_VERSION,
            degraded=mode != MODE_FULL or (verdict is not None and verdict.safe_mode),
            received_time=received,
            processing_latency_ms=max(now - received, 0),
            event_latency_ms=now - record.event_time,
            out_of_range_features=None if verdict is None else verdict.out_of_range,
        )
        decision_json = _ENCODER.encode(decision).decode()
        self._latency.update(metrics.STAGE_FEATURES, features_done - decision.event_time)
        self._latency.update(metrics.STAGE_SCORE, max(now - features_done, 0))
        self._latency.update(metrics.STAGE_TOTAL, decision.event_latency_ms)
        yield decision_json
        log = PredictionLog(
            event_id=f"{ident}-log",
            event_time=decision.event_time,
            schema_version=SCHEMA_VERSION,
            source=self.source_name,
            correlation_id=decision.correlation_id,
            transaction_id=tx_id,
            transaction_time=decision.transaction_time,
            card_id=decision.card_id,
            model_version=version,
            feature_set_version=FEATURE_SET_VERSION,
            features=features,
            score=probability,
            decision=decision.decision,
            degraded=decision.degraded,
            latency_ms=decision.processing_latency_ms,
            decision_id=ident,
            model_scores=dict(zip(stacking.STACKED, map(_finite, scores), strict=True)),
            reason_codes=reasons,
            degraded_mode=mode,
            watermark_lag_ms=record.watermark_lag_ms,
            late=record.late,
            duplicate=record.duplicate,
        )
        yield PREDICTION_LOG_TAG, _ENCODER.encode(log).decode()
        if decision.decision == BLOCK:
            yield ALERTS_TAG, decision_json
        if verdict is not None and verdict.alerts and self.guardrail_alerts:
            for alert in encode_alerts(verdict):
                yield GUARDRAIL_TAG, alert
        if not self.analytics:
            return
        yield (
            SCORED_TAG,
            ScoredPayment(
                tx_id,
                decision.event_time,
                record.merchant_id,
                record.mcc,
                _amount(features),
                decision.decision,
                probability,
            ),
        )
