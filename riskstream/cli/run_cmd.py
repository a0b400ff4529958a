"""``riskstream run`` and ``riskstream stop``: run a job locally or on the cluster; stop it with a
savepoint; resume from a savepoint or retained checkpoint."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.config import Settings, with_overrides
from core.errors import ConfigError
from riskstream import jobrunner
from riskstream.infra.rest import FlinkRest


def register(subparsers: Any) -> None:
    """Add ``run`` and ``stop``."""
    parser = subparsers.add_parser(
        "run", help="run a job locally (mini-cluster) or on the standalone cluster"
    )
    parser.add_argument(
        "--job", default="skeleton", choices=sorted(jobrunner.JOBS), help="job to run"
    )
    parser.add_argument(
        "--target",
        default="local",
        choices=jobrunner.TARGETS,
        help="local: mini-cluster in this process; cluster: `flink run` on the local cluster",
    )
    parser.add_argument(
        "--bounded",
        action="store_true",
        help="read the input topics up to their current end offsets, then finish",
    )
    parser.add_argument(
        "--detached", action="store_true", help="cluster only: return once the job is submitted"
    )
    parser.add_argument(
        "--parallelism", type=int, help="job parallelism (default: flink.parallelism)"
    )
    parser.add_argument(
        "--from-savepoint",
        metavar="PATH",
        help="resume from a savepoint or a retained checkpoint (chk-N) directory",
    )
    parser.add_argument(
        "--warm-start",
        action="store_true",
        help="features, scoring, analytics: first send the last 37 days (the longest feature "
        "window plus its label delay) of the `simulator` world, placed to end now, to the input "
        "topics at full speed (payments and labels, record timestamp = event time), so the job "
        "starts live with its card, device and terminal state up to date",
    )
    parser.add_argument(
        "--allow-non-restored-state",
        action="store_true",
        help="with --from-savepoint: skip state that maps to no operator of this job",
    )
    parser.set_defaults(handler=_run)

    stop = subparsers.add_parser(
        "stop", help="stop a running job with a savepoint (mini-cluster run or cluster)"
    )
    stop.add_argument("--savepoint", metavar="DIR", required=True, help="savepoint directory")
    stop.add_argument(
        "--target",
        default="local",
        choices=jobrunner.TARGETS,
        help="local: the job of `riskstream run` (flink.local_rest_port); cluster: the cluster",
    )
    stop.add_argument("--job-id", help="the job to stop (default: the one running job)")
    stop.set_defaults(handler=_stop)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.parallelism is not None:
        settings = with_overrides(settings, flink={"parallelism": args.parallelism})
    if args.from_savepoint:
        settings = with_overrides(
            settings,
            checkpoint={
                "restore_from": args.from_savepoint,
                "allow_non_restored_state": args.allow_non_restored_state,
            },
        )
    if args.warm_start:
        _warm_start(settings, args)
    if args.target == "cluster":
        output = jobrunner.submit_to_cluster(settings, args.job, args.bounded, args.detached)
        print(output.strip())
        return 0
    jobrunner.run_local(settings, args.job, args.bounded)
    return 0


WARM_JOBS = ("features", "scoring", "analytics")


def _warm_start(settings: Settings, args: argparse.Namespace) -> None:
    if args.job not in WARM_JOBS:
        raise ConfigError(f"--warm-start: the {args.job} job reads no payments; use {WARM_JOBS}")
    if args.from_savepoint:
        raise ConfigError("--warm-start with --from-savepoint: a restored job has its state")
    from riskstream.live import HISTORY, history_until, warm_start

    end_ms = int(time.time() * 1000)
    if settings.features.start_timestamp_ms > end_ms - HISTORY:
        raise ConfigError(
            "--warm-start: features.start_timestamp_ms starts the job's sources after the start "
            "of the history, so the job would skip it; unset it"
        )
    sim, schedule = history_until(settings, end_ms)
    sent = warm_start(settings, sim, schedule)
    first = datetime.fromtimestamp(schedule.history_from_ms / 1000, UTC)
    last = datetime.fromtimestamp(end_ms / 1000, UTC)
    print(
        f"warm start: {sent.transactions:,} payment records and {sent.labels:,} labels of the "
        f"{sim.settings.profile} world (seed {sim.settings.seed}) from {first:%Y-%m-%d %H:%M} to "
        f"{last:%Y-%m-%d %H:%M} UTC sent to {sent.transactions_topic} and {sent.labels_topic} "
        f"in {sent.seconds:.0f} s; the job is live once it has read them",
        flush=True,
    )


def _stop(args: argparse.Namespace, settings: Settings) -> int:
    port = settings.flink.rest_port if args.target == "cluster" else settings.flink.local_rest_port
    rest = FlinkRest(f"http://127.0.0.1:{port}")
    job = rest.running_job(job_id=args.job_id)
    location = rest.stop_with_savepoint(job.job_id, Path(args.savepoint))
    print(f"stopped {job.name} ({job.job_id}) with savepoint {location}")
    print(f"resume with: riskstream run --from-savepoint {location.removeprefix('file:')}")
    return 0
