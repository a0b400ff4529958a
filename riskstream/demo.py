"""``make demo``: the whole chain on real parts in one command, leaving nothing running.

Starts the local Kafka (unless one runs), trains and promotes a model of the streamed world if the
registry has no champion that may serve it, runs the scoring job on the mini-cluster, brings its
state up to date with a warm start (:data:`HISTORY` of simulated history at full speed, payments
and labels), then streams the live part at ``demo.rate`` payments per second for ``demo.seconds``
and prints a summary every ``demo.interval_s``, then one final summary and the HTML run report
of the run's topics (:func:`finish`, docs/report.md).

Real traffic, not a time-lapse of one card: event times are the generator's, the simulated days
placed on the calendar so that the streamed window ends when the warm start began plus
``demo.seconds`` (so no event is ever ahead of the wall clock); the rate only paces (see
:mod:`riskstream.live`). The live part covers about ``rate x seconds / (2 x demo.cards)``
simulated days (4 at the defaults); each card pays about twice a simulated day, as the generator
and the training data have it. docs/demo.md.

Train on the world you score: the champion is trained on the stream's generator profile and
settings (:func:`demo_world`, the other simulator settings shared), drawn from the same seed
family (the stream's seed plus :data:`TRAINING_SEED_OFFSET`, so it never sees the streamed
payments), on enough rows that the block threshold rests on at least
``training.min_block_tail`` training scores (21 training days of 1,500 cards: about 63,000 rows,
about 126 scores above the block threshold), after :data:`WARMUP_DAYS` of history so its 30-day
features are as full as in steady state. docs/training.md has the measured training time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import progress
from core.config import Settings, replace, with_overrides
from core.errors import JobError, ModelContractError
from riskstream.infra.kafka import LocalKafka
from riskstream.infra.rest import FlinkRest
from riskstream.jobrunner import write_settings
from riskstream.live import (
    HISTORY,
    DecisionWatcher,
    LiveFeed,
    Schedule,
    cut,
    live_topics,
    payments_per_day,
    placed,
    valid_payments,
    warm_start,
)
from schemas.feature_set import PAYMENT_FEATURES
from scoring.registry import champion, check_contract, read_card
from training import registry, train
from training.data import simulated_training_data
from training.simulator.generate import Simulation, simulate

JOB_START_TIMEOUT_S = 180.0
JOB_STOP_TIMEOUT_S = 60.0
DEMO_PROFILE = "realistic"
"""The streamed world's generator profile; its size is ``demo.cards`` and ``demo.merchants``."""
DEMO_SEED = 11
TRAINING_SEED_OFFSET = 1_000
WARMUP_DAYS = 30
DEMO_TRAIN_DAYS = 21
DEMO_DELAY_DAYS = DEMO_TEST_DAYS = 7
DEMO_SPLIT = {
    "train_days": DEMO_TRAIN_DAYS,
    "delay_days": DEMO_DELAY_DAYS,
    "test_days": DEMO_TEST_DAYS,
    "stack_folds": 3,
    "test_start": "",
    "only_known_labels": True,
    "known_compromised": "label_time",
}
CLASSES = ("approve", "step_up", "block")
MS_PER_S = 1_000
BACKLOG_SHARE = 0.01
"""The summary calls the run saturated when more than this share of live payments is undecided."""


def demo_world(settings: Settings) -> dict[str, Any]:
    """The streamed world's generator settings: :data:`DEMO_PROFILE` with ``demo.cards`` and
    ``demo.merchants`` (the rest come from the ``simulator`` settings)."""
    return {
        "profile": DEMO_PROFILE,
        "cards": settings.demo.cards,
        "merchants": settings.demo.merchants,
    }


def training_world(settings: Settings, train_days: int) -> dict[str, Any]:
    """Simulator settings of the champion's training data (with ``train_days`` training days)."""
    days = WARMUP_DAYS + train_days + DEMO_DELAY_DAYS + DEMO_TEST_DAYS
    return {**demo_world(settings), "seed": DEMO_SEED + TRAINING_SEED_OFFSET, "days": days}


def min_train_days(settings: Settings) -> int:
    """The fewest whole training days of the demo world whose rows give the block threshold at
    least ``training.min_block_tail`` scores at or above it, plus one day of margin."""
    t = settings.training
    per_day = payments_per_day(replace(settings.simulator, **demo_world(settings)))
    return math.ceil(t.min_block_tail / t.block_rate / per_day) + 1


