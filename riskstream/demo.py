"""``make demo``: the whole chain on real parts in one command, leaving nothing running.

Starts the local Kafka (unless one runs), trains and promotes a model of the streamed world if the
registry has no champion that may serve it, runs the scoring job on the mini-cluster, streams
simulated payments at a modest rate with event time = now, and prints a live summary until the
time is up or Ctrl-C.

Train on the world you score: the champion is trained on the stream's generator profile and
settings (:data:`DEMO_WORLD`, the other simulator settings shared), drawn from the same seed
family (the stream's seed plus :data:`TRAINING_SEED_OFFSET`, so it never sees the streamed
payments), on enough rows that the block threshold rests on at least
``training.min_block_tail`` training scores (21 training days of 1,500 cards: about 63,000 rows,
about 126 scores above the block threshold), after :data:`WARMUP_DAYS` of history so its 30-day
features are as full as in steady state. docs/training.md has the measured training time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core import progress
from core.config import Settings, replace
from core.errors import JobError, ModelContractError
from riskstream.infra.kafka import LocalKafka
from riskstream.infra.rest import FlinkRest
from riskstream.jobrunner import write_settings
from riskstream.live import DecisionWatcher, LiveFeed, live_topics
from schemas.feature_set import PAYMENT_FEATURES
from scoring.registry import champion, check_contract, read_card
from training import registry, train
from training.data import simulated_training_data
from training.simulator.generate import simulate

JOB_START_TIMEOUT_S = 180.0
JOB_STOP_TIMEOUT_S = 60.0
DEMO_WORLD = {"profile": "realistic", "cards": 1_500, "merchants": 200}
"""The streamed world's generator settings (the rest come from the ``simulator`` settings)."""
DEMO_SEED = 11
TRAINING_SEED_OFFSET = 1_000
WARMUP_DAYS = 30
DEMO_SPLIT = {
    "train_days": 21,
    "delay_days": 7,
    "test_days": 7,
    "stack_folds": 3,
    "test_start": "",
    "only_known_labels": True,
    "known_compromised": "label_time",
}
DEMO_TRAINING = {
    **DEMO_WORLD,
    "seed": DEMO_SEED + TRAINING_SEED_OFFSET,
    "days": WARMUP_DAYS + 21 + 7 + 7,
}
DEMO_TRAFFIC = {**DEMO_WORLD, "days": 10, "seed": DEMO_SEED}


@dataclass(frozen=True)
class DemoOptions:
    """How long and how fast the demo runs."""

    seconds: float = 60.0
    rate: float = 200.0
    interval_s: float = 5.0


def ensure_champion(settings: Settings) -> str:
    """The champion version if it may serve the demo stream, else a new one trained on the
    stream's world and promoted (with the deployment checks of ``riskstream models promote``)."""
    path = settings.registry
    policy = registry.DeployPolicy(str(DEMO_TRAFFIC["profile"]), settings.training.min_block_tail)
    version = champion(path) if path.exists() else None
    if version is not None:
        card = read_card(path, version)
        try:
            check_contract(card, PAYMENT_FEATURES)
            problems = registry.deploy_problems(card, policy)
        except ModelContractError as exc:
            problems = [str(exc)]
        if not problems:
            return version
        print(f"demo: champion {version} cannot serve this stream: {problems[0]}", flush=True)
    print(
        f"demo: training a model of the streamed world ({DEMO_TRAINING['days']} days of "
        f"{DEMO_WORLD['cards']:,} {DEMO_WORLD['profile']} cards, about two minutes) ...",
        flush=True,
    )
    started = time.monotonic()
    sim = replace(settings.simulator, **DEMO_TRAINING)
    split = replace(settings.training, **DEMO_SPLIT)
    quiet = not progress.shown()  # in a terminal the warm-up shows its steps and bars
    data = simulated_training_data(sim, quiet=quiet)
    run = train.run(data.frame, data.start_ms, data.end_ms, split, PAYMENT_FEATURES, quiet=quiet)
    folder = registry.write_version(path, run, data.source, data.generator)
    registry.promote(path, folder.name, policy)
    support = run.threshold_support
    print(
        f"demo: trained and promoted {folder.name} in {time.monotonic() - started:.0f} s "
        f"({run.rows['train']:,} training rows, {run.rows['train_fraud']:,} frauds; block "
        f"threshold on {support['block_tail']} scores)",
        flush=True,
    )
    return folder.name


