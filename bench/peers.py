"""Benchmark: riskstream side by side with the peers a user would pick instead, in one run.

Three systems run the same features (the project's feature code: the Flink stages and the Python
driver call the same :mod:`features.stages` functions) and the same champion ONNX models on the
same payments from one private broker:

1. ``quix``: a Quix Streams application (``bench/peer_loops.py``, in ``.venv-quix``);
2. ``plain``: a plain confluent-kafka consumer loop (poll a batch, features in memory, score the
   batch, produce);
3. ``riskstream``: the scoring job on the mini-cluster (``riskstream run --job scoring``).

Each runs in its own process, one at a time, with the same settings (no load shedding, analytics
off, prediction log at least once, as ``bench/throughput.py``) and writes the same decision,
prediction-log and alert records. One realistic simulation is used twice:

- **throughput**: the whole simulation is produced once to shared input topics; each system reads
  that backlog bounded, and its rate is taken from its decisions' append times (``LogAppendTime``)
  between the 10th and 90th percentile, as ``bench/throughput.py`` does;
- **latency**: for each system fresh topics, the system started and idle, then the first payments
  of the simulation paced at each of :data:`RATES`/s (:class:`riskstream.live.LiveFeed`); a
  payment's latency
  is from the moment the feeder handed it to the Kafka client to its decision's append time
  (:class:`riskstream.live.DecisionWatcher`, the method of ``bench/latency.py``), after a warm-up.

Run from the repo root, alone on the machine: ``make peers-env`` once, then
``python -m bench.peers``; writes ``bench/results/peers.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from bench.common import bench_settings, private_broker, table, write_results
from bench.latency import _start_job
from bench.peer_loops import READY, caught_up, percentiles, sustained_rate
from core.config import Settings, replace, with_overrides
from core.errors import ServiceError
from core.progress import Progress
from riskstream.demo import ensure_champion
from riskstream.jobrunner import write_settings
from riskstream.live import DecisionWatcher, LiveFeed, live_topics
from riskstream.simulate_kafka import produce
from riskstream.support.kafka_io import read_to_end
from training.simulator.generate import Simulation, simulate

ROOT = Path(__file__).resolve().parent.parent
QUIX_PYTHON = ROOT / ".venv-quix" / "bin" / "python"
PEERS = ("plain", "quix", "riskstream")
TRAFFIC = {"profile": "realistic", "days": 5, "cards": 4_000, "merchants": 600, "seed": 11}
RATES = (200, 500)
HEADLINE_RATE = 200
"""The rate of the unsuffixed latency figures and the p99 ratios: the scoring job of main keeps up
with it (bench/latency.py: 200/s unsaturated, 1k/s saturated); at 500/s it falls behind."""
WARMUP_S = 8.0
WARMUP_MAX_S = 45.0
CAUGHT_UP_WINDOW = 250
CAUGHT_UP_MS = 500.0
"""Measuring starts after at least WARMUP_S, once the median of the last CAUGHT_UP_WINDOW
latencies is under CAUGHT_UP_MS (what queued while the system started is drained), or after
WARMUP_MAX_S: the same rule for all three (the Flink job reports RUNNING seconds before its
Python workers and models are ready)."""
MEASURE_S = 20.0
QUICK_TRAFFIC = {"profile": "realistic", "days": 2, "cards": 2_500, "merchants": 300, "seed": 11}
QUICK_MEASURE_S = 6.0
DRAIN_S = 4.0
IDLE_BEFORE_FEED_S = 5.0
"""After a peer says it is ready: its consumer group join (the broker's initial rebalance delay)."""
BOUNDED_TIMEOUT_S = 420.0
READY_TIMEOUT_S = 120.0
READ_TIMEOUT_S = 300.0
NO_SHEDDING_MS = 3_600_000
GUARANTEES = {
    "plain": (
        "at least once (offsets committed every 5 s after a producer flush); all state in "
        "process memory, lost on a crash (no recovery)"
    ),
    "quix": (
        "at least once (Quix's default; commit every 5 s); card state in Quix's RocksDB state "
        "store backed by a changelog topic (restored after a crash); device and terminal state "
        "in process memory (not recovered); scoring per record"
    ),
    "riskstream": (
        "Flink checkpoints: all keyed state (card, device, terminal) restored and replayed from "
        "the checkpointed offsets; decisions at least once with deterministic ids, prediction "
        "log at least once in this run (exactly once by default)"
    ),
}


def run_settings(base: Settings) -> Settings:
    """The settings all three systems run with (those of ``bench/throughput.py``)."""
    return with_overrides(
        base,
        scoring={
            "latency_budget_ms": NO_SHEDDING_MS,
            "prediction_log_guarantee": "AT_LEAST_ONCE",
            "analytics": False,
        },
    )


def _command(peer: str, config: Path, bounded: bool, state_dir: Path) -> list[str]:
    if peer == "riskstream":
        cmd = [sys.executable, "-m", "riskstream", "--config", str(config), "run"]
        return [*cmd, "--job", "scoring", *(["--bounded"] if bounded else [])]
    python = str(QUIX_PYTHON) if peer == "quix" else sys.executable
    cmd = [python, "-m", "bench.peer_loops", peer, str(config), "--state-dir", str(state_dir)]
    return [*cmd, *(["--bounded"] if bounded else [])]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _log(settings: Settings, peer: str, phase: str) -> IO[bytes]:
    path = settings.paths.run / f"{phase}-{peer}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")


