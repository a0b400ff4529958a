"""Benchmark: recovery from a lost TaskManager, and checkpoints of 100k cards of state.

Starts a private broker and a private standalone cluster (free ports, temporary run dir), trains a
small champion, and submits the scoring job (parallelism 1, RocksDB incremental checkpoints every
``CHECKPOINT_MS``). Then:

1. **checkpoint size and duration**: one valid payment for each of ``CARDS`` distinct cards
   (the feature stages run about 1-2k events/s here, so one payment per card keeps the run short);
   once every payment is decided, the next completed checkpoints' end-to-end duration, full state
   size and incrementally checkpointed size are read from ``/jobs/<id>/checkpoints``;
2. **recovery**: the cluster runs a standby TaskManager with free slots (``riskstream cluster
   add-taskmanager``); live payments at ``RATE_PER_S`` (event time = now), then the TaskManager
   running the job is SIGKILLed. recovery_s is the time from the kill to the first decision of a
   payment sent after the kill (also reported: to the first decision of any payment appended after
   it). Payments and decisions use LogAppendTime, so times are the broker's. The timeline says
   where the time goes: loss detected (the job's exception history), checkpoint restored, every
   task RUNNING again (polled), first decision.

The JobManager notices a dead TaskManager when heartbeat RPCs to it fail
(``flink.heartbeat_rpc_failures`` in a row, every ``flink.heartbeat_interval_ms``); the bench runs
with the settings' defaults (1 s, 2 failures; Flink's defaults take ~20 s to detect).

Run from the repo root: ``python -m bench.recovery``; writes ``bench/results/recovery.json``.
``--replay-memory-records N`` is a diagnostic run with another ``scoring.replay_memory_records``
(0: the UDF reads no decisions back when it opens); it prints the table and writes no file.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import Consumer, Producer

from bench.common import bench_settings, private_broker, table, write_results
from core.config import Settings, with_overrides
from core.net import free_port
from riskstream import jobrunner
from riskstream.demo import ensure_champion
from riskstream.infra.cluster import ROLE_ACTIVE, LocalCluster
from riskstream.infra.process import wait_until
from riskstream.infra.rest import CheckpointStats, FlinkRest
from riskstream.live import live_topics
from riskstream.support.factories import random_payment
from riskstream.support.kafka_io import Outgoing, produce_at_rate
from schemas.records import Transaction

JOB = "riskstream-scoring"
CARDS = 100_000
TERMINALS = 30_000
RATE_PER_S = 50.0
BEFORE_KILL_S = 10.0
CHECKPOINT_MS = 5_000
NO_SHEDDING_MS = 3_600_000
JOB_START_S = 300.0
BACKLOG_S = 600.0
RECOVERY_S = 180.0
CHECKPOINT_WAIT_S = 120.0
POLL_S = 0.2
TARGET_RECOVERY_S = 10.0
SLOWEST_TASKS = 4


def payment(rng: random.Random, card: int) -> Transaction:
    """A valid payment of ``card``, event time now; 40% online with the card's own device."""
    now = int(time.time() * 1000)
    return random_payment(rng, card, now, terminals=TERMINALS, prefix="r", source="bench-recovery")


