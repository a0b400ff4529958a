"""``make demo``: the whole chain on real parts in one command, leaving nothing running.

Starts the local Kafka (unless one runs), trains and promotes a small model if the registry has no
champion, runs the scoring job on the mini-cluster, streams simulated payments at a modest rate
with event time = now, and prints a live summary until the time is up or Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings
from core.errors import JobError
from riskstream.infra.kafka import LocalKafka
from riskstream.infra.rest import FlinkRest
from riskstream.jobrunner import write_settings
from riskstream.live import DecisionWatcher, LiveFeed, live_topics
from schemas.feature_set import PAYMENT_FEATURES
from scoring.registry import champion
from training import registry, train
from training.data import simulated_training_data
from training.simulator.generate import simulate

JOB_START_TIMEOUT_S = 180.0
JOB_STOP_TIMEOUT_S = 60.0
DEMO_TRAINING = {"profile": "handbook", "customers": 200, "terminals": 400, "days": 24, "seed": 3}
DEMO_SPLIT = {"train_days": 5, "delay_days": 3, "test_days": 4, "stack_folds": 2}
DEMO_TRAFFIC = {"profile": "realistic", "days": 10, "cards": 1_500, "merchants": 200, "seed": 11}


@dataclass(frozen=True)
class DemoOptions:
    """How long and how fast the demo runs."""

    seconds: float = 60.0
    rate: float = 200.0
    interval_s: float = 5.0


def ensure_champion(settings: Settings) -> str:
    """The champion version, training and promoting a small one first if there is none."""
    path = settings.registry
    version = champion(path) if path.exists() else None
    if version is not None:
        return version
    print(f"demo: no champion in {path}; training a small model (about a minute) ...", flush=True)
    sim = dataclasses.replace(settings.simulator, **DEMO_TRAINING)  # type: ignore[arg-type]
    split = dataclasses.replace(settings.training, **DEMO_SPLIT)  # type: ignore[arg-type]
    data = simulated_training_data(sim, quiet=True)
    run = train.run(data.frame, data.start_ms, data.end_ms, split, PAYMENT_FEATURES, quiet=True)
    folder = registry.write_version(path, run, data.source)
    registry.promote(path, folder.name)
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
    while time.monotonic() < deadline:
        if job.poll() is not None:
            raise JobError(f"the scoring job exited with status {job.returncode} during start")
        if rest.reachable():
            running = [j for j in rest.jobs() if j.state == "RUNNING"]
            if running and rest.tasks_running(running[0].job_id):
                return running[0].job_id
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
        sim = simulate(dataclasses.replace(settings.simulator, **DEMO_TRAFFIC))  # type: ignore[arg-type]
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