def throughput(settings: Settings, peer: str) -> dict[str, Any]:
    """Run ``peer`` bounded over the backlog of ``settings``' input topics."""
    config = write_settings(settings, settings.paths.run / f"tp-{peer}.yaml")
    state_dir = settings.paths.run / f"tp-{peer}-state"
    with _log(settings, peer, "tp") as log:
        started = time.monotonic()
        done = subprocess.run(
            _command(peer, config, True, state_dir),
            cwd=ROOT,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=BOUNDED_TIMEOUT_S,
            check=False,
        )
        wall = time.monotonic() - started
    if done.returncode != 0:
        raise ServiceError(f"{peer} (throughput) exited {done.returncode}: see {log.name}")
    records = read_to_end(
        settings, settings.kafka.topic("decisions"), timeout_s=READ_TIMEOUT_S, committed=False
    )
    stamps = [r.timestamp for r in records]
    return {
        "decisions": len(stamps),
        "wall_s": wall,
        "events_per_s": float(sustained_rate(stamps)),
    }


class _Peer:
    """A peer process started unbounded, waited for until it printed :data:`READY`."""

    def __init__(self, settings: Settings, peer: str, name: str) -> None:
        config = write_settings(settings, settings.paths.run / f"{name}.yaml")
        self.log = settings.paths.run / f"{name}.log"
        self.proc = subprocess.Popen(
            _command(peer, config, False, settings.paths.run / f"{name}-state"),
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.ready = threading.Event()
        self._pump = threading.Thread(target=self._copy, daemon=True)
        self._pump.start()
        if not self.ready.wait(READY_TIMEOUT_S):
            self.stop()
            raise ServiceError(f"{peer} did not start in {READY_TIMEOUT_S:.0f} s: see {self.log}")

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        with self.log.open("wb") as out:
            for line in self.proc.stdout:
                out.write(line)
                out.flush()
                if line.strip() == READY.encode():
                    self.ready.set()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def latency(
    settings: Settings, peer: str, sim: Simulation, rate: int, measure_s: float
) -> dict[str, Any]:
    """Latency of ``peer`` at ``rate`` payments/s on fresh topics."""
    stop: Callable[[], None]
    if peer == "riskstream":
        job, rest, job_id = _start_job(settings, f"lat{rate}-riskstream")

        def stop() -> None:
            rest.cancel(job_id)
            job.wait(timeout=60)

    else:
        stop = _Peer(settings, peer, f"lat{rate}-{peer}").stop
        time.sleep(IDLE_BEFORE_FEED_S)
    try:
        feed = LiveFeed(settings, sim, rate)
        watcher = DecisionWatcher(settings, feed)
        watcher.start()
        feed.start()
        began = time.monotonic()
        time.sleep(WARMUP_S)
        while time.monotonic() - began < WARMUP_MAX_S:
            with watcher._lock:
                if caught_up(watcher.latencies_ms, CAUGHT_UP_WINDOW, CAUGHT_UP_MS):
                    break
            time.sleep(0.5)
        warmup = time.monotonic() - began
        with watcher._lock:
            skip = len(watcher.latencies_ms)
        sent_before = feed.sent
        time.sleep(measure_s)
        sent = feed.sent - sent_before
        feed.stop()
        time.sleep(DRAIN_S)
        watcher.stop()
        measured = watcher.latencies_ms[skip:]
        return {
            "rate_per_s": rate,
            "sent_per_s": sent / measure_s,
            "decisions": len(measured),
            "decided_of_sent": watcher.decided / max(len(feed.sent_ms), 1),
            "warmup_s": warmup,
            "caught_up": warmup < WARMUP_MAX_S,
            **percentiles(measured, (50, 95, 99)),
        }
    finally:
        stop()


def figures_of(results: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The result file's figures (units in the keys) and the riskstream ratios."""
    figures: dict[str, float] = {}
    for peer, r in results.items():
        figures[f"{peer}_events_per_s"] = float(r["throughput"]["events_per_s"])
        for rate, measured in r["latency"].items():
            for q in ("p50_ms", "p95_ms", "p99_ms"):
                value = float(measured.get(q, float("nan")))
                figures[f"{peer}_rate{rate}_{q}"] = value
                if rate == HEADLINE_RATE:
                    figures[f"{peer}_{q}"] = value
    ours = figures["riskstream_events_per_s"]
    for peer in ("quix", "plain"):
        figures[f"riskstream_over_{peer}_throughput_ratio"] = ours / figures[f"{peer}_events_per_s"]
        figures[f"riskstream_over_{peer}_p99_ratio"] = (
            figures["riskstream_p99_ms"] / figures[f"{peer}_p99_ms"]
        )
    return figures


def main(argv: list[str] | None = None) -> None:
    """Run both phases for the three systems and report; ``--quick`` is a smoke run on a small
    simulation with a short latency phase (printed, no result file)."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args(argv).quick
    traffic = QUICK_TRAFFIC if quick else TRAFFIC
    measure_s = QUICK_MEASURE_S if quick else MEASURE_S
    if not QUIX_PYTHON.exists():
        raise SystemExit(f"{QUIX_PYTHON} not found: run `make peers-env` first")
    load_start = os.getloadavg()
    started = time.monotonic()
    stamp = int(time.time())
    with bench_settings("peers") as base, private_broker(base):
        ensure_champion(base)
        settings = run_settings(base)
        sim = simulate(replace(base.simulator, **traffic))
        shared = live_topics(settings, f"pin-{stamp}")
        records = len(sim.delivery) + len(sim.labels)
        run = produce(sim, shared.kafka, 0.0, Progress(records, "produce", "records"))
        results: dict[str, dict[str, Any]] = {}
        for peer in PEERS:
            own = live_topics(settings, f"tp-{peer}-{stamp}")
            topics = dict(own.kafka.topics)
            for role in ("transactions", "labels"):
                topics[role] = shared.kafka.topics[role]
            own = with_overrides(own, kafka={"topics": topics})
            results[peer] = {"throughput": throughput(own, peer)}
            print(f"{peer}: throughput {results[peer]['throughput']}", flush=True)
        for peer in PEERS:
            results[peer]["latency"] = {}
            for rate in RATES:
                fresh = live_topics(settings, f"lat{rate}-{peer}-{stamp}")
                measured = latency(fresh, peer, sim, rate, measure_s)
                results[peer]["latency"][rate] = measured
                print(f"{peer}: latency {measured}", flush=True)
        figures = figures_of(results)
        print(
            table(
                ["system", "events/s", "p50 ms", "p95 ms", "p99 ms", "guarantees"],
                [
                    [
                        peer,
                        figures[f"{peer}_events_per_s"],
                        figures[f"{peer}_p50_ms"],
                        figures[f"{peer}_p95_ms"],
                        figures[f"{peer}_p99_ms"],
                        GUARANTEES[peer][:60] + "...",
                    ]
                    for peer in PEERS
                ],
            )
        )
        for peer in ("quix", "plain"):
            print(
                f"riskstream/{peer}: throughput "
                f"{figures[f'riskstream_over_{peer}_throughput_ratio']:.2f}x, "
                f"p99 {figures[f'riskstream_over_{peer}_p99_ratio']:.2f}x"
            )
        if quick:
            print("quick run: results not written")
            return
        path = write_results(
            "peers",
            figures,
            {
                "runs": results,
                "guarantees": GUARANTEES,
                "inputs": {
                    "traffic": traffic,
                    "payment_records": run.transactions,
                    "labels": run.labels,
                    "partitions": 2,
                },
                "latency_phase": {
                    "rates_per_s": list(RATES),
                    "headline_rate_per_s": HEADLINE_RATE,
                    "min_warmup_s": WARMUP_S,
                    "max_warmup_s": WARMUP_MAX_S,
                    "caught_up_median_ms": CAUGHT_UP_MS,
                    "measure_s": measure_s,
                },
                "load_average_1m_start": load_start[0],
                "load_average_1m_end": os.getloadavg()[0],
                "wall_s": time.monotonic() - started,
                "targets": {"riskstream_over_quix_throughput_ratio": 1.5, "p99": "lower than quix"},
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
