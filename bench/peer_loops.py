"""The two peers of ``bench/peers.py``: a Quix Streams application and a plain confluent-kafka loop.

Both run the project's own feature code (:class:`features.compute.FeaturePipeline`, the Python
driver: the per-stage functions of :mod:`features.stages` that the Flink operators call) and the
registry's champion through :class:`scoring.scorer.Scorer` (the same ONNX sessions and policy as
the scoring UDF), and write the same decision, prediction-log and alert records as the scoring
job. Each peer runs in its own process (``python -m bench.peer_loops PEER CONFIG``), so the
benchmark's feeder and watcher never share its interpreter:

- ``plain``: poll batches of up to :data:`BATCH` records, compute features in memory, score the
  batch in one call per model, produce; offsets committed every :data:`COMMIT_S` after a flush
  (at least once; state in memory, lost on a restart).
- ``quix``: one ``StreamingDataFrame`` per input topic; the card state is Quix's RocksDB state
  store (keyed by the record key, the card; backed by a changelog topic), the device and terminal
  state are in the process's memory (they are keyed by other ids than the record key); scoring is
  per record, as a Quix pipeline calls its functions.

This module imports no pyflink and no simulator, so it runs in the separate Quix virtualenv
(``bench/requirements-quix.txt``: quixstreams pins an older confluent-kafka and pydantic than the
project). Its pure helpers (record building, percentiles, the sustained rate) are unit tested.
"""

from __future__ import annotations

import json
import math
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from core.config import Settings, load_settings
from core.errors import SchemaError
from features import card
from features.compute import FeaturePipeline
from features.params import FeatureParams
from schemas.feature_set import PAYMENT_FEATURES
from schemas.records import MAX_REASON_CODES, SCHEMA_VERSION, Decision, PredictionLog, Transaction
from schemas.validation import decode
from scoring import stacking
from scoring.explain import LinearExplainer
from scoring.fields import BLOCK, MODE_FULL, split_reasons
from scoring.registry import load_champion
from scoring.scorer import BatchResult, Scorer, ScoringPolicy

BATCH = 500
"""Records per poll of the plain loop (the scoring job's Arrow batches are up to 1,000)."""
POLL_S = 0.005
COMMIT_S = 5.0
"""How often the plain loop flushes and commits (Quix's default commit interval)."""
CARD_STATE_KEY = b"card"
READY = "ready"
"""Line a peer prints once its models are loaded and it is about to consume."""
# Same namespace and derivation as udfs.decisions.decision_id (which imports pyflink; a unit test
# checks both give the same ids).
DECISION_NAMESPACE = uuid.UUID("6f1c3c55-8e53-4d43-9f61-2f6b5b1c2a10")
FEATURE_SET_VERSION = f"{PAYMENT_FEATURES.name}.v{PAYMENT_FEATURES.version}"
NO_LAG = -1
_ENCODER = msgspec.json.Encoder()

F64 = npt.NDArray[np.float64]


class PeerError(RuntimeError):
    """A peer could not run (unknown peer, no champion, a consumer error)."""


def decision_id(transaction_id: str, model_version: str) -> str:
    """The scoring job's deterministic decision id of a payment and model version.

    >>> decision_id("tx-1", "v0001") == decision_id("tx-1", "v0001")
    True
    """
    return str(uuid.uuid5(DECISION_NAMESPACE, f"{transaction_id}|{model_version}"))


def _finite(value: float) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Outputs:
    """One payment's records: decision JSON, prediction-log JSON, whether it is blocked."""

    key: bytes
    decision: bytes
    log: bytes
    blocked: bool


