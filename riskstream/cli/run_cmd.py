"""``riskstream run``: run a job on the mini-cluster or submit it to the standalone cluster."""

from __future__ import annotations

import argparse
from typing import Any

from riskstream import jobrunner
from riskstream.config import Settings, with_overrides


def register(subparsers: Any) -> None:
    """Add ``run``."""
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
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.parallelism is not None:
        settings = with_overrides(settings, flink={"parallelism": args.parallelism})
    if args.target == "cluster":
        output = jobrunner.submit_to_cluster(settings, args.job, args.bounded, args.detached)
        print(output.strip())
        return 0
    jobrunner.run_local(settings, args.job, args.bounded)
    return 0
