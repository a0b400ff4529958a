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
from collections.abc import Iterator
from typing import Any

import msgspec
from pyflink.common import Row, Types
from pyflink.datastream import OutputTag, ProcessFunction, RuntimeContext

from schemas.feature_set import PAYMENT_FEATURES
from schemas.records import MAX_REASON_CODES, SCHEMA_VERSION, Decision, PredictionLog
from scoring import stacking
from scoring.fields import BLOCK, MODE_FULL, SCORE_PREFIX, split_reasons
from scoring.guardrails import SAFE_MODE_REASON
from udfs import metrics
from udfs.analytics.records import ScoredPayment
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


def decision_id(transaction_id: str, model_version: str) -> str:
    """Deterministic decision id: the same payment scored by the same model gets the same id.

    >>> decision_id("tx-1", "v0001") == decision_id("tx-1", "v0001")
    True
    """
    return str(uuid.uuid5(DECISION_NAMESPACE, f"{transaction_id}|{model_version}"))


def _finite(value: Any) -> float | None:
    """A score or feature for JSON: NaN or missing becomes null."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


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
        """Emit the outputs of one payment."""
        now = int(time.time() * 1000)
        tx_id = row["event_id"]
        version = row["model_version"]
        ident = decision_id(tx_id, version)
        mode = row["mode"]
        reasons = split_reasons(row["reasons"])[:MAX_REASON_CODES]
        probability = min(max(float(row["probability"]), 0.0), 1.0)
        received = int(row["ingest_time"])  # the job read the payment (validate step)
        features_done = int(row["computed_time"])
        features = {name: _finite(row[name]) for name in PAYMENT_FEATURES.names}
        verdict = None
        if self.guard is not None:
            verdict = self.guard.check(int(row["event_time"]), version, row["decision"], features)
            if verdict.safe_mode:
                reasons = [SAFE_MODE_REASON, *reasons][:MAX_REASON_CODES]
        decision = Decision(
            event_id=ident,
            event_time=int(row["event_time"]),
            schema_version=SCHEMA_VERSION,
            source=self.source_name,
            correlation_id=row["correlation_id"],
            decision_id=ident,
            transaction_id=tx_id,
            transaction_time=int(row["event_time"]),
            card_id=row["card_id"],
            decision=row["decision"] if verdict is None else verdict.decision,
            score=probability,
            reason_codes=reasons,
            model_version=version,
            feature_set_version=FEATURE_SET_VERSION,
            degraded=mode != MODE_FULL or (verdict is not None and verdict.safe_mode),
            received_time=received,
            processing_latency_ms=max(now - received, 0),
            event_latency_ms=now - int(row["event_time"]),
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
            model_scores={m: _finite(row[SCORE_PREFIX + m]) for m in stacking.STACKED},
            reason_codes=reasons,
            degraded_mode=mode,
            watermark_lag_ms=int(row["watermark_lag_ms"]),
            late=bool(row["late"]),
            duplicate=bool(row["duplicate"]),
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
                row["merchant_id"],
                row["mcc"],
                float(row["amount"]),
                decision.decision,
                probability,
            ),
        )
