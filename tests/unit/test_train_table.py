"""``riskstream train --table``: the model family on a table of the ULB credit-card set's shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.config import TrainingSettings
from core.errors import ConfigError, ModelContractError
from riskstream.cli import main
from scoring.registry import read_card
from training import models, table, train
from training.simulator.tabular import ulb_like

ROWS, FRAUDS = 12_000, 150


@pytest.fixture(scope="module")
def table_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ulb") / "creditcard.csv"
    ulb_like(ROWS, FRAUDS, seed=5).to_csv(path, index=False)
    return path


def test_train_on_a_ulb_shaped_table(
    table_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "registry"
    source = ["--table", str(table_file), "--label", "Class", "--time", "Time"]
    status = main(["train", *source, "--registry", str(root), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "registered v0001 (candidate, not servable)" in out
    card = read_card(root, "v0001")
    assert card["servable"] is False
    assert card["feature_set"]["name"] == "table_creditcard"
    assert card["inputs"] == [f"v{i}" for i in range(1, 29)] + ["amount"]
    assert card["training"]["table"]["columns"]["v14"] == "V14"
    assert card["rules"] == []
    selection = card["training"]["boosting_selection"]
    assert selection["validation_ap"] is not None and len(selection["tried"]) == len(
        models.HGB_CANDIDATES
    )
    window = card["training"]["window"]
    assert window["train_end_ms"] == window["test_start_ms"]  # time split, test after train
    assert card["metrics"]["ensemble"]["average_precision"] > 0.5
    assert set(card["feature_ranges"]["features"]) == set(card["inputs"])
    report = json.loads((root / "v0001" / "evaluation.json").read_text("utf-8"))
    assert set(report["metrics"]) == set(models.ALL_MODELS)
    assert main(["models", "--registry", str(root), "promote", "v0001", "--force"]) != 0
    assert "not servable by the payment job" in capsys.readouterr().err


def test_table_needs_label_and_time(table_file: Path, tmp_path: Path) -> None:
    assert main(["train", "--table", str(table_file), "--registry", str(tmp_path)]) != 0
    with pytest.raises(ConfigError, match="not a column"):
        table.prepare(table_file, "fraud", "Time")


def test_fewer_than_two_ensemble_folds_are_refused(table_file: Path) -> None:
    prepared = table.prepare(table_file, "Class", "Time")
    with pytest.raises(ConfigError, match="stack_folds: expected >= 2"):
        table.train_table(prepared, TrainingSettings(stack_folds=1), quiet=True)


def test_a_fold_without_fraud_outside_it_is_refused() -> None:
    y = np.array([0, 0, 1, 0, 0, 0], dtype=np.int64)
    folds = models.day_folds(np.array([0, 0, 1, 1, 2, 2]), 3)
    with pytest.raises(ModelContractError, match="fold 2/3"):
        train.check_folds(folds, y)
    with pytest.raises(ModelContractError, match="at least 2 folds"):
        train.check_folds(models.day_folds(np.zeros(6, dtype=np.int64), 3), y)
