"""``riskstream observe start|stop|status``: a local Prometheus scraping the jobs' metrics."""

from __future__ import annotations

import argparse
from typing import Any

from core.config import Settings, with_overrides
from riskstream.infra.prometheus import LocalPrometheus


def register(subparsers: Any) -> None:
    """Add ``observe start|stop|status``."""
    parser = subparsers.add_parser(
        "observe",
        help="run a local Prometheus that scrapes the cluster's and the mini-cluster's metrics",
    )
    sub = parser.add_subparsers(dest="observe_command", required=True, metavar="ACTION")
    start = sub.add_parser(
        "start", help="fetch Prometheus (pinned Debian package, once) and start it on 127.0.0.1"
    )
    start.add_argument("--port", type=int, help="HTTP port (default: metrics.prometheus_port)")
    start.set_defaults(handler=_start)
    stop = sub.add_parser("stop", help="stop the Prometheus this project started")
    stop.set_defaults(handler=_stop)
    status = sub.add_parser("status", help="show whether Prometheus runs and which targets are up")
    status.set_defaults(handler=_status)


def _start(args: argparse.Namespace, settings: Settings) -> int:
    if args.port is not None:
        settings = with_overrides(settings, metrics={"prometheus_port": args.port})
    server = LocalPrometheus(settings)
    pid = server.running_pid()
    if pid is not None:
        print(f"Prometheus is already running (pid {pid}) at {server.url}; nothing started")
        return 0
    pid = server.start()
    ports = settings.metrics.cluster_ports
    print(f"Prometheus started (pid {pid}) at {server.url}")
    print(
        f"scraping the cluster on ports {ports.start}-{ports.stop - 1} and the mini-cluster on "
        f"{settings.metrics.local_port} every {settings.metrics.scrape_interval_s} s"
    )
    print(f"config: {server.config_file}  log: {server.log_file}")
    return 0


def _stop(args: argparse.Namespace, settings: Settings) -> int:
    if LocalPrometheus(settings).stop():
        print("Prometheus stopped")
    else:
        print("Prometheus was not running (none started by this project)")
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    state = LocalPrometheus(settings).status()
    if not state.running:
        print(f"Prometheus: not running (would serve {state.url})")
        return 3
    print(f"Prometheus: running (pid {state.pid}) at {state.url}")
    print(f"targets up: {', '.join(state.targets_up) or '(none)'}")
    print(f"targets down: {len(state.targets_down)} (jobs not running on those ports)")
    return 0