def _world_problems(card: dict[str, Any], world: dict[str, Any]) -> list[str]:
    generator = (card.get("training", {}).get("generator") or {}).get("settings") or {}
    return [
        f"it was trained on {generator.get(key)} {key}, the stream has {world[key]}"
        for key in ("cards", "merchants")
        if generator.get(key) != world[key]
    ]


def ensure_champion(settings: Settings, train_days: int | None = None) -> str:
    """The champion version if it may serve the demo stream, else a new one trained on the
    stream's world (``train_days`` training days, default :data:`DEMO_TRAIN_DAYS`) and promoted
    with the deployment checks of ``riskstream models promote``."""
    path = settings.registry
    streamed = demo_world(settings)
    policy = registry.DeployPolicy(str(streamed["profile"]), settings.training.min_block_tail)
    version = champion(path) if path.exists() else None
    if version is not None:
        card = read_card(path, version)
        try:
            check_contract(card, PAYMENT_FEATURES)
            problems = registry.deploy_problems(card, policy) + _world_problems(card, streamed)
        except ModelContractError as exc:
            problems = [str(exc)]
        if not problems:
            return version
        print(f"demo: champion {version} cannot serve this stream: {problems[0]}", flush=True)
    train_days = DEMO_TRAIN_DAYS if train_days is None else train_days
    world = training_world(settings, train_days)
    print(
        f"demo: training a model of the streamed world ({world['days']} days of "
        f"{world['cards']:,} {world['profile']} cards, {train_days} of them for training) ...",
        flush=True,
    )
    started = time.monotonic()
    sim = replace(settings.simulator, **world)
    split = replace(settings.training, **{**DEMO_SPLIT, "train_days": train_days})
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


@dataclass(frozen=True)
class Traffic:
    """The simulated world of one demo run and how it is streamed."""

    sim: Simulation
    schedule: Schedule
    history_payments: int
    """Well-formed distinct payments of the history: the job has caught up once it decided them."""

    @property
    def live_days(self) -> float:
        """Simulated days the live part covers."""
        return (self.schedule.live_to_ms - self.schedule.live_from_ms) / (86_400 * MS_PER_S)


def demo_traffic(settings: Settings, end_ms: int) -> Traffic:
    """The demo world placed so its streamed window ends at ``end_ms``: :data:`HISTORY` of
    history, then ``demo.rate x demo.seconds`` live payment records."""
    live_payments = math.ceil(settings.demo.rate * settings.demo.seconds)
    world = replace(settings.simulator, **demo_world(settings), seed=DEMO_SEED)
    sim = simulate(placed(world, end_ms, live_payments, HISTORY))
    schedule = cut(sim, live_payments, end_ms, HISTORY)
    return Traffic(sim, schedule, valid_payments(sim, schedule.history_tx))


@dataclass(frozen=True)
class DemoResult:
    """What one demo run measured: the final summary's numbers."""

    model_version: str
    went_live_utc: str
    warm_start_s: float
    history_payments: int
    history_labels: int
    live_seconds: float
    live_days: float
    sent: int
    decided: int
    classes: dict[str, int]
    configured: dict[str, float]
    """Target shares the champion's thresholds were chosen for (training.block_rate and
    step_up_rate; approve is the rest)."""
    expected: dict[str, float]
    """The champion's shares on its own test period (model card), empty if not recorded."""
    degraded: int
    frauds_sent: int
    caught: int
    missed: int
    blocked_fraud: int
    p50_ms: float
    """End to end: the feed handed a payment to the Kafka client -> its decision appended."""
    p99_ms: float
    out_of_range: int | None
    """Live decisions with a feature outside its training range (None: decisions do not say)."""
    ingest_p50_ms: float = float("nan")
    """From ingestion (the decision's ``received_time``: the job read the payment) to the
    decision appended to the decisions topic."""
    ingest_p99_ms: float = float("nan")
    drain_seconds: float = 0.0
    """Seconds spent after the live part waiting for the decisions still on their way."""
    live_payments: int = 0
    """Distinct well-formed live payments sent (each should get a decision)."""
    report: Path | None = field(default=None, compare=False)
    """The HTML run report :func:`finish` wrote (None: none written)."""

    @property
    def sent_per_s(self) -> float:
        """Payment records sent per second of the live part."""
        return self.sent / self.live_seconds if self.live_seconds > 0 else float("nan")

    @property
    def decided_per_s(self) -> float:
        """Decisions per second sustained over the live part and the drain after it."""
        elapsed = self.live_seconds + self.drain_seconds
        return self.decided / elapsed if elapsed > 0 else float("nan")

    @property
    def backlog(self) -> int:
        """Live payments sent but not decided when the job was stopped."""
        return max(self.live_payments - self.decided, 0)

    def share(self, verdict: str) -> float:
        """Share of the live decisions that are ``verdict``."""
        return self.classes.get(verdict, 0) / self.decided if self.decided else float("nan")

    @property
    def block_precision(self) -> float:
        """Frauds among blocked payments."""
        blocks = self.classes.get("block", 0)
        return self.blocked_fraud / blocks if blocks else float("nan")

    @property
    def caught_share(self) -> float:
        """Frauds stepped up or blocked among the decided frauds."""
        frauds = self.caught + self.missed
        return self.caught / frauds if frauds else float("nan")


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}%"


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.0f} ms"