def _summary(watcher: DecisionWatcher, feed: LiveFeed, elapsed: float) -> str:
    decided = sum(watcher.classes.values())
    classes = " ".join(f"{k}={watcher.classes.get(k, 0)}" for k in ("approve", "step_up", "block"))
    return (
        f"[{elapsed:5.0f} s] sent {feed.sent}  decided {decided} ({decided / elapsed:.0f}/s)  "
        f"{classes}  degraded={watcher.degraded}  latency p50 {watcher.percentile(50):.0f} ms "
        f"p99 {watcher.percentile(99):.0f} ms  "
        f"frauds caught {watcher.caught} missed {watcher.missed}"
    )


def _wait_running(rest: FlinkRest, job: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + JOB_START_TIMEOUT_S
    with progress.Progress(None, "demo: starting the scoring job", "checks") as waiting:
        while time.monotonic() < deadline:
            if job.poll() is not None:
                raise JobError(f"the scoring job exited with status {job.returncode} during start")
            if rest.reachable():
                running = [j for j in rest.jobs() if j.state == "RUNNING"]
                if running and rest.tasks_running(running[0].job_id):
                    return running[0].job_id
            waiting.advance()
            time.sleep(1)
    raise JobError(f"the scoring job was not running after {JOB_START_TIMEOUT_S:.0f} s")


def run(settings: Settings, options: DemoOptions) -> int:
    """Run the demo; returns an exit status."""
    broker = LocalKafka(settings)
    started_kafka = broker.running_pid() is None
    if started_kafka:
        print(f"demo: starting Kafka at {broker.bootstrap} ...", flush=True)
        broker.start()
    job: subprocess.Popen[bytes] | None = None
    feed = watcher = None
    try:
        version = ensure_champion(settings)
        live = live_topics(settings, f"demo-{int(time.time())}")
        config = write_settings(live, settings.paths.run / "demo" / "settings.yaml")
        print(f"demo: scoring with model {version}; starting the job on the mini-cluster ...")
        log = Path(config).with_name("job.log")
        with log.open("wb") as out:
            job = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "riskstream",
                    "--config",
                    str(config),
                    "run",
                    "--job",
                    "scoring",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        rest = FlinkRest(f"http://127.0.0.1:{settings.flink.local_rest_port}")
        job_id = _wait_running(rest, job)
        sim = simulate(replace(settings.simulator, **DEMO_TRAFFIC))
        feed = LiveFeed(live, sim, options.rate)
        watcher = DecisionWatcher(live, feed)
        feed.start()
        watcher.start()
        began = time.monotonic()
        print(
            f"demo: streaming payments at {options.rate:.0f}/s for {options.seconds:.0f} s "
            f"(Ctrl-C stops); web UI: {rest.base_url}"
        )
        try:
            while (elapsed := time.monotonic() - began) < options.seconds:
                time.sleep(min(options.interval_s, max(options.seconds - elapsed, 0.1)))
                print(_summary(watcher, feed, time.monotonic() - began), flush=True)
        except KeyboardInterrupt:
            print("demo: interrupted, stopping ...")
        rest.cancel(job_id)
        return 0
    finally:
        if feed is not None:
            feed.stop()
        if watcher is not None:
            watcher.stop()
        if job is not None:
            try:
                job.wait(timeout=JOB_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                job.kill()
                job.wait()
        if started_kafka:
            broker.stop()
            print("demo: Kafka stopped; nothing left running")
