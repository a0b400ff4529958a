"""Benchmark: end-to-end decision latency of the scoring job at 1k and 5k payments/s.

A private broker; the input and decisions topics use LogAppendTime, so latency is exactly the
issue's definition: the decision record's Kafka append time minus the input record's append time
(first decision of each payment). Live payments come from the realistic simulator with event time
= now (:mod:`riskstream.live`), paced at each rate for a fixed time after a warm-up; the scoring
job runs on the mini-cluster with the project's low-latency settings.

Run from the repo root: ``python -m bench.latency``; writes ``bench/results/latency.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import numpy as np

from bench.common import bench_settings, private_broker, table, write_results
from core.config import Settings, replace
from riskstream.demo import ensure_champion
from riskstream.infra.rest import FlinkRest
from riskstream.jobrunner import write_settings
from riskstream.live import DecisionWatcher, LiveFeed, live_topics
from training.simulator.generate import simulate

RATES = (200, 1_000, 5_000)  # 200/s shows the latency of an unsaturated job
WARMUP_S = 10.0
MEASURE_S = 30.0
JOB_START_S = 240.0
# Where the latency goes (riskstream.live.stage_split).
STAGES = ("features", "scoring", "output")
# Enough payments for warm-up + measurement at the highest rate (5k/s x 40 s = 200k).
TRAFFIC = {"profile": "realistic", "days": 6, "cards": 20_000, "merchants": 2_000, "seed": 5}


def _start_job(settings: Settings, name: str) -> tuple[subprocess.Popen[bytes], FlinkRest, str]:
    config = write_settings(settings, settings.paths.run / name / "settings.yaml")
    job = subprocess.Popen(
        [sys.executable, "-m", "riskstream", "--config", str(config), "run", "--job", "scoring"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rest = FlinkRest(f"http://127.0.0.1:{settings.flink.local_rest_port}")
    deadline = time.monotonic() + JOB_START_S
    while time.monotonic() < deadline:
        if rest.reachable():
            running = [j for j in rest.jobs() if j.state == "RUNNING"]
            if running and rest.tasks_running(running[0].job_id):
                return job, rest, running[0].job_id
        time.sleep(1)
    job.kill()
    raise RuntimeError("scoring job did not start")


def measure(base: Settings, rate: int) -> dict[str, Any]:
    """Latency percentiles at one rate (a fresh job and fresh topics)."""
    settings = live_topics(base, f"lat{rate}-{int(time.time())}")
    job, rest, job_id = _start_job(settings, f"lat{rate}")
    try:
        sim = simulate(replace(base.simulator, **TRAFFIC))
        feed = LiveFeed(settings, sim, rate)
        watcher = DecisionWatcher(settings, feed)
        watcher.start()
        feed.start()
        time.sleep(WARMUP_S)
        with watcher._lock:
            skip = len(watcher.latencies_ms)
        sent_before = feed.sent
        time.sleep(MEASURE_S)
        sent = feed.sent - sent_before
        feed.stop()
        time.sleep(5.0)
        watcher.stop()
        lat = np.array(watcher.latencies_ms[skip:])
        stages = np.array(watcher.stage_ms[skip:]).reshape(-1, len(STAGES))
        return {
            "rate_per_s": rate,
            "sent_per_s": sent / MEASURE_S,
            "decisions": len(lat),
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p95_ms": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
            **{
                f"{stage}_p50_ms": float(np.percentile(stages[:, i], 50))
                if len(stages)
                else float("nan")
                for i, stage in enumerate(STAGES)
            },
        }
    finally:
        rest.cancel(job_id)
        job.wait(timeout=60)


def main(argv: list[str] | None = None) -> None:
    """Run and report; ``--rates`` measures other rates (results are written only for the
    default rates, so a diagnostic run never replaces the committed figures)."""
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--rates", type=int, nargs="+", default=list(RATES))
    rates = parser.parse_args(argv).rates
    with bench_settings("latency") as settings, private_broker(settings):
        ensure_champion(settings)
        results = [measure(settings, rate) for rate in rates]
        print(
            table(
                [
                    "target rate/s",
                    "sent/s",
                    "decisions",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    *(f"p50 {stage} ms" for stage in STAGES),
                ],
                [
                    [
                        r["rate_per_s"],
                        r["sent_per_s"],
                        r["decisions"],
                        r["p50_ms"],
                        r["p95_ms"],
                        r["p99_ms"],
                        *(r[f"{stage}_p50_ms"] for stage in STAGES),
                    ]
                    for r in results
                ],
            )
        )
        figures = {}
        for r in results:
            for q in ("p50_ms", "p95_ms", "p99_ms"):
                figures[f"rate{r['rate_per_s']}_{q}"] = r[q]
        if sorted(rates) != sorted(RATES):
            print("diagnostic rates: results not written")
            return
        flink = settings.flink
        path = write_results(
            "latency",
            figures,
            {
                "runs": results,
                "settings": {
                    "bundle_size": flink.bundle_size,
                    "bundle_time_ms": flink.bundle_time_ms,
                    "arrow_batch_size": flink.arrow_batch_size,
                    "buffer_timeout_ms": settings.features.buffer_timeout_ms,
                    "linger_ms": settings.scoring.linger_ms,
                },
                "targets_at_5k": {"p99_ms": 50, "p50_ms": 15},
            },
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
