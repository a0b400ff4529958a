"""``riskstream kafka start|stop|status``: the local single-node KRaft broker."""

from __future__ import annotations

import argparse
from typing import Any

from core.config import Settings, with_overrides
from riskstream.infra.kafka import LocalKafka, create_project_topics


def register(subparsers: Any) -> None:
    """Add ``kafka start|stop|status``."""
    parser = subparsers.add_parser("kafka", help="run the local single-node Kafka broker (KRaft)")
    sub = parser.add_subparsers(dest="kafka_command", required=True, metavar="ACTION")
    start = sub.add_parser(
        "start", help="start the broker on 127.0.0.1 and create the project topics"
    )
    start.add_argument("--port", type=int, help="client port (default: kafka.port, 9092)")
    start.add_argument(
        "--controller-port", type=int, help="KRaft controller port (default: kafka.controller_port)"
    )
    start.add_argument("--data-dir", help="broker data directory (default: <run_dir>/kafka/data)")
    start.set_defaults(handler=_start)
    stop = sub.add_parser("stop", help="stop the broker this project started (and nothing else)")
    stop.set_defaults(handler=_stop)
    status = sub.add_parser("status", help="show whether the broker runs, and its topics")
    status.set_defaults(handler=_status)
    topics = sub.add_parser(
        "create-topics",
        help="create the missing project topics on kafka.bootstrap_servers (else the local "
        "broker); what a container deployment runs before it submits a job",
    )
    topics.set_defaults(handler=_create_topics)


def _apply_flags(args: argparse.Namespace, settings: Settings) -> Settings:
    flags = {
        "port": getattr(args, "port", None),
        "controller_port": getattr(args, "controller_port", None),
        "data_dir": getattr(args, "data_dir", None),
    }
    chosen = {k: v for k, v in flags.items() if v is not None}
    return with_overrides(settings, kafka=chosen) if chosen else settings


def _start(args: argparse.Namespace, settings: Settings) -> int:
    broker = LocalKafka(_apply_flags(args, settings))
    pid = broker.running_pid()
    if pid is not None:
        print(f"Kafka is already running (pid {pid}) at {broker.bootstrap}; nothing started")
        return 0
    pid = broker.start()
    print(f"Kafka started (pid {pid}) at {broker.bootstrap}; data in {broker.data_dir}")
    print(f"logs: {broker.log_file}")
    return 0


def _stop(args: argparse.Namespace, settings: Settings) -> int:
    broker = LocalKafka(settings)
    if broker.stop():
        print("Kafka stopped")
    else:
        print("Kafka was not running (no broker started by this project)")
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    state = LocalKafka(settings).status()
    if not state.running:
        print(f"Kafka: not running (would listen at {state.bootstrap})")
        return 3
    print(f"Kafka: running (pid {state.pid}) at {state.bootstrap}")
    print(f"topics: {', '.join(state.topics) or '(none)'}")
    return 0


def _create_topics(args: argparse.Namespace, settings: Settings) -> int:
    created = create_project_topics(settings)
    where = settings.kafka.bootstrap
    print(f"created {', '.join(created)} at {where}" if created else f"all topics exist at {where}")
    return 0
