"""``riskstream backfill`` / ``archive`` / ``parity``: replay history, dump topics, compare runs.

Heavy imports (pyflink, confluent-kafka, pandas) happen inside the handlers so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.config import Settings

EXIT_MISMATCH = 1


def register(subparsers: Any) -> None:
    """Add ``backfill``, ``archive`` and ``parity``."""
    backfill = subparsers.add_parser(
        "backfill",
        help="replay historical files through the feature job into Parquet",
        description="Run the streaming feature job's graph (same validation and feature code) "
        "over historical files on the Flink mini-cluster, in arrival order, and write the "
        "features as Parquet under OUTPUT/features (dead letters under OUTPUT/dead_letters). "
        "INPUT holds transactions/ and optionally labels/: simulator output (day=*/part-0.jsonl "
        "or .parquet) or topic archives from `riskstream archive`. OUTPUT must be new, empty or a "
        "previous backfill output (which is cleared first); an output that contains INPUT, or a "
        "non-empty directory the backfill did not write, is refused.",
    )
    backfill.add_argument("--input", required=True, type=Path, metavar="PATH")
    backfill.add_argument("--output", required=True, type=Path, metavar="DIR")
    backfill.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    backfill.set_defaults(handler=_backfill)

    archive = subparsers.add_parser(
        "archive",
        help="dump a Kafka topic to JSON Lines files in arrival order",
        description="Read TOPIC from its earliest offsets to its end offsets at start and write "
        "OUTPUT/partition=<p>/part-<n>.jsonl, one line per record with partition, offset, record "
        "timestamp, key and the payload verbatim.",
    )
    archive.add_argument("--topic", required=True, help="topic name (not a role)")
    archive.add_argument("--output", required=True, type=Path, metavar="DIR")
    archive.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    archive.set_defaults(handler=_archive)

    parity = subparsers.add_parser(
        "parity",
        help="compare the live job's features with a backfill's, row by row",
        description="Match rows by event id (and duplicate flag) and compare every feature "
        "(floats to 1e-9 relative), ids, event time and the feature-set version and hash. "
        "Prints a summary and every mismatch; exits 1 on any mismatch.",
    )
    parity.add_argument(
        "--live", required=True, type=Path, help="features-topic archive or Parquet features"
    )
    parity.add_argument(
        "--backfill", required=True, type=Path, help="backfill output dir or Parquet features"
    )
    parity.set_defaults(handler=_parity)


def _backfill(args: argparse.Namespace, settings: Settings) -> int:
    from jobs import backfill

    backfill.run(settings, args.input.resolve(), args.output.resolve(), quiet=args.quiet)
    return 0


def _archive(args: argparse.Namespace, settings: Settings) -> int:
    from riskstream.archive import archive_topic

    result = archive_topic(settings, args.topic, args.output.resolve(), quiet=args.quiet)
    print(f"archived {result.records} record(s) of {result.topic} into {args.output}")
    return 0


def _parity(args: argparse.Namespace, settings: Settings) -> int:
    from training.parity import compare, load_side, render

    report = compare(load_side(args.live), load_side(args.backfill))
    sys.stdout.write(render(report))
    return 0 if report.ok else EXIT_MISMATCH
