"""The scoring job survives a stop with a savepoint (rescaled 1 -> 2) and a broker restart.

Deterministic payments: 20 cards x 10 payments one minute apart in event time (each card pays every
20 minutes, so its velocity, previous-payment, new-device and new-MCC features always look back
across the half-way point), Kafka record timestamp = event time, key = card id (a card's payments
stay in order in one partition), one device per card and no labels, so every feature is a function
of the card's own history. The latency budget is huge, so no batch is shed.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Producer

from core.config import Settings, with_overrides
from core.errors import JobError, ServiceError
from core.net import free_port
from jobs import scoring
from riskstream import jobrunner
from riskstream.infra.cluster import LocalCluster
from riskstream.infra.kafka import LocalKafka
from riskstream.infra.process import wait_until
from riskstream.infra.rest import FlinkRest, JobInfo
from riskstream.support.factories import payment
from riskstream.support.kafka_io import read_values
from riskstream.support.topics import private_settings
from schemas.records import Decision, PredictionLog, Transaction
from scoring.registry import load_champion

pytestmark = [pytest.mark.integration, pytest.mark.flink]

RISKSTREAM = str(Path(sys.executable).parent / "riskstream")
CARDS, PER_CARD = 20, 10
TOTAL = CARDS * PER_CARD
HALF = TOTAL // 2
MINUTE = 60_000
NO_SHEDDING_MS = 3_600_000
WAIT_S = 180.0
POLL_S = 1.0
LOG_TAIL_CHARS = 4000
# The job's Arrow batches depend on arrival timing; scoring is batch-invariant since a one-row batch
# is scored as two rows (scoring/onnx_io.py), yet this test keeps a tolerance.
SCORE_TOLERANCE = 1e-3
# Fields that legitimately differ between two runs over the same input: wall-clock stamps.
#   decisions: received_time (the validate step's ingestion stamp), processing_latency_ms,
#              event_latency_ms;
#   prediction log: latency_ms, watermark_lag_ms (wall clock minus the card operator's watermark).
# `score` and `model_scores` are compared to SCORE_TOLERANCE, `decision` wherever the score is not
# within SCORE_TOLERANCE of a threshold. Everything else, every feature included, must be equal.
DECISION_WALL_CLOCK = {"received_time", "processing_latency_ms", "event_latency_ms"}
LOG_WALL_CLOCK = {"latency_ms", "watermark_lag_ms"}
SCORED = {"score", "model_scores", "decision"}
OUTPUT_ROLES = ("decisions", "predictions", "alerts", "analytics", "late_events", "dead_letter")


def payments(start_ms: int) -> list[Transaction]:
    """The deterministic stream, in event-time order."""
    out = []
    for i in range(TOTAL):
        card, j = i % CARDS, i // CARDS
        online = j % 3 != 0
        out.append(
            payment(
                f"tx-{i:04d}",
                start_ms + i * MINUTE,
                card=f"card-{card:02d}",
                customer=f"cust-{card:02d}",
                merchant=f"m{i % 7}",
                terminal=f"t{i % 7}",
                mcc=("5411", "5812", "5999", "4111")[(card + j) % 4],
                amount=round(5.0 + (i * 37) % 300 + 0.25 * j, 2),
                latitude=50.80 + 0.01 * card + 0.02 * j,
                longitude=4.30 + 0.01 * j,
                device=f"dev-{card:02d}-{j // 5}" if online else None,
                country="BE",
                correlation_id=f"corr-{i:04d}",
            )
        )
    return out


def stream_start() -> int:
    """Event times end a little before now (the validator refuses the future)."""
    now = int(time.time() * 1000) // MINUTE * MINUTE
    return now - (TOTAL + 30) * MINUTE


def produce(settings: Settings, items: list[Transaction]) -> None:
    """Payments keyed by card, record timestamp = event time; all acknowledged."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "enable.idempotence": True})
    topic = settings.kafka.topic("transactions")
    for tx in items:
        producer.produce(
            topic, msgspec.json.encode(tx), key=tx.card_id.encode(), timestamp=tx.event_time
        )
        producer.poll(0)
    assert producer.flush(60) == 0


def decided(settings: Settings) -> set[str]:
    """Transaction ids with a decision so far (the decisions topic is at least once)."""
    raw = read_values(settings, settings.kafka.topic("decisions"), timeout_s=10, committed=False)
    return {msgspec.json.decode(v, type=Decision).transaction_id for v in raw}


def logged(settings: Settings) -> list[PredictionLog]:
    """The committed prediction log."""
    raw = read_values(settings, settings.kafka.topic("predictions"), timeout_s=10)
    return [msgspec.json.decode(v, type=PredictionLog) for v in raw]


