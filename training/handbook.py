"""The Handbook comparison: its protocol, its 15 features, and its published test table.

Le Borgne et al., "Reproducible Machine Learning for Credit Card Fraud Detection - Practical
Handbook" (2022): train on the 7 days from 2018-07-25, skip a 7-day delay, test on the 7 days from
2018-08-08, remove cards already known compromised, report AUC ROC, AP and Card Precision@100. The
15 features are selected *by name* from :data:`schemas.feature_set.PAYMENT_FEATURES`, so they are
computed by the project's one feature code. Used by ``riskstream train --profile handbook`` and
``python -m bench.handbook``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.errors import FeatureSpecError
from schemas.feature_set import PAYMENT_FEATURES
from training import evaluate, split, train
from training.data import simulated_training_data

HANDBOOK_FEATURES = (
    "amount",
    "is_weekend",
    "is_night",
    "tx_count_by_card_1d",
    "amount_mean_by_card_1d",
    "tx_count_by_card_7d",
    "amount_mean_by_card_7d",
    "tx_count_by_card_30d",
    "amount_mean_by_card_30d",
    "tx_count_by_terminal_1d_delay7d",
    "fraud_rate_by_terminal_1d_delay7d",
    "tx_count_by_terminal_7d_delay7d",
    "fraud_rate_by_terminal_7d_delay7d",
    "tx_count_by_terminal_30d_delay7d",
    "fraud_rate_by_terminal_30d_delay7d",
)
"""The Handbook's 15 features, in feature-set order."""
if not set(HANDBOOK_FEATURES) <= set(PAYMENT_FEATURES.names):
    raise FeatureSpecError(
        "the Handbook features must be names of PAYMENT_FEATURES; missing "
        f"{sorted(set(HANDBOOK_FEATURES) - set(PAYMENT_FEATURES.names))}"
    )
METRICS = ("auc_roc", "average_precision", "cp_at_100")
START_DATE = "2018-04-01"
TEST_START = "2018-08-08"
TRAIN_DAYS = DELAY_DAYS = TEST_DAYS = 7
REFERENCE = {"customers": 5_000, "terminals": 10_000, "days": 183}
"""The Handbook's reference run (1,754,155 transactions, 0.837% fraud)."""


@dataclass(frozen=True)
class Published:
    """One row of the published test table; ``selected`` are the after-model-selection figures."""

    model: str
    auc_roc: float
    average_precision: float
    cp_at_100: float
    selected: tuple[float, float, float] | None = None


PUBLISHED = (
    Published("logistic regression", 0.871, 0.606, 0.291, (0.868, 0.623, 0.297)),
    Published("decision tree, depth 2", 0.763, 0.496, 0.241),
    Published("random forest", 0.867, 0.658, 0.287, (0.870, 0.678, 0.299)),
    Published("XGBoost", 0.862, 0.639, 0.273, (0.869, 0.687, 0.303)),
)
TARGET_AP, TARGET_CP = 0.687, 0.303
"""Best published test figures (XGBoost after model selection)."""


def protocol_settings(
    settings: Settings, customers: int, terminals: int, days: int, seed: int
) -> Settings:
    """Settings for the Handbook protocol on a Handbook-profile simulation of the given size."""
    simulator = dataclasses.replace(
        settings.simulator,
        profile="handbook",
        customers=customers,
        terminals=terminals,
        days=days,
        seed=seed,
        start_date=START_DATE,
    )
    training = dataclasses.replace(
        settings.training,
        test_start=TEST_START,
        train_days=TRAIN_DAYS,
        delay_days=DELAY_DAYS,
        test_days=TEST_DAYS,
        only_known_labels=False,
    )
    return dataclasses.replace(settings, simulator=simulator, training=training)


def reference_rows() -> list[tuple[str, float, float, float]]:
    """The published rows for :func:`training.evaluate.table` (default, then selected)."""
    rows = [
        (f"Handbook: {p.model}", p.auc_roc, p.average_precision, p.cp_at_100) for p in PUBLISHED
    ]
    for p in PUBLISHED:
        if p.selected is not None:
            rows.append((f"Handbook: {p.model} (selected)", *p.selected))
    return rows


def run(settings: Settings, quiet: bool = False) -> tuple[train.TrainingRun, dict[str, Any]]:
    """Simulate (``settings`` as from :func:`protocol_settings`), train, and compare.

    Returns the training run and a summary: our figures, the published ones, and whether our best
    model reaches the best published AP and CP@100.
    """
    test_end = split.day_ms(TEST_START) + TEST_DAYS * split.MS_PER_DAY
    data = simulated_training_data(settings.simulator, until_ms=test_end, quiet=quiet)
    result = train.run(
        data.frame,
        data.start_ms,
        data.end_ms,
        settings.training,
        PAYMENT_FEATURES,
        inputs=HANDBOOK_FEATURES,
        quiet=quiet,
    )
    figures = {name: {k: m[k] for k in METRICS} for name, m in result.metrics.items()}
    best_ap = max(f["average_precision"] for f in figures.values())
    best_cp = max(f["cp_at_100"] for f in figures.values())
    summary = {
        "simulation": data.source,
        "size": {
            "customers": settings.simulator.customers,
            "terminals": settings.simulator.terminals,
            "days": settings.simulator.days,
            "rows_up_to_test_end": len(data.frame),
        },
        "split": result.split.to_dict(),
        "rows": result.rows,
        "features": list(HANDBOOK_FEATURES),
        "figures": figures,
        "brier": {
            name: m.get("calibration", {}).get("brier") for name, m in result.metrics.items()
        },
        "published": {
            p.model: {
                "auc_roc": p.auc_roc,
                "average_precision": p.average_precision,
                "cp_at_100": p.cp_at_100,
                "selected": None
                if p.selected is None
                else dict(zip(METRICS, p.selected, strict=True)),
            }
            for p in PUBLISHED
        },
        "target": {"average_precision": TARGET_AP, "cp_at_100": TARGET_CP},
        "best": {"average_precision": best_ap, "cp_at_100": best_cp},
        "meets_target": {
            "average_precision": best_ap >= TARGET_AP,
            "cp_at_100": best_cp >= TARGET_CP,
        },
        "parity": result.parity,
    }
    return result, summary


def comparison_table(summary: dict[str, Any]) -> str:
    """Our models next to the published table (Markdown)."""
    briers = summary.get("brier", {})
    ours = {
        name: dict(f) | ({"calibration": {"brier": briers[name]}} if briers.get(name) else {})
        for name, f in summary["figures"].items()
    }
    return evaluate.table(ours, reference_rows())
