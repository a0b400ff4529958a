"""Fault recovery on the standalone cluster: the TaskManager is SIGKILLed in the middle of a stream.

The scoring job runs detached on the session cluster with 10 s checkpoints while payments arrive
at a steady rate. After a checkpoint has completed and more decisions are out, the TaskManager is
killed (as a lost machine or an OOM kill would), a new one is started (as an operator or
Kubernetes would), and the feed goes on. Flink notices the loss, restarts the job from the last
completed checkpoint on the new TaskManager and replays the input from the checkpointed offsets:
the exactly-once prediction log must hold each payment once, the at-least-once decisions each
payment at least once, with identical copies.
"""

from __future__ import annotations

import collections
import functools
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Producer

from core.config import Settings
from riskstream import jobrunner
from riskstream.infra import process
from riskstream.infra.cluster import LocalCluster
from riskstream.infra.rest import CheckpointStats, FlinkRest
from riskstream.support.factories import payment
from riskstream.support.kafka_io import Outgoing, produce_at_rate, read_values
from riskstream.support.topics import private_settings
from schemas.records import Transaction

pytestmark = [pytest.mark.integration, pytest.mark.flink]

JOB = "riskstream-scoring"
ROLES = {
    "transactions": 2,
    "labels": 1,
    "dead_letter": 1,
    "decisions": 2,
    "predictions": 1,
    "alerts": 1,
    "analytics": 1,
    "late_events": 1,
}
NO_SHEDDING_MS = 3_600_000
# Long enough that the kill lands before the next checkpoint completes, so the decisions made after
# the last one are replayed (and must come out identical).
CHECKPOINT_MS = 10_000
RATE_PER_S = 40.0
MAX_PAYMENTS = 6_000
AFTER_CHECKPOINT = 40  # decisions out after the last checkpoint before the kill (replayed)
AFTER_RECOVERY_S = 5.0
MALFORMED_EVERY = 50
CARDS = 60
JOB_START_S = 240.0
PROGRESS_S = 120.0
RECOVERY_S = 240.0
SAME = ("decision_id", "decision", "score")


def _settings(base: Settings, tmp: Path, models: Path) -> Settings:
    name = f"recover-{uuid.uuid4().hex[:6]}"
    return private_settings(
        base,
        name,
        ROLES,
        flink={"parallelism": 1},
        checkpoint={
            "dir": str(tmp / "checkpoints"),
            "interval_ms": CHECKPOINT_MS,
            "restart_attempts": 30,
            "restart_delay_ms": 2000,
        },
        scoring={
            "registry_dir": str(models),
            "group_id": f"{name}-group",
            "transactional_id_prefix": name,
            "latency_budget_ms": NO_SHEDDING_MS,
        },
    )


def _payment(rng: random.Random, i: int) -> Transaction:
    card = i % CARDS
    online = rng.random() < 0.4
    return payment(
        f"rec-{uuid.uuid4().hex}",
        int(time.time() * 1000),
        source="test-recovery",
        correlation_id=f"rec-{i}",
        card=f"card-{card:04d}",
        customer=f"cust-{card:04d}",
        merchant=f"m-{i % 25:03d}",
        terminal=f"term-{rng.randrange(40):03d}",
        mcc=rng.choice(("5411", "5812", "5999", "7995")),
        amount=round(rng.uniform(1, 400), 2),
        latitude=round(50 + rng.random(), 4),
        longitude=round(4 + rng.random(), 4),
        device=f"dev-{card:04d}" if online else None,
    )


class Feed:
    """Sends valid payments (and now and then a malformed record) at a steady rate until stopped,
    keyed by card, with the Kafka timestamp = event time; records the ids of the valid ones."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.kafka.topic("transactions")
        self.producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "linger.ms": 0})
        self.valid: list[str] = []
        self.rng = random.Random(8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Send in a background thread until :meth:`stop` (or ``MAX_PAYMENTS``)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sending; wait until everything sent is acknowledged."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        assert self.producer.flush(30) == 0

    def _records(self) -> Iterator[Outgoing]:
        """Valid payments keyed by card (Kafka timestamp = event time), now and then a malformed
        record; a payment counts as valid once it was produced."""
        for i in range(MAX_PAYMENTS):
            tx = _payment(self.rng, i)
            yield self.topic, msgspec.json.encode(tx), tx.card_id, tx.event_time
            self.valid.append(tx.event_id)
            if i % MALFORMED_EVERY == 0:
                yield self.topic, b'{"event_id": "broken", "amount": -3', None, None

    def _run(self) -> None:
        # RATE_PER_S counts valid payments; the malformed ones come on top.
        rate = RATE_PER_S * (1 + 1 / MALFORMED_EVERY)
        produce_at_rate(self.producer, self._records(), rate, stop=self._stop, flush_timeout_s=30)


def _decisions(settings: Settings) -> list[dict[str, Any]]:
    return [
        json.loads(v)
        for v in read_values(settings, settings.kafka.topic("decisions"), committed=False)
    ]


def _log(settings: Settings) -> list[dict[str, Any]]:
    topic = settings.kafka.topic("predictions")
    return [json.loads(v) for v in read_values(settings, topic)]


def _heal(cluster: LocalCluster, rest: FlinkRest, job_id: str | None) -> None:
    """Leave the session cluster as the other tests expect it: our job gone, one live
    TaskManager, the lost one deregistered, slots free."""
    if job_id is not None and cluster.job_states().get(job_id) in ("RUNNING", "RESTARTING"):
        rest.cancel(job_id)
    if "taskexecutor" not in cluster.running_pids():
        cluster.start_taskmanager()

    def healthy() -> bool:
        state = cluster.status()
        return state.taskmanagers == 1 and state.slots_available == state.slots_total > 0

    process.wait_until(healthy, 120, "one TaskManager with free slots")


def _checkpoint_then_decisions(settings: Settings, rest: FlinkRest, job_id: str) -> CheckpointStats:
    """Wait for a completed checkpoint and then ``AFTER_CHECKPOINT`` more decisions with no newer
    checkpoint completed in between; returns that checkpoint's stats."""

    def newer(than: int) -> bool:
        return (rest.checkpoints(job_id).latest_id or 0) > than

    def decided(at_least: int) -> bool:
        return len(_decisions(settings)) >= at_least

    for _attempt in range(5):
        first = rest.checkpoints(job_id).latest_id or 0
        process.wait_until(functools.partial(newer, first), PROGRESS_S, "a checkpoint", poll_s=1.0)
        stats = rest.checkpoints(job_id)
        covered = len(_decisions(settings))
        process.wait_until(
            functools.partial(decided, covered + AFTER_CHECKPOINT),
            PROGRESS_S,
            "decisions",
            poll_s=1.0,
        )
        if rest.checkpoints(job_id).latest_id == stats.latest_id:
            return stats
    raise AssertionError("no quiet moment between checkpoints to kill the TaskManager in")


