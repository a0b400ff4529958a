"""``riskstream report``: one self-contained HTML page of plots over a run's topics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.config import Settings


def register(subparsers: Any) -> None:
    """Add ``report``."""
    parser = subparsers.add_parser(
        "report",
        help="write an HTML report of a run: latency, throughput, decisions, fraud, models, drift",
        description=(
            "Read the decisions, prediction-log, labels, dead-letter and analytics topics of the "
            "settings (kafka.topics) and the model registry, and write DIR/report.html: one "
            "self-contained page (plotly.js inlined, no network needed). A plot whose source "
            "holds no data says so in its place. docs/report.md."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    parser.add_argument("--title", default="riskstream run report", help="page title")
    parser.add_argument(
        "--check",
        action="store_true",
        help="then open it in headless Chromium (pinned Debian package, fetched once): "
        "fail on a console error or an empty plot, and save a screenshot beside it",
    )
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from riskstream.report.write import write_report

    written = write_report(settings, Path(args.out), args.title)
    drawn = written.panels - len(written.missing)
    print(f"report: {written.path} ({drawn} of {written.panels} plots have data)")
    for key, why in written.missing.items():
        print(f"  no data for {key}: {why}")
    if not args.check:
        return 0
    from riskstream.infra.browser import check_page

    result = check_page(settings, written.path, written.path.with_suffix(".png"))
    print(
        f"check: {len(result.plots)} plots drawn in Chromium, {len(result.empty_plots)} empty, "
        f"{len(result.console_errors)} console errors; screenshot {result.screenshot}"
    )
    for line in [*result.console_errors, *(f"empty plot: {p}" for p in result.empty_plots)]:
        print(f"  {line}")
    return 0 if result.ok else 1
