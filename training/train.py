"""One training run: split, fit every model, score the test set, export to ONNX with parity.

The run is a pure function of the training-set frame and the settings; writing the registry
version is :mod:`training.registry`'s job. Progress of each step goes to stderr.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.config import TrainingSettings
from schemas.feature_set import FeatureSet
from scoring.rules import RuleModel
from training import evaluate, export, models, split
from training.progress import note

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


def _matrix(frame: pd.DataFrame, inputs: Sequence[str]) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(frame[list(inputs)].to_numpy(dtype=np.float32))


def _base_scores(
    fitted: dict[str, Any], rules: RuleModel, x: npt.NDArray[np.float32]
) -> dict[str, F64]:
    scores = {models.RULES: rules.score(x)}
    for name in models.LEARNED:
        scores[name] = models.predict(name, fitted[name], x)
    return scores


def _fit_learned(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], seed: int, quiet: bool, tag: str
) -> dict[str, Any]:
    fitted = {}
    for name in models.LEARNED:
        note(f"train: fitting {name} on {len(y):,} rows{tag}", quiet)
        fitted[name] = models.fit(name, x, y, seed)
    return fitted


def run(
    frame: pd.DataFrame,
    data_start_ms: int,
    data_end_ms: int,
    settings: TrainingSettings,
    feature_set: FeatureSet,
    *,
    inputs: Sequence[str] | None = None,
    quiet: bool = False,
) -> TrainingRun:
    """Train, evaluate and export every model on the time split of ``frame``.

    ``inputs`` (default: the whole feature set, in order) selects the model inputs by name, e.g.
    the Handbook's 15 features; rules on features outside ``inputs`` are dropped.
    """
    names = tuple(inputs or feature_set.names)
    the_split = split.plan(data_start_ms, data_end_ms, settings)
    train, test = split.apply(frame, the_split, settings.only_known_labels)
    note(
        f"train: split {the_split.to_dict()['train_start']} .. {the_split.to_dict()['test_end']}: "
        f"{len(train):,} train rows ({int(train['label'].sum()):,} fraud), "
        f"{len(test):,} test rows ({int(test['label'].sum()):,} fraud)",
        quiet,
    )
    rules = RuleModel.from_settings(settings.rules, names, drop_unknown=inputs is not None)
    x_train, y_train = _matrix(train, names), train["label"].to_numpy().astype(np.int64)
    x_test = _matrix(test, names)
    train_day = split.day_index(train["event_time"].to_numpy(), the_split.train_start_ms)
    test_day = split.day_index(test["event_time"].to_numpy(), the_split.test_start_ms)

    oof = {name: np.zeros(len(y_train)) for name in models.STACKED}
    folds = models.day_folds(train_day, settings.stack_folds)
    for k, held in enumerate(folds):
        if len(folds) < 2 or len(np.unique(y_train[~held])) < 2:
            continue
        tag = f" (fold {k + 1}/{len(folds)} for the ensemble)"
        fold_models = _fit_learned(x_train[~held], y_train[~held], settings.seed, quiet, tag)
        for name, values in _base_scores(fold_models, rules, x_train[held]).items():
            oof[name][held] = values
    learned = _fit_learned(x_train, y_train, settings.seed, quiet, "")
    if len(folds) < 2:
        oof = _base_scores(learned, rules, x_train)
    note("train: fitting the ensemble on out-of-fold scores", quiet)
    ensemble = models.stacker(settings.seed).fit(models.stack_inputs(oof), y_train)
    fitted = models.Fitted(learned=learned, ensemble=ensemble)
    thresholds = evaluate.choose_thresholds(
        ensemble.predict_proba(models.stack_inputs(oof))[:, 1],
        settings.block_rate,
        settings.step_up_rate,
    )

    scores = _base_scores(learned, rules, x_test)
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
            probabilistic=name not in (models.ANOMALY,),
        )
        for name in models.ALL_MODELS
    }
    rows = {
        "train": len(train),
        "train_fraud": int(y_train.sum()),
        "test": len(test),
        "test_fraud": int(test["label"].sum()),
        "test_rows_removed_known_compromised": int(
            frame.loc[
                (frame["event_time"] >= the_split.test_start_ms)
                & (frame["event_time"] < the_split.test_end_ms)
            ].shape[0]
            - len(test)
        ),
    }
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
    )
