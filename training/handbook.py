"""The Handbook comparison: its protocol, its 15 features, its published tables and their windows.

Le Borgne et al., "Reproducible Machine Learning for Credit Card Fraud Detection - Practical
Handbook" (2022). Two published tables are compared, each on its own evaluation window:

- **Chapter 3, section "Baseline fraud detection system"** (default hyper-parameters): train on the
  7 days from 2018-07-25, skip a 7-day delay, test on 2018-08-08 .. 2018-08-14.
- **Chapter 5, section "Model selection"** (the bracketed, after-model-selection figures): the test
  performance is a prequential average over 4 folds whose test weeks start 2018-08-08, 08-15,
  08-22 and 08-29 (each trained on the 7 days two weeks before); the hyper-parameters were chosen
  on validation folds with test weeks 2018-07-04 .. 2018-07-31. So the bracketed figures are
  **not** on the chapter 3 test week; :data:`WINDOWS` runs both.

Two protocols are reported side by side (:data:`PROTOCOLS`): ``handbook`` (the Handbook's: cards
known compromised removed per test day with its rule, CP@100 removing cards detected on earlier
days) and ``former`` (the project's earlier evaluation: one fixed set of known-compromised cards,
CP@100 without the removal). The 15 features are selected *by name* from
:data:`schemas.feature_set.PAYMENT_FEATURES`, so they are computed by the project's one feature
code. The rule model and the ensemble that stacks it encode the simulator's own fraud logic
(``amount >= 220`` is the generator's first scenario), so they are reported apart from the models
that learn from data (:data:`LEARNED_GROUP`); ``ensemble_learned`` stacks the learned models only.
Used by ``riskstream train --profile handbook`` and ``python -m bench.handbook``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.config import Settings, TrainingSettings, replace
from core.errors import FeatureSpecError
from schemas.feature_set import PAYMENT_FEATURES
from training import evaluate, models, split, train
from training.data import TrainingData, simulated_training_data

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
F64 = npt.NDArray[np.float64]
LEARNED_ENSEMBLE = "ensemble_learned"
"""The ensemble refitted over the learned models only (no rules): comparable with the Handbook's."""
LEARNED_STACK = (*models.DERIVED, *models.LEARNED)
"""What ``ensemble_learned`` stacks: every served base score except the rules."""
LEARNED_GROUP = (*LEARNED_STACK, LEARNED_ENSEMBLE)
"""Models that learn from data (and the per-card amount deviation, a profile statistic with no
knowledge of the simulator): the like-for-like comparison with the published table."""
SIMULATOR_LOGIC_GROUP = (models.RULES, models.ENSEMBLE)
"""The rule model (hand-set thresholds that mirror the generator, e.g. amount >= 220) and the
served ensemble, which stacks it."""


@dataclass(frozen=True)
class Window:
    """An evaluation window of a published table: the first test day of each prequential fold."""

    key: str
    chapter: str
    test_starts: tuple[str, ...]
    published: str

    def to_dict(self) -> dict[str, Any]:
        """For the results file."""
        return {
            "chapter": self.chapter,
            "test_weeks_starting": list(self.test_starts),
            "train_days": TRAIN_DAYS,
            "delay_days": DELAY_DAYS,
            "test_days": TEST_DAYS,
            "published_figures": self.published,
        }


CHAPTER_3 = Window(
    "chapter_3",
    "3 (Getting started), section 'Baseline fraud detection system': train 2018-07-25 .. "
    "07-31, test 2018-08-08 .. 08-14",
    (TEST_START,),
    "default hyper-parameters (the unbracketed figures)",
)
CHAPTER_5 = Window(
    "chapter_5",
    "5 (Model validation and selection), section 'Model selection': test performance averaged "
    "over 4 prequential folds, test weeks from 2018-08-08, 08-15, 08-22, 08-29 (hyper-parameters "
    "chosen on validation weeks 2018-07-04 .. 07-31)",
    ("2018-08-08", "2018-08-15", "2018-08-22", "2018-08-29"),
    "after model selection (the bracketed figures)",
)
WINDOWS = {w.key: w for w in (CHAPTER_3, CHAPTER_5)}


@dataclass(frozen=True)
class Protocol:
    """How known-compromised cards leave the test set and how CP@100 counts detected cards."""

    key: str
    known_compromised: str
    cp_removes_detected: bool
    handbooks: bool
    description: str


