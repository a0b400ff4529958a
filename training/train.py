"""One training run: split, fit every model, score the test set, export to ONNX with parity.

The run is a pure function of the training-set frame and the settings; writing the registry
version is :mod:`training.registry`'s job. Progress of each step goes to stderr.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.config import TrainingSettings
from core.errors import ConfigError, ModelContractError
from core.progress import note
from schemas.feature_set import FeatureSet
from scoring.rules import RuleModel
from training import evaluate, export, models, split
from training.registry import RANGE_QUANTILES

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrainingRun:
    """Everything a run produced: models, ONNX bytes, thresholds and the evaluation report."""

    feature_set: FeatureSet
    inputs: tuple[str, ...]
    split: split.TimeSplit
    rules: RuleModel
    fitted: models.Fitted
    onnx: dict[str, bytes]
    parity: dict[str, float]
    thresholds: evaluate.Thresholds
    metrics: dict[str, dict[str, Any]]
    rows: dict[str, int]
    test_scores: dict[str, F64]
    oof_scores: dict[str, F64] = field(default_factory=dict)
    """Out-of-fold training scores of every stacked model and the ensemble."""
    boosting: models.BoostingChoice | None = None
    feature_ranges: dict[str, dict[str, float]] = field(default_factory=dict)
    rule_fired_share: dict[str, float] = field(default_factory=dict)
    threshold_support: dict[str, Any] = field(default_factory=dict)
    expected_decisions: dict[str, Any] = field(default_factory=dict)
    fast_thresholds: dict[str, evaluate.Thresholds] = field(default_factory=dict)
    """Per learned model, thresholds cut on its own out-of-fold scores with the ensemble's block
    and step-up shares: what a shed batch (one fast model instead of the ensemble) decides with."""


def matrix(frame: pd.DataFrame, inputs: Sequence[str]) -> npt.NDArray[np.float32]:
    """The float32 model input of ``frame`` (columns ``inputs``, in order)."""
    return np.ascontiguousarray(frame[list(inputs)].to_numpy(dtype=np.float32))


def base_scores(
    learned: Mapping[str, Any], rules: RuleModel, x: npt.NDArray[np.float32], anomaly: Sequence[str]
) -> dict[str, F64]:
    """The rules' score, the derived scores and every learned model's score of ``x``
    (scikit-learn); ``x``'s columns are ``rules.inputs``."""
    scores = {models.RULES: rules.score(x), **models.derived_scores(x, rules.inputs)}
    for name, model in learned.items():
        scores[name] = models.score_estimator(model, x, anomaly=name in anomaly)
    return scores


def _fit_all(
    specs: Mapping[str, models.Spec],
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    quiet: bool,
    tag: str,
) -> dict[str, Any]:
    fitted = {}
    for name, spec in specs.items():
        note(f"train: fitting {name} on {len(y):,} rows{tag}", quiet)
        fitted[name] = models.fit_estimator(spec.build(), x, y, spec.anomaly)
    return fitted


def check_folds(folds: Sequence[npt.NDArray[np.bool_]], y: npt.NDArray[np.int64]) -> None:
    """Refuse out-of-fold stacking that cannot be done honestly.

    The ensemble is fitted on out-of-fold scores: with fewer than two folds (or a fold whose
    complement lacks fraud or legitimate rows) the scores would be in-sample, and the ensemble would
    trust the base models far more than it should on new data.
    """
    if len(folds) < 2:
        raise ModelContractError(
            f"the ensemble needs out-of-fold scores from at least 2 folds, found {len(folds)} "
            "(the training period has fewer distinct days or time blocks than that); use more "
            "training days or set training.stack_folds >= 2"
        )
    for k, held in enumerate(folds):
        if len(np.unique(y[~held])) < 2:
            raise ModelContractError(
                f"ensemble fold {k + 1}/{len(folds)}: the rows outside it have "
                f"{int(y[~held].sum())} frauds of {int((~held).sum())}; every fold's complement "
                "needs fraud and legitimate rows (use more training days or fewer stack_folds)"
            )