def summary_lines(result: DemoResult) -> list[str]:
    """The final summary, as printed."""
    shares = "  ".join(
        f"{k} {result.classes.get(k, 0)} = {_pct(result.share(k))} "
        f"(configured {_pct(result.configured[k])}"
        + (f", model's test period {_pct(result.expected[k])}" if k in result.expected else "")
        + ")"
        for k in CLASSES
    )
    lines = [
        f"demo: summary of {result.live_seconds:.0f} s live ({result.live_days:.1f} simulated "
        f"days) with model {result.model_version}; live since {result.went_live_utc} after a "
        f"warm start of {result.history_payments:,} payments and {result.history_labels:,} "
        f"labels ({HISTORY // (86_400 * MS_PER_S)} days of history) in "
        f"{result.warm_start_s:.0f} s",
        f"  sent {result.sent:,} payment records ({result.sent_per_s:,.0f}/s), decided "
        f"{result.decided:,} ({result.decided_per_s:,.0f}/s sustained over the live part and "
        f"{result.drain_seconds:.0f} s of drain)",
        f"  {shares}",
        f"  frauds: {result.frauds_sent} in the stream, caught {result.caught} "
        f"({_pct(result.caught_share)}), missed {result.missed}; precision of blocks "
        f"{_pct(result.block_precision)} ({result.blocked_fraud} of "
        f"{result.classes.get('block', 0)} blocks are frauds)",
        f"  latency ingestion -> decision p50 {_ms(result.ingest_p50_ms)}  p99 "
        f"{_ms(result.ingest_p99_ms)};  end to end (sent -> decision in Kafka) p50 "
        f"{_ms(result.p50_ms)}  p99 {_ms(result.p99_ms)}  degraded {result.degraded} "
        f"({_pct(result.degraded / max(result.decided, 1))})",
    ]
    if result.backlog > BACKLOG_SHARE * max(result.live_payments, 1):
        lines.append(
            f"  saturated: {result.backlog:,} of {result.live_payments:,} live payments "
            f"({_pct(result.backlog / result.live_payments)}) were not decided when the job was "
            f"stopped; the job sustained {result.decided_per_s:,.0f} decisions/s against "
            f"{result.sent_per_s:,.0f} payments/s sent. The latencies are those of the decided "
            "payments: the backlog waited in Kafka, so it shows in the end-to-end figure, not "
            "in the job's own (ingestion -> decision)"
        )
    if result.out_of_range is not None:
        lines.append(
            f"  out of training range: {result.out_of_range} "
            f"({_pct(result.out_of_range / max(result.decided, 1))}) of the live decisions"
        )
    return lines


def report_dir(settings: Settings, prefix: str) -> Path:
    """Where the report of the demo run with topic prefix ``prefix`` goes."""
    return settings.paths.run / "demo" / prefix


def finish(result: DemoResult, settings: Settings, report_to: Path | None = None) -> Path | None:
    """Where every demo run that got to its live part ends: print the final summary, then (with
    ``demo.report`` and a ``report_to`` directory) write the HTML run report of the run's topics
    in ``settings`` while Kafka still runs, and print its path. Returns the report's path."""
    for line in summary_lines(result):
        print(line, flush=True)
    if report_to is None or not settings.demo.report:
        return None
    from riskstream.report.write import write_report

    started = time.monotonic()
    title = f"riskstream demo {report_to.name}: model {result.model_version}"
    written = write_report(settings, report_to, title)
    drawn = written.panels - len(written.missing)
    print(
        f"demo: report {written.path} ({drawn} of {written.panels} plots have data; "
        f"{time.monotonic() - started:.0f} s)",
        flush=True,
    )
    for key, why in written.missing.items():
        print(f"  no data for {key}: {why}", flush=True)
    return written.path


