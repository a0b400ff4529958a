"""``riskstream simulate``: a reproducible payment stream to files or to Kafka.

The simulator lives in ``training.simulator`` (offline code, no pyflink); this module only turns
flags into :class:`SimulatorSettings` overrides and picks the output.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from core.config import Settings, SimulatorSettings, field_type, replace

# Flag dest -> SimulatorSettings field, for flags that override one setting each.
OVERRIDES = (
    "profile", "seed", "start_date", "days", "customers", "terminals", "cards", "merchants",
    "format", "rate", "out_of_order_share", "late_share", "late_max_s", "duplicate_share",
    "malformed_share", "legit_label_share", "chargeback_delay_days", "legit_label_delay_days",
    "card_testing_rate", "impossible_travel_rate", "account_takeover_rate", "fraud_ring_rate",
    "compromised_merchant_rate", "amount_spike_rate",
)  # fmt: skip
HELP = {
    "profile": "handbook (Fraud Detection Handbook design) or realistic",
    "seed": "seed of the numpy Generator; same seed, same bytes",
    "start_date": "first simulated day, YYYY-MM-DD (UTC)",
    "days": "number of simulated days",
    "customers": "handbook profile: customers (one card each)",
    "terminals": "handbook profile: terminals (one merchant each)",
    "cards": "realistic profile: cards",
    "merchants": "realistic profile: merchants",
    "format": "file format of --out: jsonl or parquet",
    "rate": "records per second sent by --to-kafka",
}


def _argument(name: str) -> dict[str, Any]:
    """argparse ``type`` / ``choices`` of a simulator setting, from the settings model."""
    kind = field_type(SimulatorSettings, name)
    if get_origin(kind) is Literal:
        return {"type": str, "choices": get_args(kind)}
    return {"type": kind if kind in (int, float) else str}


def register(subparsers: Any) -> None:
    """Add ``simulate``."""
    parser = subparsers.add_parser(
        "simulate",
        help="generate a reproducible payment stream (transactions + delayed labels)",
        description="Simulate payments and labels; write them to files or produce them to Kafka. "
        "Flags override the `simulator` section of the settings. Progress goes to stderr.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="DIR", type=Path, help="write files under DIR")
    target.add_argument(
        "--to-kafka",
        action="store_true",
        help="produce to the transactions and labels topics (kafka settings)",
    )
    for name in OVERRIDES:
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            **_argument(name),
            metavar=name.split("_")[-1].upper(),
            help=HELP.get(name, f"override simulator.{name}"),
        )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes writing files in parallel (default: CPU count); output is identical",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(handler=_simulate)


def simulator_settings(args: argparse.Namespace, settings: Settings) -> SimulatorSettings:
    """The ``simulator`` settings with every given flag applied."""
    chosen = {n: getattr(args, n) for n in OVERRIDES if getattr(args, n, None) is not None}
    return replace(settings.simulator, **chosen)


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from core.progress import Progress
    from training.simulator.generate import simulate

    sim_settings = simulator_settings(args, settings)
    sim = simulate(sim_settings)
    total = len(sim.delivery) + len(sim.labels)
    progress = Progress(total, "simulate", "events", quiet=args.quiet)
    if args.to_kafka:
        from riskstream.simulate_kafka import produce

        run = produce(sim, settings.kafka, sim_settings.rate, progress)
        progress.close()
        print(
            f"produced {run.transactions:,} records to {run.transactions_topic} and "
            f"{run.labels:,} to {run.labels_topic} in {run.seconds:.1f} s "
            f"({run.events_per_s:,.0f} records/s)"
        )
        return 0
    from training.simulator.writers import write_files

    manifest = write_files(sim, args.out, sim_settings.format, progress, workers=args.workers)
    rate = progress.close().rate
    print(json.dumps({"out": str(args.out), "events_per_s": round(rate), **manifest}, indent=2))
    return 0
