"""Benchmark: decision latency of the scoring job, from ingestion and end to end, at 200, 2,000 and
5,000 payments/s; ``--tune`` compares bundle and buffer settings at 200 and 2,000 payments/s.

A private broker; the decisions topic uses LogAppendTime. For the first decision of each payment:

- **ingestion -> decision** (the headline): the decision's append time minus its ``received_time``,
  the wall clock when the job's validate step read the payment (issue 16 item 4);
- **in the job**: the decision's ``processing_latency_ms`` (ingestion -> the decide step);
- **end to end** (the figure of earlier runs): the append time minus the moment the feed handed
  the payment to the Kafka client, split into getting to the job (producer, broker, consumer lag:
  a saturated job's backlog waits here), the job, and the output
  (:func:`riskstream.live.stage_split`).

Live payments come from the realistic simulator with event time = now (:mod:`riskstream.live`),
paced at each rate for a fixed time after a warm-up; the scoring job runs on the mini-cluster with
the project's settings (plus the overrides of ``--set`` or of one ``--tune`` variant). Each run
records the decisions per second it sustained, the share shed or otherwise degraded, the backlog
left, and the 1-minute load average before and after it.

Run from the repo root, alone on a quiet machine (nothing else using the two cores):
``python -m bench.latency`` writes ``bench/results/latency.json``; ``--tune`` measures every
variant at 200 and 2,000/s and the defaults at 5,000/s too, and writes both
``bench/results/latency-tuning.json`` and ``latency.json`` (its default runs); ``--rates``,
``--seconds`` or ``--set`` only print.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from bench.common import bench_settings, private_broker, table, write_results
from core.config import Settings, parse_assignments, replace, with_overrides
from riskstream.demo import ensure_champion
from riskstream.infra.rest import FlinkRest
from riskstream.jobrunner import write_settings
from riskstream.live import DecisionWatcher, LiveFeed, live_topics
from training.simulator.generate import Simulation, simulate

RATES = (200, 2_000, 5_000)  # 200/s: an unsaturated job; 2,000 and 5,000/s: the targets
TUNING_RATES = (200, 2_000)
WARMUP_S = 10.0
MEASURE_S = 30.0
TUNING_MEASURE_S = 20.0
SETTLE_S = 5.0
JOB_START_S = 240.0
STAGES = ("to_job", "in_job", "output")
"""Where the end-to-end latency goes (riskstream.live.stage_split)."""
# Enough payments for warm-up + measurement at the highest rate (5k/s x 40 s = 200k).
TRAFFIC = {"profile": "realistic", "days": 6, "cards": 20_000, "merchants": 2_000, "seed": 5}
QUANTILES = (50, 95, 99)
DEFAULTS = "defaults"
TUNING: dict[str, dict[str, dict[str, Any]]] = {
    DEFAULTS: {},
    "tight (1 ms buffers and bundles, scoring 5 ms)": {
        "flink": {"bundle_time_ms": 1},
        "features": {"buffer_timeout_ms": 1},
        "scoring": {"bundle_time_ms": 5},
    },
    "loose (20 ms buffers and bundles, scoring 20 ms)": {
        "flink": {"bundle_time_ms": 20},
        "features": {"buffer_timeout_ms": 20},
        "scoring": {"bundle_time_ms": 20},
    },
}
"""Variants of ``--tune``: settings overrides on top of the project's defaults."""


def load_1m() -> float:
    """The machine's 1-minute load average."""
    return os.getloadavg()[0]


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


def _quantiles(values: list[float], prefix: str) -> dict[str, float]:
    data = np.asarray(values, dtype=np.float64)
    return {
        f"{prefix}p{q}_ms": float(np.percentile(data, q)) if len(data) else float("nan")
        for q in QUANTILES
    }


def settings_of(settings: Settings) -> dict[str, Any]:
    """The latency-relevant settings of a run."""
    return {
        "flink.bundle_size": settings.flink.bundle_size,
        "flink.bundle_time_ms": settings.flink.bundle_time_ms,
        "flink.arrow_batch_size": settings.flink.arrow_batch_size,
        "features.buffer_timeout_ms": settings.features.buffer_timeout_ms,
        "scoring.bundle_time_ms": settings.scoring.bundle_time_ms,
        "scoring.linger_ms": settings.scoring.linger_ms,
        "scoring.latency_budget_ms": settings.scoring.latency_budget_ms,
    }