PROTOCOLS = {
    p.key: p
    for p in (
        Protocol(
            "handbook",
            split.HANDBOOK_RULE,
            True,
            True,
            "the Handbook's: per test day D, cards with a fraud on a day in [train start, "
            "D - 7 days) are removed (get_train_test_set); CP@100 removes cards detected on "
            "earlier test days (card_precision_top_k, remove_detected_compromised_cards=True)",
        ),
        Protocol(
            "former",
            split.FIXED_RULE,
            False,
            False,
            "the project's former evaluation: one fixed set of known-compromised cards (a fraud "
            "since the training start labelled before the test start); CP@100 counts a card "
            "again on every day it is in the top 100 (inflated: a compromised card stays "
            "fraudulent for days)",
        ),
    )
}


@dataclass(frozen=True)
class Published:
    """One row of the published test tables; ``selected`` are the after-model-selection figures."""

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
"""Best published test figures (XGBoost after model selection, chapter 5 window)."""


def protocol_settings(
    settings: Settings, customers: int, terminals: int, days: int, seed: int
) -> Settings:
    """Settings for the Handbook protocol on a Handbook-profile simulation of the given size."""
    simulator = replace(
        settings.simulator,
        profile="handbook",
        customers=customers,
        terminals=terminals,
        days=days,
        seed=seed,
        start_date=START_DATE,
    )
    training = replace(
        settings.training,
        test_start=TEST_START,
        train_days=TRAIN_DAYS,
        delay_days=DELAY_DAYS,
        test_days=TEST_DAYS,
        only_known_labels=False,
        known_compromised=split.HANDBOOK_RULE,
    )
    return replace(settings, simulator=simulator, training=training)


def data_until(windows: Sequence[Window]) -> int:
    """Epoch ms of the end of the last test week of ``windows`` (features are needed up to it)."""
    last = max(s for w in windows for s in w.test_starts)
    return split.day_ms(last) + TEST_DAYS * split.MS_PER_DAY


def reference_rows(selected: bool) -> list[tuple[str, float, float, float]]:
    """The published rows for :func:`training.evaluate.table` (default or after selection)."""
    if not selected:
        return [
            (f"Handbook: {p.model}", p.auc_roc, p.average_precision, p.cp_at_100) for p in PUBLISHED
        ]
    chosen = [p for p in PUBLISHED if p.selected is not None]
    return [(f"Handbook: {p.model} (selected)", *p.selected) for p in chosen if p.selected]


def _learned_ensemble(run: train.TrainingRun, y: npt.NDArray[np.int64], seed: int) -> Any:
    """A stacker over the learned models' out-of-fold scores only (no rules)."""
    return models.stacker(seed).fit(models.stack_inputs(run.oof_scores, LEARNED_STACK), y)


def _metrics(
    test: pd.DataFrame, scores: Mapping[str, F64], day: npt.NDArray[np.int64], remove: bool
) -> dict[str, dict[str, float]]:
    y = test["label"].to_numpy().astype(np.int64)
    out = {}
    for name, values in scores.items():
        report = evaluate.evaluate(test, values, day, None, probabilistic=False)
        out[name] = {
            "auc_roc": report["auc_roc"],
            "average_precision": report["average_precision"],
            "cp_at_100": report["cp_at_100" if remove else "cp_at_100_no_removal"],
            "test_frauds": int(y.sum()),
        }
    return out


