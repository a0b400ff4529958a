"""The ``riskstream`` command: one entry point, one module per subcommand group.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``; the parser it adds sets
``handler(args, settings) -> int`` (``settings`` is ``None`` for a parser that sets
``loads_settings=False``). Errors derived from :class:`RiskstreamError` are printed as one
line without a traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from core.config import load_settings, parse_assignments
from core.errors import RiskstreamError
from riskstream.infra.process import (
    GATEWAY_DISABLED_VAR,
    JAVA_HOME_VAR,
    drop_worker_environment,
)

__all__ = ["GATEWAY_DISABLED_VAR", "JAVA_HOME_VAR", "build_parser", "main"]

COMMAND_MODULES = (
    "riskstream.cli.jars_cmd",
    "riskstream.cli.kafka_cmd",
    "riskstream.cli.cluster_cmd",
    "riskstream.cli.observe_cmd",
    "riskstream.cli.run_cmd",
    "riskstream.cli.demo_cmd",
    "riskstream.cli.report_cmd",
    "riskstream.cli.simulate_cmd",
    "riskstream.cli.analytics_cmd",
    "riskstream.cli.backfill_cmd",
    "riskstream.cli.replay_cmd",
    "riskstream.cli.train_cmd",
    "riskstream.cli.config_cmd",
)
EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="riskstream",
        description="Real-time AI risk scoring on event streams (PyFlink + Kafka + ONNX).",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config file (default: $RISKSTREAM_CONFIG, else ./riskstream.yaml if present)",
    )
    parser.add_argument(
        "--set",
        dest="assignments",
        metavar="SECTION.KEY=VALUE",
        action="append",
        default=[],
        help="override one setting, e.g. --set kafka.port=19092 (repeatable)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    drop_worker_environment(os.environ)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # A handler that loads its own settings (`config check FILE`) is not stopped by a broken
        # default config file.
        settings = None
        if getattr(args, "loads_settings", True):
            settings = load_settings(args.config, parse_assignments(args.assignments))
        status: int = args.handler(args, settings)
    except RiskstreamError as exc:
        print(f"riskstream: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("riskstream: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