def fit_stack(
    specs: Mapping[str, models.Spec],
    rules: RuleModel,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    period: npt.NDArray[np.int64],
    *,
    folds: int,
    quiet: bool = False,
) -> tuple[dict[str, Any], dict[str, F64]]:
    """Fit the base models on all rows, and their out-of-fold scores over whole periods (days)."""
    fold_masks = models.day_folds(period, folds)
    check_folds(fold_masks, y)
    anomaly = [n for n, spec in specs.items() if spec.anomaly]
    oof = {name: np.zeros(len(y)) for name in (models.RULES, *models.DERIVED, *specs)}
    for k, held in enumerate(fold_masks):
        tag = f" (fold {k + 1}/{len(fold_masks)} for the ensemble)"
        fold_models = _fit_all(specs, x[~held], y[~held], quiet, tag)
        for name, values in base_scores(fold_models, rules, x[held], anomaly).items():
            oof[name][held] = values
    return _fit_all(specs, x, y, quiet, ""), oof


def feature_ranges(x: npt.NDArray[np.float32], names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per input: the 0.1% and 99.9% training quantiles (``low``, ``high``), min and max."""
    if not len(x):
        return {}
    q = np.quantile(x.astype(np.float64), RANGE_QUANTILES, axis=0)
    lo, hi = x.min(axis=0), x.max(axis=0)
    return {
        name: {
            "low": float(q[0, j]),
            "high": float(q[1, j]),
            "min": float(lo[j]),
            "max": float(hi[j]),
        }
        for j, name in enumerate(names)
    }


def decision_shares(thresholds: evaluate.Thresholds, p: F64) -> dict[str, float]:
    """Share of approve / step_up / block of probabilities ``p`` under ``thresholds``."""
    decided = thresholds.decide(p)
    total = max(len(p), 1)
    return {k: float((decided == k).sum()) / total for k in ("approve", "step_up", "block")}


def threshold_support(
    thresholds: evaluate.Thresholds, p: F64, y: npt.NDArray[np.int64], min_block_tail: int
) -> dict[str, Any]:
    """How many training scores each threshold rests on (see docs/training.md, "stable thresholds").

    ``block_tail``: out-of-fold ensemble scores at or above the block threshold (the fraud side of
    it); the block threshold is a quantile of those scores, so fewer than ``min_block_tail`` of them
    make it unstable from one training run to the next.
    """
    block = p >= thresholds.block
    step_up = p >= thresholds.step_up
    tail = int(block.sum())
    return {
        "block_tail": tail,
        "block_tail_frauds": int((block & (y == 1)).sum()),
        "step_up_tail": int(step_up.sum()),
        "min_block_tail": min_block_tail,
        "stable": tail >= min_block_tail,
    }


def run(
    frame: pd.DataFrame,
    data_start_ms: int,
    data_end_ms: int,
    settings: TrainingSettings,
    feature_set: FeatureSet,
    *,
    inputs: Sequence[str] | None = None,
    quiet: bool = False,
    the_split: split.TimeSplit | None = None,
) -> TrainingRun:
    """Train, evaluate and export every model on the time split of ``frame``.

    ``inputs`` (default: the whole feature set, in order) selects the model inputs by name, e.g.
    the Handbook's 15 features; rules on features outside ``inputs`` are dropped. ``the_split``
    (default: planned from the settings) fixes the windows, e.g. for a table's time split.
    """
    names = tuple(inputs or feature_set.names)
    if settings.stack_folds < 2:
        raise ConfigError(
            f"training.stack_folds: expected >= 2 (the ensemble is fitted on out-of-fold scores), "
            f"found {settings.stack_folds}"
        )
    the_split = the_split or split.plan(data_start_ms, data_end_ms, settings)
    train, test = split.apply(
        frame, the_split, settings.only_known_labels, settings.known_compromised
    )
    note(
        f"train: split {the_split.to_dict()['train_start']} .. {the_split.to_dict()['test_end']}: "
        f"{len(train):,} train rows ({int(train['label'].sum()):,} fraud), "
        f"{len(test):,} test rows ({int(test['label'].sum()):,} fraud)",
        quiet,
    )
    rules = RuleModel.from_settings(settings.rules, names, drop_unknown=inputs is not None)
    x_train, y_train = matrix(train, names), train["label"].to_numpy().astype(np.int64)
    x_test = matrix(test, names)
    train_day = period_index(train, the_split.train_start_ms)
    test_day = split.day_index(test["event_time"].to_numpy(), the_split.test_start_ms)

    note("train: choosing the gradient-boosting settings on the latest training days", quiet)
    boosting = models.select_boosting(x_train, y_train, train_day, settings.seed)
    note(f"train: gradient boosting {dict(boosting.params)} {boosting.note}".rstrip(), quiet)
    specs = models.specs(models.LEARNED, settings.seed, boosting.params)
    learned, oof = fit_stack(
        specs, rules, x_train, y_train, train_day, folds=settings.stack_folds, quiet=quiet
    )
    note("train: fitting the ensemble on out-of-fold scores", quiet)
    ensemble = models.stacker(settings.seed).fit(models.stack_inputs(oof), y_train)
    fitted = models.Fitted(learned=learned, ensemble=ensemble)
    oof[models.ENSEMBLE] = ensemble.predict_proba(models.stack_inputs(oof))[:, 1]
    thresholds = evaluate.choose_thresholds(
        oof[models.ENSEMBLE], settings.block_rate, settings.step_up_rate
    )
    support = threshold_support(thresholds, oof[models.ENSEMBLE], y_train, settings.min_block_tail)
    fast_thresholds = {
        name: evaluate.choose_thresholds(oof[name], settings.block_rate, settings.step_up_rate)
        for name in models.LEARNED
    }
    if not support["stable"]:
        note(
            f"WARNING: the block threshold rests on {support['block_tail']} training scores "
            f"(fewer than training.min_block_tail = {settings.min_block_tail}): it will move "
            f"from one training run to the next; train on at least "
            f"{math.ceil(settings.min_block_tail / settings.block_rate):,} rows "
            f"(min_block_tail / block_rate). `--promote` refuses such a model.",
            False,
        )

    scores = base_scores(learned, rules, x_test, models.ANOMALY_MODELS)
    scores[models.ENSEMBLE] = ensemble.predict_proba(models.stack_inputs(scores))[:, 1]
    note("train: exporting to ONNX and checking parity on the test set", quiet)
    blobs, gaps = export.export_all(fitted, names, feature_set, x_test, scores)
    note("train: evaluating on the test period", quiet)
    metrics = {
        name: evaluate.evaluate(
            test,
            scores[name],
            test_day,
            thresholds if name == models.ENSEMBLE else None,
            probabilistic=name not in models.ANOMALY_MODELS,
        )
        for name in models.ALL_MODELS
    }
    period = frame["event_time"].to_numpy()
    rows = {
        "train": len(train),
        "train_fraud": int(y_train.sum()),
        "test": len(test),
        "test_fraud": int(test["label"].sum()),
        "test_rows_removed_known_compromised": int(
            ((period >= the_split.test_start_ms) & (period < the_split.test_end_ms)).sum()
            - len(test)
        ),
    }
    fired = rules.fired(x_train).mean(axis=0) if len(x_train) else np.zeros(len(rules.rules))
    return TrainingRun(
        feature_set=feature_set,
        inputs=names,
        split=the_split,
        rules=rules,
        fitted=fitted,
        onnx=blobs,
        parity=gaps,
        thresholds=thresholds,
        metrics=metrics,
        rows=rows,
        test_scores=scores,
        oof_scores=oof,
        boosting=boosting,
        feature_ranges=feature_ranges(x_train, names),
        rule_fired_share={
            r.name: float(share) for r, share in zip(rules.rules, fired, strict=True)
        },
        threshold_support=support,
        fast_thresholds=fast_thresholds,
        expected_decisions={
            "test": decision_shares(thresholds, scores[models.ENSEMBLE]),
            "train_out_of_fold": decision_shares(thresholds, oof[models.ENSEMBLE]),
        },
    )


def score_frame(run: TrainingRun, frame: pd.DataFrame) -> dict[str, F64]:
    """Every model's scikit-learn score of the rows of ``frame``, the ensemble's included."""
    x = matrix(frame, run.inputs)
    scores = base_scores(run.fitted.learned, run.rules, x, models.ANOMALY_MODELS)
    scores[models.ENSEMBLE] = run.fitted.ensemble.predict_proba(models.stack_inputs(scores))[:, 1]
    return scores


def period_index(frame: pd.DataFrame, start_ms: int) -> npt.NDArray[np.int64]:
    """Whole UTC days since ``start_ms`` of each row: the unit of the ensemble's folds and of the
    boosting validation split (a table's time blocks use a ``period`` column instead)."""
    if "period" in frame.columns:
        periods: npt.NDArray[np.int64] = frame["period"].to_numpy(dtype=np.int64)
        return periods
    days: npt.NDArray[np.int64] = split.day_index(frame["event_time"].to_numpy(), start_ms)
    return days