def wait_until_logged(settings: Settings, count: int) -> list[PredictionLog]:
    """The committed prediction log once it holds ``count`` distinct transactions."""

    def complete() -> list[PredictionLog] | None:
        logs = logged(settings)
        return logs if len({x.transaction_id for x in logs}) >= count else None

    return wait_until(
        complete, WAIT_S, f"{count} transactions in the committed prediction log", poll_s=POLL_S
    )


def job_settings(base: Settings, tmp: Path, models: Path, name: str) -> Settings:
    """Fresh topics, consumer group and transactional ids for one run."""
    roles = {"transactions": 2, "labels": 1, **dict.fromkeys(OUTPUT_ROLES, 1)}
    return private_settings(
        base,
        name,
        roles,
        flink={"parallelism": 1},
        checkpoint={"dir": str(tmp / "checkpoints")},
        scoring={
            "registry_dir": str(models),
            "group_id": f"{name}-group",
            "transactional_id_prefix": name,
            "latency_budget_ms": NO_SHEDDING_MS,
        },
    )


@pytest.fixture(scope="module")
def champion(
    tmp_path_factory: pytest.TempPathFactory, fresh_champion: Callable[[Path], Path]
) -> Path:
    return fresh_champion(tmp_path_factory.mktemp("recovery-models"))


def by_transaction(records: list[Any]) -> dict[str, dict[str, Any]]:
    """The first record of each transaction id, as a plain dict (the decisions topic is at
    least once; consumers keep the first)."""
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        doc = msgspec.to_builtins(record)
        out.setdefault(doc["transaction_id"], doc)
    return out


def assert_same_outputs(
    expected: dict[str, dict[str, Any]],
    found: dict[str, dict[str, Any]],
    ignored: set[str],
    thresholds: tuple[float, float],
) -> None:
    assert set(found) == set(expected)
    for tx_id, want in expected.items():
        got = found[tx_id]
        for key in set(want) - ignored - SCORED:
            assert got[key] == want[key], f"{tx_id}.{key}: {got[key]!r} != {want[key]!r}"
        assert math.isclose(got["score"], want["score"], abs_tol=SCORE_TOLERANCE), tx_id
        for model, score in want.get("model_scores", {}).items():
            assert math.isclose(got["model_scores"][model], score, abs_tol=SCORE_TOLERANCE), (
                f"{tx_id}.{model}"
            )
        if all(abs(want["score"] - cut) > SCORE_TOLERANCE for cut in thresholds):
            assert got["decision"] == want["decision"], tx_id


