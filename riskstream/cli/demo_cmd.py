"""``riskstream demo``: Kafka + a small model + the scoring job + live payments, with a summary."""

from __future__ import annotations

import argparse
from typing import Any

from core.config import Settings
from riskstream.demo import DemoOptions, run


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="start Kafka, train a small model if needed, score live simulated payments, stop",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to stream (60)")
    parser.add_argument("--rate", type=float, default=200.0, help="payments per second (200)")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between summary lines (5)"
    )
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    return run(settings, DemoOptions(args.seconds, args.rate, args.interval))