def measure(
    base: Settings,
    sim: Simulation,
    rate: int,
    measure_s: float = MEASURE_S,
    label: str = DEFAULTS,
) -> dict[str, Any]:
    """Latencies at one rate, streaming ``sim`` (a fresh job and fresh topics)."""
    load_start = load_1m()
    settings = live_topics(base, f"lat{rate}-{int(time.time())}")
    job, rest, job_id = _start_job(settings, f"lat{rate}")
    try:
        feed = LiveFeed(settings, sim, rate)
        watcher = DecisionWatcher(settings, feed)
        watcher.start()
        feed.start()
        time.sleep(WARMUP_S)
        with watcher._lock:
            skip = len(watcher.latencies_ms)
        sent_before, began = feed.sent, time.monotonic()
        time.sleep(measure_s)
        with watcher._lock:
            decided_in_window = len(watcher.latencies_ms) - skip
        elapsed = time.monotonic() - began
        sent = feed.sent - sent_before
        feed.stop()
        time.sleep(SETTLE_S)
        watcher.stop()
        with watcher._lock:
            end_to_end = watcher.latencies_ms[skip:]
            ingest = watcher.ingest_latencies_ms[skip:]
            stages = np.array(watcher.stage_ms[skip:]).reshape(-1, len(STAGES))
            degraded = watcher.degraded
            decided = sum(watcher.classes.values())
        in_job = stages[:, 1].tolist() if len(stages) else []
        return {
            "variant": label,
            "rate_per_s": rate,
            "sent_per_s": sent / elapsed,
            "decided_per_s": decided_in_window / elapsed,
            "decisions": len(end_to_end),
            "degraded_share": degraded / decided if decided else float("nan"),
            "backlog_at_end": max(len(feed.sent_ms) - decided, 0),
            **_quantiles(ingest, "ingest_"),
            **_quantiles(in_job, "in_job_"),
            **_quantiles(end_to_end, "end_to_end_"),
            **{
                f"{stage}_p50_ms": float(np.percentile(stages[:, i], 50))
                if len(stages)
                else float("nan")
                for i, stage in enumerate(STAGES)
            },
            "load_1m_start": load_start,
            "load_1m_end": load_1m(),
            "settings": settings_of(base),
        }
    finally:
        rest.cancel(job_id)
        job.wait(timeout=60)


def _print(results: list[dict[str, Any]]) -> None:
    headers = ["variant", "rate/s", "sent/s", "decided/s", "degraded", "backlog"]
    headers += [f"ingest p{q}" for q in QUANTILES] + ["in job p50", "in job p99"]
    headers += ["e2e p50", "e2e p99", *(f"p50 {s}" for s in STAGES), "load start", "load end"]
    rows = [
        [
            r["variant"],
            r["rate_per_s"],
            r["sent_per_s"],
            r["decided_per_s"],
            r["degraded_share"],
            r["backlog_at_end"],
            *(r[f"ingest_p{q}_ms"] for q in QUANTILES),
            r["in_job_p50_ms"],
            r["in_job_p99_ms"],
            r["end_to_end_p50_ms"],
            r["end_to_end_p99_ms"],
            *(r[f"{s}_p50_ms"] for s in STAGES),
            r["load_1m_start"],
            r["load_1m_end"],
        ]
        for r in results
    ]
    print(table(headers, rows))


def _figures(results: list[dict[str, Any]], keyed_by_variant: bool) -> dict[str, float]:
    figures = {}
    for r in results:
        key = f"rate{r['rate_per_s']}"
        if keyed_by_variant:
            key = f"{list(TUNING).index(r['variant'])}_{key}"
        for q in QUANTILES:
            figures[f"{key}_ingest_p{q}_ms"] = r[f"ingest_p{q}_ms"]
            figures[f"{key}_end_to_end_p{q}_ms"] = r[f"end_to_end_p{q}_ms"]
        figures[f"{key}_decided_per_s"] = r["decided_per_s"]
    return figures


def main(argv: list[str] | None = None) -> None:
    """Run and report (see the module doc for what is written when)."""
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--rates", type=int, nargs="+", default=None)
    parser.add_argument("--tune", action="store_true", help="compare the TUNING variants")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    overrides: Mapping[str, Any] = parse_assignments(args.set)
    diagnostic = bool(args.set) or args.rates is not None or args.seconds is not None
    rates = args.rates or list(TUNING_RATES if args.tune else RATES)
    seconds = args.seconds or (TUNING_MEASURE_S if args.tune else MEASURE_S)
    load_start = load_1m()
    with bench_settings("latency") as defaults, private_broker(defaults):
        base = with_overrides(defaults, **overrides) if overrides else defaults
        ensure_champion(base)
        sim = simulate(replace(base.simulator, **TRAFFIC))  # the same payments for every run
        results = []
        variants = TUNING if args.tune else {DEFAULTS if not overrides else "--set": {}}
        plan = [(label, rate) for label in variants for rate in rates]
        if args.tune and not diagnostic:  # the defaults at the other rates: latency.json too
            plan += [(DEFAULTS, rate) for rate in RATES if rate not in rates]
        for label, rate in plan:
            variant = variants.get(label, {})
            settings = with_overrides(base, **variant) if variant else base
            results.append(measure(settings, sim, rate, seconds, label))
            _print(results[-1:])
        _print(results)
        if diagnostic:
            print("diagnostic run (--rates, --seconds or --set): results not written")
            return
        context = {
            "measured_s": seconds,
            "load_average_1m_start": load_start,
            "load_average_1m_end": load_1m(),
            "targets": {
                "rate2000_ingest_p50_ms": 15,
                "rate2000_ingest_p99_ms": 50,
                "rate5000_ingest_p99_ms": 100,
            },
        }
        default_runs = [r for r in results if r["variant"] == DEFAULTS]
        path = write_results(
            "latency", _figures(default_runs, False), {"runs": default_runs, **context}
        )
        print(f"wrote {path}")
        if args.tune:
            path = write_results(
                "latency-tuning",
                _figures(results, True),
                {"runs": results, "variants": TUNING, **context},
            )
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