def test_savepoint_resume_at_parallelism_2_continues_features(
    flink_cluster: LocalCluster, champion: Path, tmp_path: Path
) -> None:
    """Run A scores everything at once; run B stops half-way with a savepoint and resumes at
    parallelism 2 after the second half arrived. Per transaction, both give the same features and
    decisions."""
    base = flink_cluster.settings
    stream = payments(stream_start())
    rest = FlinkRest(flink_cluster.rest_url)

    whole = job_settings(base, tmp_path / "a", champion, f"rec-a-{time.time_ns() % 10**8}")
    produce(whole, stream)
    jobrunner.submit_to_cluster(whole, "scoring", bounded=True)
    logs_a = logged(whole)
    assert len(logs_a) == TOTAL  # exactly once, all committed when the bounded run ended
    assert not any(log.degraded for log in logs_a)

    split = job_settings(base, tmp_path / "b", champion, f"rec-b-{time.time_ns() % 10**8}")
    produce(split, stream[:HALF])
    jobrunner.submit_to_cluster(split, "scoring", detached=True)
    wait_until(
        lambda: len(decided(split)) >= HALF, WAIT_S, "decisions of the first half", poll_s=POLL_S
    )
    job = wait_until(lambda: running(rest), WAIT_S, "the first job", poll_s=POLL_S)
    savepoint = rest.stop_with_savepoint(job.job_id, tmp_path / "sp")
    assert len({x.transaction_id for x in logged(split)}) == HALF  # committed by the savepoint
    produce(split, stream[HALF:])
    resumed = with_overrides(
        split, checkpoint={"restore_from": savepoint}, flink={"parallelism": 2}
    )
    jobrunner.submit_to_cluster(resumed, "scoring", detached=True)
    try:
        job = wait_until(lambda: running(rest), WAIT_S, "the resumed job", poll_s=POLL_S)
        logs_b = wait_until_logged(split, TOTAL)
        wait_until(lambda: len(decided(split)) >= TOTAL, WAIT_S, "every decision", poll_s=POLL_S)
        assert job_parallelism(flink_cluster, job.job_id) == 2
    finally:
        if (leftover := running(rest)) is not None:
            rest.cancel(leftover.job_id)
        wait_until(lambda: running(rest) is None, WAIT_S, "the job to end", poll_s=POLL_S)
    assert len(logs_b) == TOTAL  # nothing logged twice across the savepoint

    models = load_champion(champion)
    cuts = (models.thresholds.step_up, models.thresholds.block)
    assert_same_outputs(by_transaction(logs_a), by_transaction(logs_b), LOG_WALL_CLOCK, cuts)
    decisions_a = [msgspec.json.decode(v, type=Decision) for v in raw_decisions(whole)]
    decisions_b = [msgspec.json.decode(v, type=Decision) for v in raw_decisions(split)]
    assert_same_outputs(
        by_transaction(decisions_a), by_transaction(decisions_b), DECISION_WALL_CLOCK, cuts
    )
    # the history really crossed the savepoint: second-half payments see first-half ones
    second = [log for log in logs_b if log.transaction_id >= f"tx-{HALF:04d}"]
    assert all((log.features["tx_count_by_card_1d"] or 0) > PER_CARD // 2 for log in second)
    assert all(log.features["seconds_since_prev_by_card"] == 20 * 60 for log in second)


def raw_decisions(settings: Settings) -> list[bytes]:
    """Every decision record written so far."""
    return read_values(settings, settings.kafka.topic("decisions"), timeout_s=10, committed=False)


def running(rest: FlinkRest) -> JobInfo | None:
    """The running scoring job, if any."""
    try:
        return rest.running_job(name=scoring.JOB_NAME)
    except JobError:
        return None


def job_parallelism(cluster: LocalCluster, job_id: str) -> int:
    """The highest parallelism of the job's vertices (Flink REST ``/jobs/<id>``)."""
    with urllib.request.urlopen(f"{cluster.rest_url}/jobs/{job_id}", timeout=10) as answer:
        vertices = json.loads(answer.read())["vertices"]
    return max(int(v["parallelism"]) for v in vertices)


@pytest.fixture
def private_broker(
    base_settings: Settings, tmp_path: Path
) -> Iterator[tuple[Settings, LocalKafka]]:
    """A broker of this test alone (free ports, own data dir), so restarting it disturbs no one."""
    settings = with_overrides(
        base_settings,
        paths={"run_dir": str(tmp_path / "run")},
        kafka={"port": free_port(), "controller_port": free_port(), "heap": "512M"},
        flink={"local_rest_port": free_port()},
    )
    broker = LocalKafka(settings)
    broker.start()
    try:
        yield settings, broker
    finally:
        broker.stop()


def test_broker_restart_mid_stream_loses_nothing(
    private_broker: tuple[Settings, LocalKafka], champion: Path, tmp_path: Path
) -> None:
    """Stop the broker while the job runs, start it again on the same port and data dir: every
    payment is decided and the committed prediction log holds each exactly once."""
    base, broker = private_broker
    settings = with_overrides(
        base,
        flink={"parallelism": 1},
        checkpoint={"dir": str(tmp_path / "checkpoints")},
        scoring={"registry_dir": str(champion), "latency_budget_ms": NO_SHEDDING_MS},
    )
    stream = payments(stream_start())
    config = jobrunner.write_settings(settings, tmp_path / "settings.yaml")
    log_file = (tmp_path / "job.log").open("w")
    job = subprocess.Popen(
        [RISKSTREAM, "--config", str(config), "run", "--job", "scoring"],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    rest = FlinkRest(f"http://127.0.0.1:{settings.flink.local_rest_port}")
    try:
        produce(settings, stream[:HALF])
        try:
            wait_until(
                lambda: len(decided(settings)) >= HALF,
                WAIT_S,
                "decisions of the first half",
                poll_s=POLL_S,
            )
        except ServiceError as e:  # a job that could not start says why in its log
            log_file.flush()
            tail = (tmp_path / "job.log").read_text(errors="replace")[-LOG_TAIL_CHARS:]
            raise AssertionError(f"{e}; exit code {job.poll()}; job.log ends:\n{tail}") from e
        first_pid = broker.running_pid()
        broker.stop()
        time.sleep(5)
        assert broker.start() != first_pid  # a new broker process, same port and data dir
        produce(settings, stream[HALF:])
        logs = wait_until_logged(settings, TOTAL)
        assert job.poll() is None, (tmp_path / "job.log").read_text()[-3000:]
        assert decided(settings) == {tx.event_id for tx in stream}
        assert len(logs) == TOTAL
        assert {x.transaction_id for x in logs} == {tx.event_id for tx in stream}
    finally:
        if (flink_job := running(rest)) is not None:
            rest.cancel(flink_job.job_id)
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.wait(timeout=120)
        if job.poll() is None:
            job.kill()
            job.wait(timeout=30)
        log_file.close()