def window_run(
    data: TrainingData,
    settings: TrainingSettings,
    test_start: str,
    quiet: bool,
    extra_anomaly: Mapping[str, models.Spec] | None = None,
) -> tuple[train.TrainingRun, dict[str, Any]]:
    """Train on the fold of ``test_start`` and evaluate under every protocol.

    Returns the run and ``{"protocols": {key: {model: metrics}}, "rows": ..., "anomaly": ...}``.
    ``extra_anomaly`` are anomaly-model candidates whose stacked ensembles are also evaluated (the
    model-family study of docs/handbook.md): ``none`` stacks rules and the classifiers, each
    candidate stacks rules, itself and the classifiers, and ``amount_deviation (served)`` is the
    served family's ensemble.
    """
    s = replace(settings, test_start=test_start)
    run = train.run(
        data.frame,
        data.start_ms,
        data.end_ms,
        s,
        PAYMENT_FEATURES,
        inputs=HANDBOOK_FEATURES,
        quiet=quiet,
    )
    train_rows, _ = split.apply(data.frame, run.split, s.only_known_labels, s.known_compromised)
    y_train = train_rows["label"].to_numpy().astype(np.int64)
    learned_stacker = _learned_ensemble(run, y_train, s.seed)
    variants: dict[str, tuple[Any, tuple[str, ...]]] = {}
    extra_fitted: dict[str, Any] = {}
    if extra_anomaly:
        x_train = train.matrix(train_rows, run.inputs)
        period = train.period_index(train_rows, run.split.train_start_ms)
        extra_fitted, extra_oof = train.fit_stack(
            extra_anomaly, run.rules, x_train, y_train, period, folds=s.stack_folds, quiet=quiet
        )
        oof = {**run.oof_scores, **extra_oof}
        family = (models.RULES, *models.CLASSIFIERS)
        candidates: dict[str, tuple[str, ...]] = {"none": family}
        candidates |= {name: (models.RULES, name, *models.CLASSIFIERS) for name in extra_anomaly}
        for key, names in candidates.items():
            stacker = models.stacker(s.seed).fit(models.stack_inputs(oof, names), y_train)
            variants[key] = (stacker, names)
    report: dict[str, Any] = {"split": run.split.to_dict(), "protocols": {}, "anomaly": {}}
    for key, protocol in PROTOCOLS.items():
        rule = protocol.known_compromised
        _, test = split.apply(data.frame, run.split, s.only_known_labels, rule)
        day = split.day_index(test["event_time"].to_numpy(), run.split.test_start_ms)
        scores = train.score_frame(run, test)
        scores[LEARNED_ENSEMBLE] = learned_stacker.predict_proba(
            models.stack_inputs(scores, LEARNED_STACK)
        )[:, 1]
        report["protocols"][key] = _metrics(test, scores, day, protocol.cp_removes_detected)
        report.setdefault("rows", {})[key] = {
            "test": len(test),
            "test_fraud": int(test["label"].sum()),
        }
        if variants and protocol.handbooks:
            x_test = train.matrix(test, run.inputs)
            anomaly_names = [n for n, spec in (extra_anomaly or {}).items() if spec.anomaly]
            extra_scores = train.base_scores(extra_fitted, run.rules, x_test, anomaly_names)
            every = {**scores, **extra_scores}
            ensembles = {
                key: stacker.predict_proba(models.stack_inputs(every, names))[:, 1]
                for key, (stacker, names) in variants.items()
            }
            ensembles[f"{models.DEVIATION} (served)"] = scores[models.ENSEMBLE]
            report["anomaly"] = _metrics(test, ensembles, day, True)
    report["rows"]["train"] = len(train_rows)
    report["rows"]["train_fraud"] = int(y_train.sum())
    return run, report


