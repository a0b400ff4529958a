"""Latency is measured from ingestion (issue 16 item 4), without a JVM.

The validate step stamps each payment with the time it read it; the stamp passes the card, device
and terminal stages untouched (the features do not depend on it), reaches the enriched record and
the scoring row, and every latency field of the decision and the prediction log, and the lag
that drives load shedding, start from it. A payment that waited in front of the feature stages
is seen lagging: before the stamp, shedding measured from the moment its features were complete.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import cloudpickle  # type: ignore[import-untyped]
import msgspec
import numpy as np
import pandas as pd
import pytest
from pyflink.common import Row

from features import output
from features.params import FeatureParams
from riskstream.support.factories import label_for, payment
from schemas.feature_set import PAYMENT_FEATURES, FeatureValues, PaymentFeatureValues
from schemas.records import NOT_STAMPED, IngestedTransaction, Transaction, ingest_time_of
from schemas.validation import decode
from scoring import stacking
from scoring.fields import MODE_FULL
from udfs import score_udf
from udfs.decisions import PREDICTION_LOG_TAG, DecisionOutputs, scored_row
from udfs.feature_rows import COLUMNS, LAG_TIME, RECORD, Passthrough, record_row, unpack_record
from udfs.feature_stages import CardStage, DeviceStage, TerminalStage
from udfs.ingest import IngestRules, ValidateRecords, now_ms

PARAMS = FeatureParams()
RULES = IngestRules(max_future_skew_ms=60_000, min_event_time_ms=946_684_800_000)
WAITED_MS = 500
"""How long the payment of the lag tests sat in front of the feature stages."""


class _Count:
    def inc(self, *_: Any) -> None:
        pass


class _Sink:
    def update(self, *_: Any) -> None:
        pass

    def set(self, *_: Any) -> None:
        pass


class _State:
    """A ValueState of one key."""

    def __init__(self) -> None:
        self.blob: Any = None

    def value(self) -> Any:
        return self.blob

    def update(self, blob: Any) -> None:
        self.blob = blob


class _Timers:
    def current_watermark(self) -> int:
        return -1

    def register_event_time_timer(self, _timestamp: int) -> None:
        pass


class _Context:
    """What the validate step and the keyed stages read of Flink's context."""

    def __init__(self, timestamp: int | None = None) -> None:
        self._timestamp = timestamp

    def timestamp(self) -> int | None:
        return self._timestamp

    def timer_service(self) -> _Timers:
        return _Timers()


def _validate(record_type: str, payload: bytes) -> list[Any]:
    function = ValidateRecords(record_type, f"{record_type}s", "test", RULES)
    function._rejected, function._events_in, function._latency = _Count(), _Count(), _Sink()
    return list(function.process_element((payload, 0, 7, None), _Context(1)))


def _stages() -> tuple[CardStage, DeviceStage, TerminalStage]:
    card, device, terminal = CardStage(PARAMS), DeviceStage(PARAMS), TerminalStage(PARAMS)
    card._state, device._state, terminal._state = _State(), _State(), _State()
    card._late, card._duplicates, card._lag_gauge = _Count(), _Count(), _Sink()
    return card, device, terminal


def _through_the_stages(txs: Sequence[Transaction]) -> Iterator[output.EnrichedFeatures]:
    """Each payment through card -> device -> terminal (one key each), as the job chains them."""
    card, device, terminal = _stages()
    ctx = _Context()
    for tx in txs:
        for partial in card.process_element(tx, ctx):
            for record in device.process_element1(partial, ctx):
                for enriched in terminal.process_element1(record, ctx):
                    yield output.decode(enriched)


def test_the_validate_step_stamps_payments_with_the_time_it_read_them() -> None:
    before = now_ms()
    tx = payment("tx-1", before - 1_000, device="dev-1")
    (stamped,) = _validate("transaction", msgspec.json.encode(tx))
    after = now_ms()
    assert isinstance(stamped, IngestedTransaction) and isinstance(stamped, Transaction)
    assert before <= stamped.ingest_time <= after
    assert msgspec.structs.astuple(stamped)[:-1] == msgspec.structs.astuple(tx)
    # labels need no stamp: they pass unchanged
    (label,) = _validate("label", msgspec.json.encode(label_for(tx, before)))
    assert type(label).__name__ == "Label"


def test_producers_cannot_set_the_stamp() -> None:
    doc = json.loads(msgspec.json.encode(payment("tx-1", now_ms())))
    out = _validate("transaction", json.dumps({**doc, "ingest_time": 1}).encode())
    assert len(out) == 1 and isinstance(out[0], tuple)  # (DEAD_LETTER_TAG, letter)
    assert decode("dead_letter", out[0][1]).field == "$.ingest_time"


def test_the_stamp_passes_the_stages_untouched_and_changes_no_feature() -> None:
    t0 = now_ms() - 3_600_000
    plain = [
        payment(f"tx-{i}", t0 + i * 60_000, amount=10.0 + i, device="dev-1" if i % 2 else None)
        for i in range(6)
    ]
    stamps = [t0 + 5_000_000 + 17 * i for i in range(6)]
    stamped = [IngestedTransaction.stamp(tx, s) for tx, s in zip(plain, stamps, strict=True)]
    with_stamp = list(_through_the_stages(stamped))
    without = list(_through_the_stages(plain))
    assert [r.ingest_time for r in with_stamp] == stamps
    assert [r.features for r in with_stamp] == [r.features for r in without]
    # an unstamped payment (the Python driver, tests) is "read" when its features are complete
    assert all(r.ingest_time == r.computed_time for r in without)
    assert cloudpickle.loads(cloudpickle.dumps(stamped[1])) == stamped[1]