def outputs(
    tx: Transaction,
    values: Sequence[float],
    duplicate: bool,
    result: BatchResult,
    row: int,
    *,
    version: str,
    source: str,
    received_ms: int,
    now_ms: int,
) -> Outputs:
    """The decision, prediction log and alert flag of row ``row`` of ``result``, built as the
    scoring job's decide step builds them (``received_ms``: when its features were computed)."""
    ident = decision_id(tx.event_id, version)
    probability = min(max(float(result.probability[row]), 0.0), 1.0)
    reasons = split_reasons(result.reasons[row])[:MAX_REASON_CODES]
    verdict = str(result.decision[row])
    degraded = result.mode != MODE_FULL
    latency = max(now_ms - received_ms, 0)
    decision = Decision(
        event_id=ident,
        event_time=tx.event_time,
        schema_version=SCHEMA_VERSION,
        source=source,
        correlation_id=tx.correlation_id,
        decision_id=ident,
        transaction_id=tx.event_id,
        transaction_time=tx.event_time,
        card_id=tx.card_id,
        decision=verdict,  # type: ignore[arg-type]
        score=probability,
        reason_codes=reasons,
        model_version=version,
        feature_set_version=FEATURE_SET_VERSION,
        degraded=degraded,
        received_time=received_ms,
        processing_latency_ms=latency,
        event_latency_ms=now_ms - tx.event_time,
    )
    log = PredictionLog(
        event_id=f"{ident}-log",
        event_time=tx.event_time,
        schema_version=SCHEMA_VERSION,
        source=source,
        correlation_id=tx.correlation_id,
        transaction_id=tx.event_id,
        transaction_time=tx.event_time,
        card_id=tx.card_id,
        model_version=version,
        feature_set_version=FEATURE_SET_VERSION,
        features={name: _finite(v) for name, v in zip(PAYMENT_FEATURES.names, values, strict=True)},
        score=probability,
        decision=verdict,  # type: ignore[arg-type]
        degraded=degraded,
        latency_ms=latency,
        decision_id=ident,
        model_scores={m: _finite(result.scores[m][row]) for m in stacking.STACKED},
        reason_codes=reasons,
        degraded_mode=result.mode,  # type: ignore[arg-type]
        watermark_lag_ms=NO_LAG,
        late=False,
        duplicate=duplicate,
    )
    return Outputs(
        tx.card_id.encode(), _ENCODER.encode(decision), _ENCODER.encode(log), verdict == BLOCK
    )


def percentiles(latencies_ms: Sequence[float], qs: Sequence[float] = (50, 99)) -> dict[str, float]:
    """``{"p50_ms": ..., "p99_ms": ...}`` of latencies (NaN for none).

    >>> percentiles([1.0, 2.0, 3.0], (50,))
    {'p50_ms': 2.0}
    """
    if not latencies_ms:
        return {f"p{q:g}_ms": float("nan") for q in qs}
    values = np.percentile(np.asarray(latencies_ms, dtype=np.float64), list(qs))
    return {f"p{q:g}_ms": float(v) for q, v in zip(qs, values, strict=True)}


def caught_up(latencies_ms: Sequence[float], window: int, limit_ms: float) -> bool:
    """Whether the last ``window`` latencies have a median under ``limit_ms``: the system drained
    what queued while it started (the latency phase measures only after that).

    >>> caught_up([9_000.0, 5.0, 6.0, 7.0], 3, 100.0), caught_up([5.0, 9_000.0, 9_000.0], 3, 100.0)
    (True, False)
    """
    if len(latencies_ms) < window:
        return False
    return float(np.median(np.asarray(latencies_ms[-window:], dtype=np.float64))) < limit_ms


def sustained_rate(stamps_ms: Sequence[int], low_q: float = 10, high_q: float = 90) -> float:
    """Records per second between the ``low_q`` and ``high_q`` percentiles of the output's
    append times (start-up and the drain at the end left out), as ``bench/throughput.py``.

    >>> sustained_rate([0, 1000, 2000, 3000, 4000], 0, 100)
    1.25
    """
    if len(stamps_ms) < 2:
        return float("nan")
    stamps = np.sort(np.asarray(stamps_ms, dtype=np.int64))
    low, high = np.percentile(stamps, [low_q, high_q])
    inside = int(((stamps >= low) & (stamps <= high)).sum())
    return inside / max(float(high - low) / 1000.0, 1e-9)


