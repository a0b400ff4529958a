"""``riskstream train`` end to end on a tiny simulation: table, report, registry, promotion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from riskstream.cli import main
from scoring.registry import load_champion
from tests.conftest import TINY, TINY_SPLIT
from training import models


def test_train_registers_a_candidate_and_promotes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = [f"simulator.{k}={v}" for k, v in TINY.items()]
    overrides += [f"training.{k}={v}" for k, v in TINY_SPLIT.items()]
    # a tiny handbook-profile model may serve only a handbook deployment that accepts its few
    # training scores (the defaults refuse both: see test_deploy_checks.py)
    overrides += ["scoring.profile=handbook", "training.min_block_tail=1"]
    argv = [arg for item in overrides for arg in ("--set", item)]
    report = tmp_path / "report.json"
    root = tmp_path / "registry"
    status = main(
        [*argv, "train", "--registry", str(root), "--report", str(report), "--promote", "--quiet"]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "| model | AUC ROC | AP | CP@100 | Brier |" in out
    assert "registered v0001 (candidate)" in out and "promoted v0001 to champion" in out
    assert set(json.loads(report.read_text("utf-8"))["metrics"]) == set(models.ALL_MODELS)
    assert (root / "v0001" / "evaluation.json").is_file()
    assert load_champion(root).version == "v0001"
