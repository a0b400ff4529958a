"""``riskstream analytics tail``: current windows from the analytics topic, newest revision only.

Reads the analytics topic's committed records (the jobs write it in Kafka transactions) from the
beginning to its current end, keeps the highest revision of every window (what any consumer of the
topic must do: a higher revision supersedes the earlier results of its window) and prints the most
recent windows of one merchant, one MCC or the global view.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from core.config import Settings
from schemas.records import WindowAnalytics

DEFAULT_LAST = 20
READ_TIMEOUT_S = 30.0
MS_PER_S = 1000
HEADER = (
    f"{'window start (UTC)':<20} {'kind':<8} {'key':<14} {'rev':>3} {'tx':>6} {'amount':>12} "
    f"{'approve':>7} {'step_up':>7} {'block':>5} {'unscored':>8} {'mean_score':>10}"
)


def register(subparsers: Any) -> None:
    """Add ``analytics tail``."""
    parser = subparsers.add_parser("analytics", help="windowed analytics (analytics topic)")
    commands = parser.add_subparsers(dest="analytics_command", required=True, metavar="COMMAND")
    tail = commands.add_parser(
        "tail",
        help="print the current windows of a merchant, an MCC or the global view",
        description="Read the analytics topic to its end and print the newest revision of the "
        "most recent windows. Default: the global per-minute view.",
    )
    which = tail.add_mutually_exclusive_group()
    which.add_argument("--merchant", metavar="M", help="per-minute windows of merchant M")
    which.add_argument("--mcc", metavar="CODE", help="per-hour windows of merchant category CODE")
    which.add_argument(
        "--global", dest="global_view", action="store_true", help="global per-minute windows"
    )
    tail.add_argument(
        "--last", type=int, default=DEFAULT_LAST, metavar="N", help="the N most recent windows"
    )
    tail.set_defaults(handler=_tail)


def selection(args: argparse.Namespace) -> tuple[str, str]:
    """The (key kind, key) the flags ask for."""
    if args.merchant:
        return "merchant", args.merchant
    if args.mcc:
        return "mcc", args.mcc
    return "global", "all"


def current_windows(
    records: Iterable[WindowAnalytics], key_kind: str, key: str, last: int
) -> list[WindowAnalytics]:
    """Newest revision of the ``last`` most recent windows of one key, oldest first."""
    from udfs.analytics.encode import latest_revisions

    chosen = [r for r in records if (r.key_kind, r.key) == (key_kind, key)]
    latest = sorted(latest_revisions(chosen).values(), key=lambda r: r.window_start)
    return latest[-last:] if last > 0 else []


def format_row(r: WindowAnalytics) -> str:
    """One window as a table row."""
    start = datetime.fromtimestamp(r.window_start / MS_PER_S, UTC).strftime("%Y-%m-%d %H:%M:%S")
    d = r.decisions
    unscored = r.transactions - d.approve - d.step_up - d.block
    mean = "-" if r.mean_score is None else f"{r.mean_score:.4f}"
    return (
        f"{start:<20} {r.key_kind:<8} {r.key:<14} {r.revision:>3} {r.transactions:>6} "
        f"{r.amount_sum:>12.2f} {d.approve:>7} {d.step_up:>7} {d.block:>5} {unscored:>8} "
        f"{mean:>10}"
    )


def read_analytics(settings: Settings) -> list[WindowAnalytics]:
    """Every committed record of the analytics topic, from the beginning to its current end.

    Raises (``ReadTimeoutError``) when no record arrives for ``READ_TIMEOUT_S`` before the end.
    """
    from riskstream.support.kafka_io import read_to_end
    from udfs.analytics.encode import decode_window

    records = read_to_end(
        settings, settings.kafka.topic("analytics"), timeout_s=None, idle_timeout_s=READ_TIMEOUT_S
    )
    return [decode_window(r.value) for r in records if r.value is not None]


def _tail(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out  # looked up per call: tests replace sys.stdout
    key_kind, key = selection(args)
    windows = current_windows(read_analytics(settings), key_kind, key, args.last)
    if not windows:
        print(f"no windows for {key_kind} {key} in {settings.kafka.topic('analytics')}", file=out)
        return 0
    print(HEADER, file=out)
    for r in windows:
        print(format_row(r), file=out)
    return 0
