"""Typed records for every event contract, mirroring ``schemas/json/*.v1.json`` field for field.

msgspec decodes JSON bytes straight into these frozen structs and checks the constraints
(``msgspec.Meta``) on the way, which is what makes validation cheap enough for the hot path.
Policy shared with the JSON Schema files: unknown fields are rejected, integer fields need an
integer JSON token, ``null`` is only accepted where the contract says so. Cross-field rules live in
``__post_init__`` and raise ``ValueError`` prefixed with the JSON path, which msgspec turns into a
``ValidationError``; :mod:`schemas.validation` rewrites all of them into :class:`SchemaError`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

SCHEMA_VERSION: Final = 1
MAX_EVENT_TIME_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z: anything later is a unit bug.
MAX_ID_LENGTH = 128
MAX_AMOUNT = 10_000_000.0
MAX_REASON_CODES = 16
MAX_REASON_CODE_LENGTH = 64
MAX_REASON_LENGTH = 1024
MAX_FIELD_PATH_LENGTH = 256
MAX_SCENARIO_LENGTH = 64
MAX_OUT_OF_RANGE_FEATURES = 64
MAX_ALERT_MESSAGE_LENGTH = 1024

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
EpochMs = Annotated[int, msgspec.Meta(ge=0, le=MAX_EVENT_TIME_MS)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Mcc = Annotated[str, msgspec.Meta(min_length=4, max_length=4, pattern="^[0-9]{4}$")]
Currency = Annotated[str, msgspec.Meta(min_length=3, max_length=3, pattern="^[A-Z]{3}$")]
Country = Annotated[str, msgspec.Meta(min_length=2, max_length=2, pattern="^[A-Z]{2}$")]
Amount = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_AMOUNT)]
Latitude = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
Longitude = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
ReasonCode = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REASON_CODE_LENGTH)]
Scenario = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SCENARIO_LENGTH)]
Channel = Literal["card_present", "online"]
DecisionClass = Literal["approve", "step_up", "block"]
DegradedMode = Literal["full", "shed", "rules_only"]
FRAUD_LABEL_TYPES = frozenset({"chargeback", "fraud_report"})
LEGIT_LABEL_TYPES = frozenset({"confirmed_legitimate"})


class Transaction(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A payment authorisation request (``transaction.v1.json``)."""

    event_id: Id
    event_time: EpochMs
    schema_version: Literal[1]
    source: Id
    correlation_id: Id
    card_id: Id
    customer_id: Id
    merchant_id: Id
    terminal_id: Id
    mcc: Mcc
    amount: Amount
    currency: Currency
    channel: Channel
    latitude: Latitude
    longitude: Longitude
    device_id: Id | None
    country: Country | None = None

    def __post_init__(self) -> None:
        """Online payments always come from a device: fraud features key on it."""
        if self.channel == "online" and self.device_id is None:
            raise ValueError("$.device_id: expected a device id when channel is online, found null")


NOT_STAMPED: Final = -1
"""``ingest_time`` of a record that was never stamped by the validate step (older records)."""


class IngestedTransaction(Transaction, frozen=True, forbid_unknown_fields=True):
    """A :class:`Transaction` as the job holds it once validated: the payment plus
    ``ingest_time``, the processing time (epoch ms UTC) at which the validate step read it.

    Not part of ``transaction.v1.json``: producers cannot set it (payloads are decoded as
    :class:`Transaction`, which rejects the field). Every latency the job reports and the lag that
    drives load shedding are measured from it (docs/contracts.md, "Times and latencies"); the
    feature logic never reads it.
    """

    ingest_time: int = NOT_STAMPED

    @classmethod
    def stamp(cls, tx: Transaction, ingest_time: int) -> IngestedTransaction:
        """``tx`` stamped with ``ingest_time`` (about 0.5 us: one positional copy)."""
        fields: tuple[Any, ...] = (*msgspec.structs.astuple(tx), ingest_time)
        return cls(*fields)


def ingest_time_of(tx: Transaction, default: int) -> int:
    """The ingestion stamp of ``tx``, or ``default`` for an unstamped transaction (one the
    Python driver or a test built without the validate step)."""
    if isinstance(tx, IngestedTransaction) and tx.ingest_time != NOT_STAMPED:
        return tx.ingest_time
    return default