def _progress_line(watcher: DecisionWatcher, feed: LiveFeed, elapsed: float) -> str:
    decided = watcher.decided
    with watcher._lock:
        classes = " ".join(f"{k}={watcher.classes.get(k, 0)}" for k in CLASSES)
        degraded, caught, missed = watcher.degraded, watcher.caught, watcher.missed
    return (
        f"[{elapsed:5.0f} s] sent {feed.sent}  decided {decided} ({decided / elapsed:.0f}/s)  "
        f"{classes}  degraded={degraded}  latency from ingestion p50 "
        f"{_ms(watcher.percentile(50, from_ingestion=True))} p99 "
        f"{_ms(watcher.percentile(99, from_ingestion=True))}, end to end p50 "
        f"{_ms(watcher.percentile(50))} p99 {_ms(watcher.percentile(99))}  "
        f"frauds caught {caught} missed {missed}"
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


def catch_up(
    watcher: DecisionWatcher, job: subprocess.Popen[bytes], expected: int, settings: Settings
) -> None:
    """Wait until the job decided every history payment; print progress every interval."""
    demo = settings.demo
    started = time.monotonic()
    deadline = started + demo.catch_up_timeout_s
    last = -1.0
    while (done := watcher.history_decided) < expected:
        now = time.monotonic()
        if job.poll() is not None:
            raise JobError(f"the scoring job exited with status {job.returncode} in the warm start")
        if now > deadline:
            raise JobError(
                f"warm start: the job decided {done:,} of {expected:,} history payments in "
                f"{demo.catch_up_timeout_s:.0f} s (demo.catch_up_timeout_s)"
            )
        if now - last >= demo.interval_s:
            print(
                f"demo: warm start: {done:,} of {expected:,} history payments decided", flush=True
            )
            last = now
        time.sleep(0.2)


def _drain(watcher: DecisionWatcher, feed: LiveFeed, drain_s: float) -> float:
    """Wait at most ``drain_s`` for the live payments' decisions; returns the seconds waited."""
    started = time.monotonic()
    deadline = started + drain_s
    while watcher.decided < len(feed.sent_ms) and time.monotonic() < deadline:
        time.sleep(0.2)
    return time.monotonic() - started


def _result(
    settings: Settings,
    version: str,
    traffic: Traffic,
    watcher: DecisionWatcher,
    feed: LiveFeed,
    *,
    timing: tuple[float, float, float, float],
) -> DemoResult:
    went_live, warm_s, live_s, drain_s = timing
    card = read_card(settings.registry, version)
    expected = {k: float(v) for k, v in card.get("expected_decisions", {}).items() if k in CLASSES}
    t = settings.training
    schedule = traffic.schedule
    with watcher._lock:
        classes = {k: watcher.classes.get(k, 0) for k in CLASSES}
        numbers = (watcher.degraded, watcher.caught, watcher.missed, watcher.blocked_fraud)
        ranged = watcher.out_of_range if watcher.with_range_field else None
    return DemoResult(
        model_version=version,
        went_live_utc=datetime.fromtimestamp(went_live, UTC).strftime("%H:%M:%S UTC"),
        warm_start_s=warm_s,
        history_payments=traffic.history_payments,
        history_labels=len(schedule.history_labels),
        live_seconds=live_s,
        live_days=traffic.live_days,
        sent=feed.sent,
        decided=sum(classes.values()),
        classes=classes,
        configured={
            "approve": 1.0 - t.block_rate - t.step_up_rate,
            "step_up": t.step_up_rate,
            "block": t.block_rate,
        },
        expected=expected,
        degraded=numbers[0],
        frauds_sent=sum(feed.fraud.values()),
        caught=numbers[1],
        missed=numbers[2],
        blocked_fraud=numbers[3],
        p50_ms=watcher.percentile(50),
        p99_ms=watcher.percentile(99),
        out_of_range=ranged,
        ingest_p50_ms=watcher.percentile(50, from_ingestion=True),
        ingest_p99_ms=watcher.percentile(99, from_ingestion=True),
        drain_seconds=drain_s,
        live_payments=len(feed.sent_ms),
    )


def _start_job(settings: Settings) -> subprocess.Popen[bytes]:
    config = write_settings(settings, settings.paths.run / "demo" / "settings.yaml")
    log = Path(config).with_name("job.log")
    with log.open("wb") as out:
        command = [sys.executable, "-m", "riskstream", "--config", str(config)]
        return subprocess.Popen(
            [*command, "run", "--job", "scoring"], stdout=out, stderr=subprocess.STDOUT
        )


def _stop_job(job: subprocess.Popen[bytes], cancelled: bool) -> None:
    """Wait for the job process to end once its job was cancelled; if the run ended otherwise
    (an error, Ctrl-C before the live part), terminate it."""
    if cancelled:
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.wait(timeout=JOB_STOP_TIMEOUT_S)
    if job.poll() is None:
        job.terminate()
        try:
            job.wait(timeout=JOB_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            job.kill()
            job.wait()


def run(settings: Settings) -> DemoResult:
    """Run the demo (``settings.demo``); returns what it measured (Ctrl-C during the live part
    ends it early with a summary, before it stops the run)."""
    broker = LocalKafka(settings)
    started_kafka = broker.running_pid() is None
    if started_kafka:
        print(f"demo: starting Kafka at {broker.bootstrap} ...", flush=True)
        broker.start()
    demo = settings.demo
    job: subprocess.Popen[bytes] | None = None
    feed = watcher = None
    cancelled = False
    try:
        version = ensure_champion(settings)
        # The windowed analytics crawl on a catch-up (~40 payments/s: docs/benchmarks.md), and
        # the warm start is one; the demo's summary does not read them.
        prefix = f"demo-{int(time.time())}"
        live = with_overrides(live_topics(settings, prefix), scoring={"analytics": False})
        print(f"demo: scoring with model {version}; starting the job on the mini-cluster ...")
        began = time.time()
        job = _start_job(live)
        traffic = demo_traffic(live, int((began + demo.seconds) * MS_PER_S))
        print(
            f"demo: warm start: sending {HISTORY // (86_400 * MS_PER_S)} days of history "
            f"({len(traffic.schedule.history_tx):,} payment records, "
            f"{len(traffic.schedule.history_labels):,} labels) at full speed ...",
            flush=True,
        )
        feed = LiveFeed(live, traffic.sim, demo.rate, traffic.schedule)
        watcher = DecisionWatcher(live, feed)
        watcher.start()
        warm_start(live, traffic.sim, traffic.schedule)
        rest = FlinkRest(f"http://127.0.0.1:{settings.flink.local_rest_port}")
        job_id = _wait_running(rest, job)
        catch_up(watcher, job, traffic.history_payments, live)
        went_live = time.time()
        print(
            f"demo: the job caught up with the history {went_live - began:.0f} s after the warm "
            f"start began; live from {datetime.fromtimestamp(went_live, UTC):%H:%M:%S} UTC: "
            f"{demo.rate:.0f} payments/s for {demo.seconds:.0f} s, "
            f"{traffic.live_days:.1f} simulated days (Ctrl-C stops); web UI: {rest.base_url}",
            flush=True,
        )
        feed.start()
        live_began = time.monotonic()
        try:
            while (elapsed := time.monotonic() - live_began) < demo.seconds and not feed.done:
                time.sleep(min(demo.interval_s, max(demo.seconds - elapsed, 0.1)))
                print(_progress_line(watcher, feed, time.monotonic() - live_began), flush=True)
            feed.stop()
            live_s = time.monotonic() - live_began
            drain_s = _drain(watcher, feed, demo.drain_s)
        except KeyboardInterrupt:
            print("demo: interrupted, stopping ...")
            feed.stop()
            live_s, drain_s = time.monotonic() - live_began, 0.0
        rest.cancel(job_id)
        cancelled = True
        timing = (went_live, went_live - began, live_s, drain_s)
        result = _result(settings, version, traffic, watcher, feed, timing=timing)
        report = finish(result, live, report_dir(settings, prefix))
        return dataclasses.replace(result, report=report)
    finally:
        if feed is not None:
            feed.stop()
        if watcher is not None:
            watcher.stop()
        if job is not None:
            _stop_job(job, cancelled)
        if started_kafka:
            broker.stop()
            print("demo: Kafka stopped; nothing left running")
