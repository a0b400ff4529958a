"""Benchmark: our models on the Fraud Detection Handbook protocol, next to its published table.

Simulates the Handbook profile (reference size by default: 5,000 customers, 10,000 terminals,
183 days), computes the 15 Handbook features with the project's feature code, trains every model
on the Handbook split and prints AUC ROC, AP and CP@100 beside the published figures. Writes
``bench/results/handbook.json`` (object ``figures``: each model's ``auc_roc``,
``average_precision``, ``cp_at_100``). Run from the repo root: ``python -m bench.handbook``
(``--customers/--terminals/--days`` for a smaller run).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from core.config import load_settings
from training import handbook

RESULTS = Path(__file__).parent / "results" / "handbook.json"


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the table, write the JSON; exit 0 (the figures are the result)."""
    parser = argparse.ArgumentParser(prog="python -m bench.handbook", description=__doc__)
    parser.add_argument("--customers", type=int, default=handbook.REFERENCE["customers"])
    parser.add_argument("--terminals", type=int, default=handbook.REFERENCE["terminals"])
    parser.add_argument("--days", type=int, default=handbook.REFERENCE["days"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    settings = handbook.protocol_settings(
        load_settings(), args.customers, args.terminals, args.days, args.seed
    )
    started = time.monotonic()
    _, summary = handbook.run(settings)
    summary["elapsed_s"] = round(time.monotonic() - started, 1)
    summary["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
    print(handbook.comparison_table(summary))
    best = summary["best"]
    print(
        f"best AP {best['average_precision']:.3f} (target {handbook.TARGET_AP}), "
        f"best CP@100 {best['cp_at_100']:.3f} (target {handbook.TARGET_CP})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