class Sender:
    """Produces payments; remembers when each was handed to the producer (wall ms)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.kafka.topic("transactions")
        self.producer = Producer({**settings.kafka.client_config(), "linger.ms": "0"})
        self.rng = random.Random(11)
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _payments(self, cards: Iterator[int]) -> Iterator[Outgoing]:
        """Payments of ``cards``, keyed by card; counts each once it was produced."""
        for card in cards:
            tx = payment(self.rng, card)
            yield self.topic, msgspec.json.encode(tx), tx.card_id, None
            self.sent += 1

    def backlog(self, cards: int) -> None:
        """One payment for each card, as fast as the producer takes them."""
        produce_at_rate(self.producer, self._payments(iter(range(cards))), None, pace_every=100)
        self.sent = cards

    def start_paced(self, rate: float) -> None:
        """Live payments of random known cards at ``rate`` per second until :meth:`stop`."""
        self._thread = threading.Thread(target=self._paced, args=(rate,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the paced feed and flush."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.producer.flush(30)

    def _paced(self, rate: float) -> None:
        cards = iter(lambda: self.rng.randrange(CARDS), -1)
        produce_at_rate(
            self.producer, self._payments(cards), rate, stop=self._stop, flush_timeout_s=30
        )


class Decisions:
    """Reads the decisions topic: (append ms, transaction id) of every record, and the append
    time of every payment (the transactions topic), in background threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.decided: list[tuple[int, str]] = []
        self.distinct: set[str] = set()
        self.payments: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._read, args=("decisions",), daemon=True),
            threading.Thread(target=self._read, args=("transactions",), daemon=True),
        ]

    def start(self) -> None:
        """Start both readers."""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop both readers."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def count(self) -> int:
        """Distinct payments decided so far."""
        with self._lock:
            return len(self.distinct)

    def first_after(self, t_ms: int, sent_after: bool) -> int | None:
        """Append time of the first decision appended after ``t_ms`` (``sent_after``: of a
        payment itself appended after ``t_ms``)."""
        with self._lock:
            times = [
                at
                for at, tx in self.decided
                if at > t_ms and (not sent_after or self.payments.get(tx, 0) > t_ms)
            ]
        return min(times) if times else None

    def _read(self, role: str) -> None:
        kafka = self.settings.kafka
        consumer = Consumer(
            {
                **kafka.client_config(),
                "group.id": f"bench-recovery-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([kafka.topic(role)])
        decoder = msgspec.json.Decoder()
        try:
            while not self._stop.is_set():
                for message in consumer.consume(1000, timeout=POLL_S):
                    value = message.value()
                    if message.error() is not None or value is None:
                        continue
                    at = message.timestamp()[1]
                    if role == "decisions":
                        tx = decoder.decode(value)["transaction_id"]
                        with self._lock:
                            self.decided.append((at, tx))
                            self.distinct.add(tx)
                    else:
                        event_id = decoder.decode(value)["event_id"]
                        with self._lock:
                            self.payments[event_id] = at
        finally:
            consumer.close()


def _next_checkpoints(rest: FlinkRest, job_id: str, count: int) -> list[CheckpointStats]:
    """The next ``count`` completed checkpoints, as each completes."""
    seen: list[CheckpointStats] = []
    last = rest.checkpoints(job_id).latest_id or 0
    deadline = time.monotonic() + count * CHECKPOINT_WAIT_S
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} checkpoints completed in time: {seen}")
        stats = rest.checkpoints(job_id)
        if (stats.latest_id or 0) > last:
            seen.append(stats)
            last = stats.latest_id or 0
        time.sleep(POLL_S)
    return seen


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
_STEPS = {
    "first task deploying": "switched from CREATED to DEPLOYING",
    "first task initializing": "switched from DEPLOYING to INITIALIZING",
    "last task running": "switched from INITIALIZING to RUNNING",
}


def _task_steps(cluster: LocalCluster, after_ms: int) -> dict[str, int]:
    """When the TaskManagers' logs say the restarted tasks reached each state (epoch ms): the
    first deploying, the first initializing (artifacts in place, operators opening: Python,
    models, state restore), the last running."""
    found: dict[str, list[int]] = {step: [] for step in _STEPS}
    for log in cluster.log_dir.glob("*taskexecutor*.log"):
        for line in log.read_text(errors="replace").splitlines():
            stamp = _LOG_TIME.match(line)
            if stamp is None:
                continue
            at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
            at_ms = int(at.timestamp() * 1000)
            for step, text in _STEPS.items():
                if at_ms >= after_ms and text in line:
                    found[step].append(at_ms)
    pick = {"last task running": max}
    return {step: pick.get(step, min)(times) for step, times in found.items() if times}


_TASK_SWITCH = re.compile(r" - (.+?) \(\d+/\d+\)#\d+ \(\S+\) switched from (\w+) to (\w+)")


def _task_initializing_s(cluster: LocalCluster, after_ms: int) -> dict[str, float]:
    """Seconds each restarted task spent INITIALIZING (operators opening: Python workers,
    models, state restore), by task name, slowest first: where the standby's time goes."""
    started: dict[str, int] = {}
    spent: dict[str, float] = {}
    for log in cluster.log_dir.glob("*taskexecutor*.log"):
        for line in log.read_text(errors="replace").splitlines():
            stamp = _LOG_TIME.match(line)
            switch = _TASK_SWITCH.search(line)
            if stamp is None or switch is None:
                continue
            at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
            at_ms = int(at.timestamp() * 1000)
            if at_ms < after_ms:
                continue
            task, old, new = switch.groups()
            if new == "INITIALIZING":
                started[task] = at_ms
            elif old == "INITIALIZING" and new == "RUNNING" and task in started:
                spent[task] = round((at_ms - started[task]) / 1000, 2)
    return dict(sorted(spent.items(), key=lambda item: -item[1]))


def _tasks_running_again(rest: FlinkRest, job_id: str, kill_ms: int) -> int:
    """Wall ms when every task runs again after the kill: first seen not running (the loss was
    noticed), then running."""

    def loss_seen() -> bool:
        # On a loaded machine the restart can be over before the first poll: a failure recorded
        # after the kill counts too.
        return not rest.tasks_running(job_id) or any(
            f.timestamp_ms >= kill_ms for f in rest.failures(job_id)
        )

    wait_until(loss_seen, RECOVERY_S, "the loss", poll_s=POLL_S)
    wait_until(lambda: rest.tasks_running(job_id), RECOVERY_S, "tasks running", poll_s=POLL_S)
    return max(int(time.time() * 1000), kill_ms)


def run(settings: Settings, keep_logs: bool = False) -> dict[str, Any]:
    """Start the cluster and the job, measure, stop; returns the figures and details
    (``keep_logs``: copy the cluster's logs to a temporary directory that stays)."""
    cluster = LocalCluster(settings)
    cluster.start()
    cluster.start_taskmanager()  # the standby
    rest = FlinkRest(cluster.rest_url)
    decisions = Decisions(settings)
    sender = Sender(settings)
    job_id = ""
    try:
        jobrunner.submit_to_cluster(settings, "scoring", detached=True)
        job_id = rest.running_job(name=JOB).job_id
        wait_until(
            lambda: rest.tasks_running(job_id), JOB_START_S, "the job's tasks", poll_s=POLL_S
        )
        decisions.start()

        started = time.monotonic()
        sender.backlog(CARDS)
        wait_until(
            lambda: decisions.count() >= CARDS,
            BACKLOG_S,
            f"decisions for {CARDS} cards",
            poll_s=POLL_S,
        )
        backlog_s = time.monotonic() - started
        checkpoints = _next_checkpoints(rest, job_id, 2)
        state = checkpoints[-1]

        sender.start_paced(RATE_PER_S)
        time.sleep(BEFORE_KILL_S)
        before = rest.checkpoints(job_id)
        active = [p.pid for p in cluster.processes() if p.role == ROLE_ACTIVE]
        kill_ms = int(time.time() * 1000)
        cluster.kill_taskmanager(active[-1] if active else None)
        running_ms = _tasks_running_again(rest, job_id, kill_ms)
        wait_until(
            lambda: decisions.first_after(kill_ms, sent_after=True) is not None,
            RECOVERY_S,
            "a decision after the kill",
            poll_s=POLL_S,
        )
        new_ms = decisions.first_after(kill_ms, sent_after=True) or 0
        sender.stop()
        restored = rest.checkpoints(job_id)
        restarts = rest.job_metric(job_id, "numRestarts")
        failures = [f for f in rest.failures(job_id) if f.timestamp_ms >= kill_ms]
        detected = [f.timestamp_ms for f in failures]
        restore_ms = rest.restore_timestamp(job_id)
        # Decisions appended just after kill_ms may predate the process's death: count from the
        # moment the loss was detected.
        any_ms = decisions.first_after(min(detected) if detected else kill_ms, False) or 0
        task_steps = _task_steps(cluster, kill_ms)
        initializing = _task_initializing_s(cluster, kill_ms)

        def since_kill(at_ms: int | None) -> float | None:
            return round((at_ms - kill_ms) / 1000, 2) if at_ms else None

        return {
            "recovery_s": round((new_ms - kill_ms) / 1000, 2),
            "recovery_any_decision_s": round((any_ms - kill_ms) / 1000, 2),
            "timeline_s": {
                "loss_detected": since_kill(min(detected) if detected else None),
                "checkpoint_restored": since_kill(restore_ms),
                **{f"standby: {k}": since_kill(v) for k, v in task_steps.items()},
                "tasks_running": since_kill(running_ms),
                "first_decision_after_detection": since_kill(any_ms),
                "first_decision_of_a_new_payment": since_kill(new_ms),
            },
            "task_initializing_s": initializing,
            "failures": [f"{f.task}: {f.exception}" for f in failures],
            "checkpoint_ms": state.latest_duration_ms,
            "checkpoint_bytes": state.latest_state_bytes,
            "checkpointed_bytes_incremental": state.latest_checkpointed_bytes,
            "bytes_per_card": round(state.latest_state_bytes / CARDS),
            "backlog_decisions_per_s": round(CARDS / backlog_s),
            "checkpoints_measured": [
                {
                    "id": c.latest_id,
                    "duration_ms": c.latest_duration_ms,
                    "state_bytes": c.latest_state_bytes,
                    "checkpointed_bytes": c.latest_checkpointed_bytes,
                }
                for c in checkpoints
            ],
            "last_checkpoint_before_kill": before.latest_id,
            "restored_checkpoint": restored.restored_id,
            "num_restarts": restarts,
        }
    except Exception:
        # The run dir is temporary: keep the cluster's logs and say what the job went through.
        kept = Path(tempfile.mkdtemp(prefix="riskstream-bench-recovery-logs-"))
        shutil.copytree(cluster.log_dir, kept / "log", dirs_exist_ok=True)
        job_state = cluster.job_states().get(job_id)
        failures = rest.failures(job_id) if job_id and job_state else []
        print(f"job {job_id} is {job_state}; failures: {[(f.task, f.exception) for f in failures]}")
        print(f"cluster logs kept in {kept}")
        raise
    finally:
        sender.stop()
        decisions.stop()
        try:
            if cluster.job_states().get(job_id) in ("RUNNING", "RESTARTING"):
                rest.cancel(job_id)
        finally:
            cluster.stop()
            if keep_logs:
                kept = Path(tempfile.mkdtemp(prefix="riskstream-bench-recovery-logs-"))
                shutil.copytree(cluster.log_dir, kept / "log", dirs_exist_ok=True)
                print(f"cluster logs kept in {kept}")


def main() -> None:
    """Run and report."""
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__)
    parser.add_argument(
        "--replay-memory-records",
        type=int,
        default=None,
        help="diagnostic: this scoring.replay_memory_records instead of the default; no file",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the cluster's logs (the path is printed)"
    )
    args = parser.parse_args()
    memory = (
        {}
        if args.replay_memory_records is None
        else {"replay_memory_records": args.replay_memory_records}
    )
    with bench_settings("recovery") as base, private_broker(base):
        ensure_champion(base)
        settings = with_overrides(
            live_topics(base, f"recovery-{int(time.time())}"),
            flink={"rpc_port": free_port(), "parallelism": 1},
            checkpoint={"interval_ms": CHECKPOINT_MS},
            metrics={"reporter": False},
            scoring={"latency_budget_ms": NO_SHEDDING_MS, **memory},
        )
        r = run(settings, keep_logs=args.keep_logs)
        print(
            table(
                ["figure", "measured", "target"],
                [
                    ["recovery: kill -> first decision of a payment sent after it (s)",
                     r["recovery_s"], TARGET_RECOVERY_S],
                    ["recovery: kill -> first decision appended after it (s)",
                     r["recovery_any_decision_s"], "-"],
                    *[[f"  timeline: {step} (s after the kill)", at, "-"]
                      for step, at in r["timeline_s"].items()],
                    *[[f"  initializing: {task[:60]} (s)", spent, "-"]
                      for task, spent in list(r["task_initializing_s"].items())[:SLOWEST_TASKS]],
                    [f"checkpoint duration with {CARDS:,} cards (ms)", r["checkpoint_ms"], "-"],
                    ["checkpoint state size (bytes)", r["checkpoint_bytes"], "-"],
                    ["  of which written by this incremental checkpoint",
                     r["checkpointed_bytes_incremental"], "-"],
                    ["state bytes per card", r["bytes_per_card"], "-"],
                ],
            )
        )  # fmt: skip
        if memory:
            print(f"diagnostic run ({memory}): no result file written")
            return
        figures = {
            k: r[k]
            for k in (
                "recovery_s",
                "recovery_any_decision_s",
                "checkpoint_ms",
                "checkpoint_bytes",
                "bytes_per_card",
            )
        }
        path = write_results(
            "recovery",
            figures,
            {
                **r,
                "cards": CARDS,
                "payments_per_card": 1,
                "live_rate_per_s": RATE_PER_S,
                "checkpoint_interval_ms": CHECKPOINT_MS,
                "standby_taskmanager": True,
                "heartbeat_interval_ms": settings.flink.heartbeat_interval_ms,
                "heartbeat_timeout_ms": settings.flink.heartbeat_timeout_ms,
                "heartbeat_rpc_failures": settings.flink.heartbeat_rpc_failures,
                "local_recovery": settings.flink.local_recovery,
                "state_backend": settings.checkpoint.state_backend,
                "incremental": settings.checkpoint.incremental,
                "restart_attempts": settings.checkpoint.restart_attempts,
                "restart_delay_ms": settings.checkpoint.restart_delay_ms,
                "targets": {"recovery_s": TARGET_RECOVERY_S},
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