class Engine:
    """Features (the Python driver's pipeline) and the champion's scorer of one peer."""

    def __init__(self, settings: Settings) -> None:
        self.pipeline = FeaturePipeline(FeatureParams.from_settings(settings.features))
        models = load_champion(settings.registry)
        explainer = None
        if stacking.LOGISTIC in models.model_bytes:
            explainer = LinearExplainer.from_onnx(
                models.model_bytes[stacking.LOGISTIC], models.inputs
            )
        self.scorer = Scorer(
            models, ScoringPolicy.from_settings(settings.scoring), explainer=explainer
        )
        self.version = models.version
        self.source = settings.scoring.source_name
        self.dead_letters = 0
        self.payments = 0
        self.labels = 0

    def transaction(self, value: bytes | None) -> Transaction | None:
        """The payment of a record, or None (counted as a dead letter)."""
        try:
            tx: Transaction = decode("transaction", value or b"")
        except (SchemaError, ValueError):
            self.dead_letters += 1
            return None
        self.payments += 1
        return tx

    def label(self, value: bytes | None) -> None:
        """Apply a label record to the device and terminal state (dead-letter a bad one)."""
        try:
            label = decode("label", value or b"")
        except (SchemaError, ValueError):
            self.dead_letters += 1
            return
        self.labels += 1
        self.pipeline.label(label)

    def features(self, tx: Transaction) -> tuple[tuple[float, ...], bool]:
        """The payment's feature vector and duplicate flag (card state in the pipeline)."""
        row = self.pipeline.transaction(tx)
        return row.values, row.duplicate

    def score(
        self, txs: Sequence[Transaction], rows: Sequence[tuple[tuple[float, ...], bool]], at: int
    ) -> list[Outputs]:
        """Score a batch of payments whose features were computed at ``at`` (ms)."""
        x = np.asarray([values for values, _ in rows], dtype=np.float64)
        result = self.scorer.score(x, time.time() * 1000.0 - at)
        now = int(time.time() * 1000)
        return [
            outputs(
                tx,
                values,
                duplicate,
                result,
                i,
                version=self.version,
                source=self.source,
                received_ms=at,
                now_ms=now,
            )
            for i, (tx, (values, duplicate)) in enumerate(zip(txs, rows, strict=True))
        ]

    def summary(self) -> dict[str, Any]:
        """Counts of what was read."""
        return {"payments": self.payments, "labels": self.labels, "dead_letters": self.dead_letters}