@pytest.fixture
def recovery_run(
    flink_cluster: LocalCluster, tmp_path: Path, fresh_champion: Callable[[Path], Path]
) -> Iterator[tuple[Settings, FlinkRest, str, Feed]]:
    settings = _settings(flink_cluster.settings, tmp_path, fresh_champion(tmp_path))
    rest = FlinkRest(flink_cluster.rest_url)
    feed = Feed(settings)
    job_id: str | None = None
    try:
        jobrunner.submit_to_cluster(settings, "scoring", detached=True)
        job_id = rest.running_job(name=JOB).job_id
        process.wait_until(
            lambda: rest.tasks_running(str(job_id)), JOB_START_S, "the job's tasks", poll_s=1.0
        )
        yield settings, rest, job_id, feed
    finally:
        feed.stop()
        _heal(flink_cluster, rest, job_id)


def test_taskmanager_killed_mid_stream_loses_and_duplicates_nothing(
    flink_cluster: LocalCluster, recovery_run: tuple[Settings, FlinkRest, str, Feed]
) -> None:
    settings, rest, job_id, feed = recovery_run
    feed.start()
    # kill in the middle: a checkpoint completed, then decisions it does not cover went out
    process.wait_until(
        lambda: len(_decisions(settings)) >= 100, PROGRESS_S, "100 decisions", poll_s=1.0
    )
    before = _checkpoint_then_decisions(settings, rest, job_id)
    flink_cluster.kill_taskmanager()
    killed, sent_at_kill = time.monotonic(), len(feed.valid)
    flink_cluster.start_taskmanager()

    def decided_after_kill() -> bool:
        decided = {d["transaction_id"] for d in _decisions(settings)}
        return any(tx in decided for tx in feed.valid[sent_at_kill:])

    process.wait_until(
        decided_after_kill, RECOVERY_S, "a decision of a payment sent after the kill", poll_s=1.0
    )
    recovery_s = time.monotonic() - killed
    time.sleep(AFTER_RECOVERY_S)  # the feed goes on for a while on the recovered job
    feed.stop()
    valid = set(feed.valid)
    assert len(valid) > sent_at_kill > 100

    def all_decided() -> bool:
        return {d["transaction_id"] for d in _decisions(settings)} >= valid

    process.wait_until(all_decided, RECOVERY_S, "a decision for every payment", poll_s=1.0)
    process.wait_until(
        lambda: len(_log(settings)) >= len(valid), RECOVERY_S, "the prediction log", poll_s=1.0
    )
    print(f"first decision of a payment sent after the kill: {recovery_s:.1f} s after it")

    # the fault really happened: the job restarted, from the checkpoint completed before the kill
    # (the REST API's metric store refreshes every metrics.fetcher.update-interval, 10 s)
    process.wait_until(
        lambda: (rest.job_metric(job_id, "numRestarts") or 0) >= 1,
        30,
        "numRestarts >= 1",
        poll_s=1.0,
    )
    assert flink_cluster.job_states()[job_id] == "RUNNING"
    after = rest.checkpoints(job_id)
    assert after.restored >= 1
    assert after.restored_id == before.latest_id

    # prediction log (exactly once, read committed): one record per valid payment
    log_ids = collections.Counter(r["transaction_id"] for r in _log(settings))
    assert set(log_ids) == valid
    assert max(log_ids.values()) == 1

    # decisions (at least once): every payment; the replayed ones again, identical
    copies: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for decision in _decisions(settings):
        copies[decision["transaction_id"]].append(decision)
    assert set(copies) == valid
    duplicated = {tx: c for tx, c in copies.items() if len(c) > 1}
    print(f"{len(duplicated)} payments decided twice (replayed from the checkpoint's offsets)")
    assert len(duplicated) >= AFTER_CHECKPOINT
    for tx, found in duplicated.items():
        assert len({tuple(d[k] for k in SAME) for d in found}) == 1, (tx, found)
    assert read_values(settings, settings.kafka.topic("dead_letter"), committed=False), (
        "malformed records"
    )