class Label(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Delayed ground truth for one transaction (``label.v1.json``)."""

    event_id: Id
    event_time: EpochMs
    schema_version: Literal[1]
    source: Id
    correlation_id: Id
    transaction_id: Id
    transaction_time: EpochMs
    card_id: Id
    merchant_id: Id
    terminal_id: Id
    device_id: Id | None
    label: Literal["fraud", "legit"]
    label_type: Literal["chargeback", "fraud_report", "confirmed_legitimate"]
    scenario: Scenario | None = None

    def __post_init__(self) -> None:
        """A chargeback never says legit and a confirmation never says fraud."""
        allowed = FRAUD_LABEL_TYPES if self.label == "fraud" else LEGIT_LABEL_TYPES
        if self.label_type not in allowed:
            raise ValueError(
                f"$.label_type: expected one of {sorted(allowed)} for label {self.label!r}, "
                f"found {self.label_type!r}"
            )


class Decision(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The scoring job's verdict on one transaction (``decision.v1.json``); the optional
    ``out_of_range_features`` is left out of the JSON when it was not measured."""

    event_id: Id
    event_time: EpochMs
    schema_version: Literal[1]
    source: Id
    correlation_id: Id
    decision_id: Id
    transaction_id: Id
    transaction_time: EpochMs
    card_id: Id
    decision: DecisionClass
    score: Probability
    reason_codes: Annotated[list[ReasonCode], msgspec.Meta(max_length=MAX_REASON_CODES)]
    model_version: Id
    feature_set_version: Id
    degraded: bool
    received_time: EpochMs
    processing_latency_ms: NonNegativeInt
    event_latency_ms: int
    out_of_range_features: (
        Annotated[list[ReasonCode], msgspec.Meta(max_length=MAX_OUT_OF_RANGE_FEATURES)] | None
    ) = None
    """Model inputs outside their training range (scoring/guardrails.py); None: not measured."""


class PredictionLog(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the model saw and said (``prediction_log.v1.json``)."""

    event_id: Id
    event_time: EpochMs
    schema_version: Literal[1]
    source: Id
    correlation_id: Id
    transaction_id: Id
    transaction_time: EpochMs
    card_id: Id
    model_version: Id
    feature_set_version: Id
    features: dict[str, float | None]
    score: Probability
    decision: DecisionClass
    degraded: bool
    latency_ms: NonNegativeInt
    decision_id: Id
    model_scores: dict[str, float | None]
    reason_codes: Annotated[list[ReasonCode], msgspec.Meta(max_length=MAX_REASON_CODES)]
    degraded_mode: DegradedMode
    watermark_lag_ms: int
    late: bool
    duplicate: bool


class DeadLetter(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A rejected record with the reason (``dead_letter.v1.json``).

    Lossless up to a size cap: ``payload`` is the original bytes (UTF-8 text, or base64 when
    they are not valid UTF-8), all of them unless ``payload_truncated``; ``payload_size`` and
    ``payload_sha256`` describe the whole original, and topic, partition and offset say where it
    is. A tombstone (null Kafka value) has ``payload`` null.
    """

    event_id: Id
    event_time: EpochMs
    schema_version: Literal[1]
    source: Id
    correlation_id: Id
    payload: str | None
    payload_encoding: Literal["utf-8", "base64"]
    payload_size: NonNegativeInt
    payload_sha256: str | None
    payload_truncated: bool
    record_type: Id
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REASON_LENGTH)]
    field: Annotated[str, msgspec.Meta(max_length=MAX_FIELD_PATH_LENGTH)] | None
    topic: Id
    partition: Annotated[int, msgspec.Meta(ge=-1)]
    offset: Annotated[int, msgspec.Meta(ge=-1)]
    record_timestamp: int | None
    received_time: EpochMs


class DecisionCounts(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Decisions by class inside one window."""

    approve: NonNegativeInt
    step_up: NonNegativeInt
    block: NonNegativeInt


class WindowAnalytics(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One (re)firing of a windowed aggregate (``window_analytics.v1.json``)."""

    event_id: Id
    event_time: EpochMs
    schema_version: Literal[1]
    source: Id
    correlation_id: Id
    window_kind: Literal["tumbling", "sliding", "session"]
    window_size_ms: Annotated[int, msgspec.Meta(ge=1)]
    key_kind: Id
    key: Id
    window_start: EpochMs
    window_end: EpochMs
    revision: NonNegativeInt
    transactions: NonNegativeInt
    amount_sum: Annotated[float, msgspec.Meta(ge=0.0)]
    decisions: DecisionCounts
    mean_score: Probability | None


GuardrailAlertKind = Literal["safe_mode_on", "safe_mode_off", "out_of_range"]


class GuardrailAlert(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A guardrail of the scoring job changed state (``guardrail_alert.v1.json``)."""

    event_id: Id
    event_time: EpochMs
    schema_version: Literal[1]
    source: Id
    correlation_id: Id
    kind: GuardrailAlertKind
    safe_mode: bool
    model_version: Id
    subtask: NonNegativeInt
    window_start: EpochMs
    window_end: EpochMs
    rows: NonNegativeInt
    block_share: Probability
    step_up_share: Probability
    out_of_range_share: Probability
    expected_block_share: Probability
    expected_step_up_share: Probability
    trip_multiple: Annotated[float, msgspec.Meta(ge=0.0)]
    held_ms: NonNegativeInt
    out_of_range_features: dict[str, NonNegativeInt]
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ALERT_MESSAGE_LENGTH)]