def _zero_values() -> FeatureValues:
    values = PaymentFeatureValues()
    for name in PAYMENT_FEATURES.names:
        setattr(values, name, 0.0)
    return values


def test_the_scoring_row_carries_the_stamp_and_old_records_fall_back() -> None:
    tx = IngestedTransaction.stamp(payment("tx-1", 1_700_000_000_000), 1_700_000_000_100)
    record = output.build(
        tx,
        values=_zero_values(),
        duplicate=False,
        late=False,
        watermark_lag_ms=-1,
        computed_time=1_700_000_000_900,
    )
    assert record.ingest_time == 1_700_000_000_100 == ingest_time_of(tx, 0)
    row = record_row(record)
    assert row[COLUMNS.index(LAG_TIME)] == 1_700_000_000_100  # the lag is measured from it
    passthrough = unpack_record(row[COLUMNS.index(RECORD)])
    assert (passthrough.ingest_time, passthrough.computed_time) == (
        1_700_000_000_100,
        1_700_000_000_900,
    )
    # an enriched record written before the stamp existed still decodes; its ingestion is unknown,
    # so it is measured from its computation as before
    old = {k: v for k, v in msgspec.to_builtins(record).items() if k != "ingest_time"}
    decoded = output.decode(msgspec.json.encode(old))
    assert decoded.ingest_time == NOT_STAMPED
    assert record_row(decoded)[COLUMNS.index(LAG_TIME)] == 1_700_000_000_900


def _scored_row(record: Passthrough) -> Row:
    """A row as the scoring UDF hands it to DecisionOutputs."""
    return scored_row(
        record,
        [1.0] * len(PAYMENT_FEATURES.names),
        probability=0.2,
        scores=[0.5] * len(stacking.STACKED),
        decision="approve",
        mode=MODE_FULL,
        reasons="",
        model_version="v0001",
    )


def _passthrough(ingest_time: int, computed_time: int) -> Passthrough:
    return Passthrough(
        "tx-1", ingest_time - 50, "c-1", "card-1", "m-1", "5411", False, False, 3,
        computed_time, ingest_time,
    )  # fmt: skip


def test_decision_latencies_start_at_ingestion() -> None:
    now = now_ms()
    ingested, computed = now - WAITED_MS, now - 5
    outputs = list(
        DecisionOutputs("src", analytics=False).process_element(
            _scored_row(_passthrough(ingested, computed)), None
        )
    )
    decision = decode("decision", outputs[0])
    decided = decision.received_time + decision.processing_latency_ms
    assert decision.received_time == ingested  # "processing time the job read the transaction"
    assert decision.processing_latency_ms >= WAITED_MS  # the wait in front of the features counts
    assert decided == decision.transaction_time + decision.event_latency_ms  # one "decided" clock
    assert now <= decided <= now_ms()
    (log,) = [
        json.loads(o[1]) for o in outputs if isinstance(o, tuple) and o[0] is PREDICTION_LOG_TAG
    ]
    assert log["latency_ms"] == decision.processing_latency_ms


class _Models:
    version = "v0001"


class _Scorer:
    models = _Models()


def test_load_shedding_sees_a_payment_that_waited_before_the_features(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lag handed to the scorer is measured on the batch's oldest ingestion stamp: a payment
    that queued for WAITED_MS in front of the feature stages and whose features were complete
    just now is WAITED_MS late, not 0."""
    seen: list[float] = []

    class StopScoringError(Exception):
        pass

    def score_batch(_scorer: Any, _x: Any, lag_ms: float, _remembered: Any) -> Any:
        seen.append(lag_ms)
        raise StopScoringError

    monkeypatch.setattr(score_udf, "score_batch", score_batch)
    function = score_udf.ScoreBatch("registry", policy=None)  # type: ignore[arg-type]
    function._scorer = _Scorer()  # type: ignore[assignment]
    now = now_ms()
    ingested = pd.Series([now - WAITED_MS, now - 20], dtype="int64")
    features = [pd.Series(np.zeros(2)) for _ in PAYMENT_FEATURES.names]  # wide columns work too
    with pytest.raises(StopScoringError):
        function.eval(pd.Series(["a", "b"]), ingested, *features)
    (lag,) = seen
    assert WAITED_MS <= lag <= WAITED_MS + (time.time() * 1000 - now) + 1


def test_a_payment_that_queued_before_the_features_is_seen_lagging() -> None:
    """The whole chain in one process: validate, a wait (the queue in front of the keyed
    stages), card -> device -> terminal, the scoring row, the decision. Before the stamp, the
    decision said the job read the payment when its features were complete, and the wait was
    invisible (received_time == computed_time)."""
    queued_s = WAITED_MS / 1000
    tx = payment("tx-1", now_ms() - 1_000, device="dev-1")
    read_from = now_ms()
    (validated,) = _validate("transaction", msgspec.json.encode(tx))
    read_until = now_ms()
    time.sleep(queued_s)
    (enriched,) = _through_the_stages([validated])
    row = record_row(enriched)
    scored = _scored_row(unpack_record(row[COLUMNS.index(RECORD)]))
    outputs = list(DecisionOutputs("src", analytics=False).process_element(scored, None))
    decision = decode("decision", outputs[0])
    assert read_from <= decision.received_time <= read_until
    assert decision.received_time < enriched.computed_time
    assert decision.processing_latency_ms >= WAITED_MS
