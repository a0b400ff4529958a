"""``riskstream config show`` / ``config check``: the effective settings, and a file checked
before anything uses it.

``show`` prints the settings after the config file, ``RISKSTREAM__*`` variables and ``--set``
overrides, in the layout of the documented YAML (it loads back with ``--config``); secrets are
never printed, only whether they are set. ``show --defaults`` prints the documented defaults with
a comment per key. ``check FILE`` loads FILE like ``--config FILE`` (plus the environment) and,
with ``--job``, runs every client-side check of that job (delivery guarantees vs checkpointing,
SASL credentials, the scoring job's champion and fast models).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.config import Settings, load_settings, parse_assignments
from core.config_doc import render_yaml

JOBS = ("skeleton", "features", "scoring", "analytics", "backfill")


def register(subparsers: Any) -> None:
    """Add ``config show`` and ``config check``."""
    parser = subparsers.add_parser(
        "config", help="show the effective settings or check a config file"
    )
    commands = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = commands.add_parser(
        "show",
        help="print the effective settings as YAML (secrets masked)",
        description="Print the settings after the config file, RISKSTREAM__* variables and "
        "--set overrides, as YAML that loads back with --config. Secrets are never printed.",
    )
    show.add_argument(
        "--defaults",
        action="store_true",
        help="print the documented defaults instead (every key with a comment)",
    )
    show.set_defaults(handler=_show)
    check = commands.add_parser(
        "check",
        help="load a config file and report every problem (exit 2 on any)",
        description="Load FILE as --config FILE would (with the environment and --set), and "
        "with --job also run that job's client-side checks.",
    )
    check.add_argument("file", type=Path, metavar="FILE")
    check.add_argument("--job", choices=JOBS, help="also run the client-side checks of this job")
    check.set_defaults(handler=_check, loads_settings=False)


def _show(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(render_yaml(None if args.defaults else settings, comments=args.defaults))
    return 0


def _check(args: argparse.Namespace, settings: Settings | None) -> int:
    checked = load_settings(args.file, parse_assignments(args.assignments))
    if args.job:
        from riskstream import preflight

        preflight.check(checked, args.job)
    what = f" for job {args.job}" if args.job else ""
    print(f"{args.file}: ok{what}")
    return 0