def end_offsets(settings: Settings, roles: Sequence[str]) -> int:
    """Records in the input topics now (their high watermarks; the topics are fresh)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"peer-{uuid.uuid4().hex}"})
    try:
        total = 0
        for role in roles:
            topic = settings.kafka.topic(role)
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            for partition in meta.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                total += high - low
        return total
    finally:
        consumer.close()


def run_plain(settings: Settings, expect: int | None) -> dict[str, Any]:
    """The plain confluent-kafka loop, until ``expect`` input records were read (None: forever)."""
    from confluent_kafka import Consumer, Producer

    kafka = settings.kafka
    tx_topic, label_topic = kafka.topic("transactions"), kafka.topic("labels")
    out = {role: kafka.topic(role) for role in ("decisions", "predictions", "alerts")}
    engine = Engine(settings)
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"peer-plain-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({**kafka.client_config(), "linger.ms": str(settings.scoring.linger_ms)})
    consumer.subscribe([tx_topic, label_topic])
    print(READY, flush=True)
    read, last_commit = 0, time.monotonic()
    try:
        while expect is None or read < expect:
            messages = consumer.consume(BATCH, timeout=POLL_S)
            txs: list[Transaction] = []
            rows: list[tuple[tuple[float, ...], bool]] = []
            for message in messages:
                if message.error() is not None:
                    raise PeerError(f"plain peer: consumer error {message.error()}")
                read += 1
                if message.topic() == label_topic:
                    engine.label(message.value())
                    continue
                tx = engine.transaction(message.value())
                if tx is not None:
                    txs.append(tx)
                    rows.append(engine.features(tx))
            if txs:
                for o in engine.score(txs, rows, int(time.time() * 1000)):
                    _produce(producer, out["decisions"], o.key, o.decision)
                    _produce(producer, out["predictions"], o.key, o.log)
                    if o.blocked:
                        _produce(producer, out["alerts"], o.key, o.decision)
            producer.poll(0)
            if time.monotonic() - last_commit >= COMMIT_S and messages:
                producer.flush()
                consumer.commit(asynchronous=False)
                last_commit = time.monotonic()
        producer.flush()
    finally:
        consumer.close()
    return engine.summary()


def _produce(producer: Any, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key)
            return
        except BufferError:
            producer.poll(0.05)


def run_quix(settings: Settings, expect: int | None, state_dir: Path) -> dict[str, Any]:
    """The Quix Streams application, until ``expect`` input records were read (None: forever)."""
    from quixstreams import Application, State
    from quixstreams.models.serializers import Serializer
    from quixstreams.state.rocksdb import RocksDBOptions
    from quixstreams.utils.json import dumps as json_dumps

    kafka = settings.kafka
    engine = Engine(settings)

    def raw_dumps(value: Any) -> bytes:
        return value if isinstance(value, bytes) else json_dumps(value)

    class Pick(Serializer):  # type: ignore[misc]
        """Serializes one field of :class:`Outputs` (the records are JSON already)."""

        def __init__(self, pick: Callable[[Outputs], bytes]) -> None:
            self.pick = pick

        def __call__(self, value: Outputs, ctx: Any) -> bytes:
            return self.pick(value)

    app = Application(
        broker_address=kafka.bootstrap,
        consumer_group=f"peer-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=str(state_dir),
        # The card blob is stored as the project's msgpack bytes, as in the Flink ValueState.
        rocksdb_options=RocksDBOptions(dumps=raw_dumps, loads=lambda b: b),
        producer_extra_config={"linger.ms": str(settings.scoring.linger_ms)},
        consumer_poll_timeout=POLL_S,
        loglevel="WARNING",
    )
    tx_topic = app.topic(kafka.topic("transactions"), value_deserializer="bytes")
    label_topic = app.topic(kafka.topic("labels"), value_deserializer="bytes")
    decisions = app.topic(kafka.topic("decisions"), value_serializer=Pick(lambda o: o.decision))
    predictions = app.topic(kafka.topic("predictions"), value_serializer=Pick(lambda o: o.log))
    alerts = app.topic(kafka.topic("alerts"), value_serializer=Pick(lambda o: o.decision))
    read = [0]

    def counted() -> None:
        read[0] += 1
        if expect is not None and read[0] >= expect:
            app.stop()

    def payment(value: bytes | None, state: State) -> Outputs | None:
        counted()
        tx = engine.transaction(value)
        if tx is None:
            return None
        blob = state.get(CARD_STATE_KEY)
        cards = engine.pipeline.cards
        cards[tx.card_id] = card.decode(blob)
        features = engine.features(tx)
        state_now = cards.pop(tx.card_id)
        if not features[1]:
            state.set(CARD_STATE_KEY, card.encode(state_now))
        return engine.score([tx], [features], int(time.time() * 1000))[0]

    def label(value: bytes | None) -> None:
        counted()
        engine.label(value)

    sdf = app.dataframe(tx_topic)
    sdf = sdf.apply(payment, stateful=True).filter(lambda o: o is not None)
    sdf = sdf.to_topic(decisions).to_topic(predictions)
    sdf.filter(lambda o: o.blocked).to_topic(alerts)
    app.dataframe(label_topic).update(label)
    print(READY, flush=True)
    app.run()
    return engine.summary()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bench.peer_loops {plain,quix} CONFIG [--bounded] [--state-dir DIR]``: run one
    peer; bounded, it stops once the input topics' records at start are read and prints its
    counts as JSON."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.peer_loops")
    parser.add_argument("peer", choices=("plain", "quix"))
    parser.add_argument("config", type=Path)
    parser.add_argument("--bounded", action="store_true")
    parser.add_argument("--state-dir", type=Path, default=Path("quix-state"))
    args = parser.parse_args(argv)
    settings = load_settings(args.config, environ={})
    expect = end_offsets(settings, ("transactions", "labels")) if args.bounded else None
    started = time.monotonic()
    if args.peer == "plain":
        summary = run_plain(settings, expect)
    else:
        summary = run_quix(settings, expect, args.state_dir)
    summary["wall_s"] = time.monotonic() - started
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
