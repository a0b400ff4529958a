"""Benchmark: ``riskstream train --table`` on a synthetic table of the ULB credit-card set's shape.

Generates the table (``training/simulator/tabular.py``: 284,807 rows, 492 frauds, ``Time, V1..V28,
Amount, Class``), trains the model family exactly as ``riskstream train --table`` does (time
split: the latest 25% of rows are the test set; boosting settings chosen on the latest training
blocks), and on the same training and test rows fits two references: the former fixed boosting
setting (200 rounds, learning rate 0.1, 31 leaves, no regularisation) and a lightly regularised
HistGradientBoosting (scikit-learn's defaults with ``l2_regularization=1``, no early stopping).
Prints and writes average precision and AUC ROC of each to ``bench/results/tabular.json``. Run from
the repo root: ``python -m bench.tabular`` (``--rows/--frauds`` for a smaller table).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from core.config import load_settings
from training import models, split, table, train
from training.simulator.tabular import ULB_FRAUDS, ULB_ROWS, ulb_like

RESULTS = Path(__file__).parent / "results" / "tabular.json"
REFERENCES: dict[str, dict[str, Any]] = {
    "former_fixed_boosting": {
        "max_iter": 200,
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "early_stopping": False,
    },
    "lightly_regularised_hgb": {"l2_regularization": 1.0, "early_stopping": False},
}


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write the JSON; exit 0."""
    parser = argparse.ArgumentParser(prog="python -m bench.tabular", description=__doc__)
    parser.add_argument("--rows", type=int, default=ULB_ROWS)
    parser.add_argument("--frauds", type=int, default=ULB_FRAUDS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    started = time.monotonic()
    settings = load_settings(environ={}).training
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "creditcard.csv"
        ulb_like(args.rows, args.frauds, args.seed).to_csv(path, index=False)
        prepared = table.prepare(path, "Class", "Time")
        run = table.train_table(prepared, settings)
    s = table.table_settings(settings)
    train_rows, test_rows = split.apply(prepared.frame, run.split, False, s.known_compromised)
    x_train, x_test = train.matrix(train_rows, run.inputs), train.matrix(test_rows, run.inputs)
    y_train = train_rows["label"].to_numpy().astype(np.int64)
    y_test = test_rows["label"].to_numpy().astype(np.int64)
    figures: dict[str, dict[str, float]] = {
        name: {
            "average_precision": run.metrics[name]["average_precision"],
            "auc_roc": run.metrics[name]["auc_roc"],
        }
        for name in (models.BOOSTING, models.ENSEMBLE, models.LOGISTIC, models.MLP)
    }
    for name, params in REFERENCES.items():
        model = HistGradientBoostingClassifier(random_state=settings.seed, **params)
        p = models.score_estimator(
            models.fit_estimator(model, x_train, y_train, False), x_test, False
        )
        figures[name] = {
            "average_precision": float(average_precision_score(y_test, p)),
            "auc_roc": float(roc_auc_score(y_test, p)),
        }
    summary = {
        "table": {"rows": args.rows, "frauds": args.frauds, "seed": args.seed},
        "rows": run.rows,
        "boosting_selection": None if run.boosting is None else run.boosting.to_dict(),
        "references": REFERENCES,
        "figures": figures,
        "elapsed_s": round(time.monotonic() - started, 1),
        "loadavg": {"start": list(load_start), "end": list(os.getloadavg())},
    }
    print("| model | AP | AUC ROC |\n| --- | --- | --- |")
    for name, f in figures.items():
        print(f"| {name} | {f['average_precision']:.3f} | {f['auc_roc']:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