def _mean(reports: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    names = reports[0].keys()
    return {
        name: {m: float(np.mean([r[name][m] for r in reports])) for m in METRICS} for name in names
    }


def compare(
    data: TrainingData,
    settings: Settings,
    windows: Sequence[Window] = (CHAPTER_3,),
    quiet: bool = False,
    extra_anomaly: Mapping[str, models.Spec] | None = None,
) -> tuple[train.TrainingRun, dict[str, Any]]:
    """Run every fold of ``windows`` under both protocols; returns the chapter-3 run (the one
    registered by ``riskstream train --profile handbook``) and the summary."""
    by_start: dict[str, dict[str, Any]] = {}
    runs: dict[str, train.TrainingRun] = {}
    for start in sorted({s for w in windows for s in w.test_starts}):
        runs[start], by_start[start] = window_run(
            data, settings.training, start, quiet, extra_anomaly
        )
    first = runs.get(TEST_START) or next(iter(runs.values()))
    figures: dict[str, dict[str, Any]] = {p: {} for p in PROTOCOLS}
    anomaly: dict[str, Any] = {}
    for window in windows:
        for p in PROTOCOLS:
            figures[p][window.key] = _mean(
                [by_start[s]["protocols"][p] for s in window.test_starts]
            )
        if extra_anomaly:
            anomaly[window.key] = {
                "mean": _mean([by_start[s]["anomaly"] for s in window.test_starts]),
                "per_fold": {s: by_start[s]["anomaly"] for s in window.test_starts},
            }
    summary: dict[str, Any] = {
        "simulation": data.source,
        "size": {
            "customers": settings.simulator.customers,
            "terminals": settings.simulator.terminals,
            "days": settings.simulator.days,
            "rows_up_to_last_test_end": len(data.frame),
        },
        "features": list(HANDBOOK_FEATURES),
        "protocols": {
            k: {
                "handbooks": p.handbooks,
                "known_compromised": p.known_compromised,
                "cp_at_100_removes_detected_cards": p.cp_removes_detected,
                "description": p.description,
            }
            for k, p in PROTOCOLS.items()
        },
        "windows": {w.key: w.to_dict() for w in windows},
        "groups": {
            "learned_from_data": list(LEARNED_GROUP),
            "simulator_logic": list(SIMULATOR_LOGIC_GROUP),
        },
        "figures": figures,
        "folds": {
            s: {"split": r["split"], "rows": r["rows"], "protocols": r["protocols"]}
            for s, r in by_start.items()
        },
        "published": {
            p.model: {
                "auc_roc": p.auc_roc,
                "average_precision": p.average_precision,
                "cp_at_100": p.cp_at_100,
                "window": CHAPTER_3.key,
                "selected": None
                if p.selected is None
                else dict(zip(METRICS, p.selected, strict=True)) | {"window": CHAPTER_5.key},
            }
            for p in PUBLISHED
        },
        "target": {"average_precision": TARGET_AP, "cp_at_100": TARGET_CP, "window": "chapter_5"},
        "comparison": _like_for_like(figures["handbook"]),
        "parity": first.parity,
        "boosting_selection": None if first.boosting is None else first.boosting.to_dict(),
    }
    if anomaly:
        summary["anomaly_study"] = anomaly
    return first, summary


def _like_for_like(handbook_figures: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Our best learned-from-data model per window next to the best published figure of it."""
    out = {}
    for key, per_model in handbook_figures.items():
        learned = {n: f for n, f in per_model.items() if n in LEARNED_GROUP}
        if key == CHAPTER_3.key:
            published = [(p.auc_roc, p.average_precision, p.cp_at_100) for p in PUBLISHED]
        else:
            published = [p.selected for p in PUBLISHED if p.selected is not None]
        out[key] = {
            "ours_best_learned": {m: max(f[m] for f in learned.values()) for m in METRICS},
            "published_best": {m: max(row[i] for row in published) for i, m in enumerate(METRICS)},
        }
    return out


def run(settings: Settings, quiet: bool = False) -> tuple[train.TrainingRun, dict[str, Any]]:
    """Simulate (``settings`` as from :func:`protocol_settings`), train, and compare on the
    chapter 3 window (``python -m bench.handbook`` also runs the chapter 5 window)."""
    data = simulated_training_data(
        settings.simulator, until_ms=data_until([CHAPTER_3]), quiet=quiet
    )
    return compare(data, settings, (CHAPTER_3,), quiet)


def comparison_table(summary: Mapping[str, Any], window: str = CHAPTER_3.key) -> str:
    """Both protocols side by side for one window, learned models first, then the rules group,
    then the published rows of that window (Markdown)."""
    hb, former = summary["figures"]["handbook"][window], summary["figures"]["former"][window]
    lines = [
        "| model | AUC ROC | AP | CP@100 | former: AUC ROC | former: AP | former: CP@100 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def row(label: str, a: Mapping[str, float], b: Mapping[str, float] | None) -> str:
        ours = f"{a['auc_roc']:.3f} | {a['average_precision']:.3f} | {a['cp_at_100']:.3f}"
        if b is None:
            return f"| {label} | {ours} | - | - | - |"
        theirs = f"{b['auc_roc']:.3f} | {b['average_precision']:.3f} | {b['cp_at_100']:.3f}"
        return f"| {label} | {ours} | {theirs} |"

    lines.append("| *learned from data* | | | | | | |")
    lines += [row(n, hb[n], former[n]) for n in LEARNED_GROUP if n in hb]
    lines.append("| *rules encoding the simulator's logic* | | | | | | |")
    lines += [row(n, hb[n], former[n]) for n in SIMULATOR_LOGIC_GROUP if n in hb]
    lines.append("| *published (Handbook protocol)* | | | | | | |")
    for name, auc, ap, cp in reference_rows(selected=window != CHAPTER_3.key):
        lines.append(row(name, {"auc_roc": auc, "average_precision": ap, "cp_at_100": cp}, None))
    return "\n".join(lines)
