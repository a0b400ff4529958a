"""``riskstream demo``: Kafka + a model of the streamed world + the scoring job + a warm start
+ live payments, with a summary."""

from __future__ import annotations

import argparse
from typing import Any

from core.config import Settings, SimulatorSettings, replace, with_overrides
from riskstream.live import HISTORY, payments_per_day

DESCRIPTION = """\
Start Kafka (unless it runs), train and promote a model of the streamed world if the registry
has no champion that may serve it, start the scoring job on the mini-cluster, warm it up with
{history} days of simulated history (payments and labels, at full speed), then stream live
payments for --seconds at --rate and print the decisions by class next to the configured shares,
frauds caught and missed, precision of blocks and latency; end by writing the HTML run report
of the run's topics (docs/report.md) and printing its path (--no-report skips it).

Event times are the generator's: the simulated days are placed so that the streamed window ends
when the warm start began plus --seconds (no event is ahead of the wall clock), and nothing is
re-stamped. The world is demo.cards cards ({cards:,} by default; the model is trained on the
same world), each paying about twice a simulated day. --rate only paces the records: it sets
how fast simulated time runs (at {rate:.0f}/s about {day_s:.0f} s of wall time per simulated day
by default), never how close together one card's payments are.
"""


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    defaults = Settings().demo
    world = {"profile": "realistic", "cards": defaults.cards, "merchants": defaults.merchants}
    per_day = payments_per_day(replace(SimulatorSettings(), **world))
    parser = subparsers.add_parser(
        "demo",
        help="start Kafka, train a model if needed, warm the job up, score live payments, stop",
        description=DESCRIPTION.format(
            history=HISTORY // 86_400_000,
            cards=defaults.cards,
            rate=defaults.rate,
            day_s=per_day / defaults.rate,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seconds", type=float, help="seconds of live traffic after the warm start (demo.seconds)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="live payment records per second of wall time (demo.rate); paces only",
    )
    parser.add_argument(
        "--interval", type=float, help="seconds between summary lines (demo.interval_s)"
    )
    parser.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="end by writing the HTML run report and printing its path (demo.report)",
    )
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from riskstream.demo import run

    flags = {
        "seconds": args.seconds,
        "rate": args.rate,
        "interval_s": args.interval,
        "report": args.report,
    }
    changed = {k: v for k, v in flags.items() if v is not None}
    run(with_overrides(settings, demo=changed) if changed else settings)
    return 0
