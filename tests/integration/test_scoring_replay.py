"""Replayed decisions equal their first copy, load shedding included (issue 12 item 4).

The scoring job runs on the standalone cluster with 10 s checkpoints while payments arrive at a
steady rate. Shedding is forced the way an overload would: the scoring UDF's Python worker is
paused (SIGSTOP) for longer than ``scoring.latency_budget_ms``, so the batch waiting for it is over
budget and, with a recover ratio that never lets the lag fall low enough, every later batch of
that worker is decided in ``degraded:shed`` mode. After a checkpoint completes and more shed
decisions are out, the TaskManager is SIGKILLed and replaced: the job restarts from the checkpoint
with a fresh scorer that is not shedding, and replays the payments decided since. Each replayed
decision must equal its first copy (the one consumers acted on) field by field, except the
wall-clock stamps.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from core.errors import ServiceError
from riskstream import jobrunner
from riskstream.infra import process
from riskstream.infra.cluster import LocalCluster
from riskstream.infra.rest import FlinkRest
from riskstream.support.kafka_io import read_values
from riskstream.support.topics import private_settings
from tests.integration.test_recovery import Feed, _checkpoint_then_decisions, _heal

pytestmark = [pytest.mark.integration, pytest.mark.flink]

JOB = "riskstream-scoring"
# one decisions partition: its order says which copy of a decision came first
ROLES = {
    "transactions": 2,
    "labels": 1,
    "dead_letter": 1,
    "decisions": 1,
    "predictions": 1,
    "alerts": 1,
    "analytics": 1,
    "late_events": 1,
}
CHECKPOINT_MS = 10_000
BUDGET_MS = 3_000
PAUSE_S = 6.0  # > BUDGET_MS: the batch that waited for the paused worker is over budget
NEVER_RECOVER_RATIO = 0.001  # once shedding, a worker sheds until it restarts
BUNDLE_MS = 250
"""The scoring UDF gets a batch every 250 ms, so at the feed's rate some payments always wait for
it: stamped before the pause, scored after it."""
PAUSES = 6
JOB_START_S = 240.0
PROGRESS_S = 120.0
RECOVERY_S = 240.0
SHED = "degraded:shed"
WORKER_MARKER = "pyflink.fn_execution"  # the process-mode Python worker's command line
WALL_CLOCK = {"received_time", "processing_latency_ms", "event_latency_ms"}
"""Decision fields stamped from the wall clock when the copy is made."""


def _settings(base: Settings, tmp: Path, models: Path) -> Settings:
    name = f"replay-{uuid.uuid4().hex[:6]}"
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
            "latency_budget_ms": BUDGET_MS,
            "recover_ratio": NEVER_RECOVER_RATIO,
            "analytics": False,
            "bundle_time_ms": BUNDLE_MS,
        },
    )


def _decisions(settings: Settings) -> list[dict[str, Any]]:
    """Every decision copy, in the order it was written (one partition)."""
    topic = settings.kafka.topic("decisions")
    return [json.loads(v) for v in read_values(settings, topic, committed=False)]


def _python_workers(cluster: LocalCluster) -> list[int]:
    """The process-mode Python workers (the pandas scoring UDF) of our TaskManagers."""
    workers = []
    for role, pid in cluster.all_pids():
        if role == "taskexecutor":
            workers += [
                w for w in process.descendants(pid) if process.process_matches(w, WORKER_MARKER)
            ]
    return workers


def _pause(pids: list[int], seconds: float) -> None:
    """Stop the workers for ``seconds`` (an overloaded machine), then let them go on."""
    for pid in pids:
        if process.process_matches(pid, WORKER_MARKER):
            os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        for pid in pids:
            if process.process_matches(pid, WORKER_MARKER):
                os.kill(pid, signal.SIGCONT)


@pytest.fixture
def replay_run(
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


def test_replayed_decisions_under_shedding_equal_their_first_copy(
    flink_cluster: LocalCluster, replay_run: tuple[Settings, FlinkRest, str, Feed]
) -> None:
    settings, rest, job_id, feed = replay_run
    feed.start()
    process.wait_until(
        lambda: len(_decisions(settings)) >= 40, PROGRESS_S, "40 decisions", poll_s=1.0
    )
    assert _python_workers(flink_cluster), "no process-mode Python worker under the TaskManager"

    def shed() -> bool:
        return any(SHED in d["reason_codes"] for d in _decisions(settings))

    paused: list[list[int]] = []
    for _attempt in range(PAUSES):
        workers = _python_workers(flink_cluster)  # found again: a worker may have been replaced
        paused.append(workers)
        _pause(workers, PAUSE_S)
        with contextlib.suppress(ServiceError):
            process.wait_until(shed, 10, "a shed decision", poll_s=1.0)
            break
    decided = _decisions(settings)
    assert shed(), (
        f"no decision was shed after {PAUSES} pauses of {PAUSE_S} s (workers paused: {paused}; "
        f"{len(decided)} decisions, largest latencies "
        f"{sorted(d['processing_latency_ms'] for d in decided)[-5:]} ms)"
    )
    _checkpoint_then_decisions(settings, rest, job_id)  # shed decisions the checkpoint misses
    flink_cluster.kill_taskmanager()
    sent_at_kill = len(feed.valid)
    flink_cluster.start_taskmanager()

    def decided_after_kill() -> bool:
        decided = {d["transaction_id"] for d in _decisions(settings)}
        return any(tx in decided for tx in feed.valid[sent_at_kill:])

    process.wait_until(decided_after_kill, RECOVERY_S, "a decision after the kill", poll_s=1.0)
    feed.stop()
    valid = set(feed.valid)
    process.wait_until(
        lambda: {d["transaction_id"] for d in _decisions(settings)} >= valid,
        RECOVERY_S,
        "a decision for every payment",
        poll_s=1.0,
    )
    assert rest.checkpoints(job_id).restored >= 1  # the job really restarted from a checkpoint

    copies: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for decision in _decisions(settings):
        copies[decision["decision_id"]].append(decision)
    replayed = {ident: found for ident, found in copies.items() if len(found) > 1}
    shed_first = [ident for ident, found in replayed.items() if SHED in found[0]["reason_codes"]]
    print(f"{len(replayed)} decisions replayed, {len(shed_first)} of them shed the first time")
    assert len(shed_first) >= 20, "the scenario needs replayed decisions that were shed"
    mismatches = []
    for ident, (first, *later) in replayed.items():
        for again in later:
            for key in set(first) - WALL_CLOCK:
                if again[key] != first[key]:
                    mismatches.append(f"{ident}.{key}: first {first[key]!r}, replay {again[key]!r}")
    assert not mismatches, f"{len(mismatches)} replayed fields differ: {mismatches[:10]}"
