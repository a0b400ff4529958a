"""``riskstream config show|check`` and the client-side checks a job submission runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from core.config import ENV_SASL_PASSWORD, ENV_SASL_USERNAME, load_settings, to_document
from core.config_doc import shipped_yaml
from core.errors import ConfigError, RegistryError
from riskstream import preflight
from riskstream.cli import main

SECRET = "hunter2-Secret"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RISKSTREAM_CONFIG", ENV_SASL_USERNAME, ENV_SASL_PASSWORD):
        monkeypatch.delenv(name, raising=False)


def test_show_prints_the_effective_settings_as_loadable_yaml(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RISKSTREAM__FLINK__PARALLELISM", "2")
    assert main(["--set", "kafka.port=19092", "config", "show"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["kafka"]["port"] == 19092 and shown["flink"]["parallelism"] == 2
    expected = load_settings(overrides={"kafka": {"port": 19092}})
    assert shown == to_document(expected)


def test_show_defaults_prints_the_documented_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--set", "kafka.port=1", "config", "show", "--defaults"]) == 0
    assert capsys.readouterr().out == shipped_yaml()


def test_no_command_ever_prints_a_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_SASL_USERNAME, "svc-user")
    monkeypatch.setenv(ENV_SASL_PASSWORD, SECRET)
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"kafka: {{sasl_password: {SECRET}, port: nope}}\n")
    runs = [
        (["--set", "kafka.security_protocol=SASL_SSL", "config", "show"], 0),
        (["config", "show", "--defaults"], 0),
        (["config", "check", str(bad)], 2),
        (["--set", f"kafka.sasl_password={SECRET}", "config", "show"], 2),
        (["--set", "kafka.port=x", "config", "show"], 2),
    ]
    for argv, status in runs:
        assert main(argv) == status, argv
        out, err = capsys.readouterr()
        assert SECRET not in out and SECRET not in err, argv
        assert "svc-user" not in out and "svc-user" not in err, argv
    main(["config", "show"])
    kafka_lines = capsys.readouterr().out
    assert "# sasl_password: set (hidden)" in kafka_lines


def test_check_reports_the_path_and_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scoring:\n  fast_model: [mlp]\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "scoring.fast_model: unknown key; did you mean fast_models?" in err
    good = tmp_path / "good.yaml"
    good.write_text("kafka: {port: 19092}\n")
    assert main(["config", "check", str(good)]) == 0
    assert "ok" in capsys.readouterr().out


def test_check_does_not_need_a_valid_default_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kafka: {prot: 1}\n")
    monkeypatch.setenv("RISKSTREAM_CONFIG", str(broken))
    good = tmp_path / "good.yaml"
    good.write_text("kafka: {port: 19092}\n")
    assert main(["config", "check", str(good)]) == 0
    assert main(["config", "show"]) == 2
    assert "kafka.prot" in capsys.readouterr().err


def test_check_with_a_job_runs_its_submission_checks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    no_checkpoints = tmp_path / "nock.yaml"
    no_checkpoints.write_text("checkpoint: {interval_ms: 0}\n")
    assert main(["config", "check", str(no_checkpoints), "--job", "skeleton"]) == 0
    assert main(["config", "check", str(no_checkpoints), "--job", "analytics"]) == 2
    assert "analytics.guarantee EXACTLY_ONCE needs checkpointing" in capsys.readouterr().err
    sasl = tmp_path / "sasl.yaml"
    sasl.write_text("kafka: {security_protocol: SASL_SSL}\n")
    assert main(["config", "check", str(sasl), "--job", "features"]) == 2
    assert ENV_SASL_USERNAME in capsys.readouterr().err


def _registry(root: Path, models: list[str], stage: str = "champion") -> Path:
    folder = root / "v0001"
    folder.mkdir(parents=True)
    card = {
        "version": "v0001",
        "stage": stage,
        "feature_set": {},
        "inputs": [],
        "models": {name: {} for name in models},
        "thresholds": {},
    }
    (folder / "model_card.json").write_text(json.dumps(card))
    return root


def test_scoring_needs_a_champion_that_has_the_fast_models(tmp_path: Path) -> None:
    from scoring.registry import CARD_FILE

    assert CARD_FILE == "model_card.json"
    registry = _registry(tmp_path / "reg", ["logistic_regression", "gradient_boosting"])
    settings = load_settings(overrides={"scoring": {"registry_dir": str(registry)}}, environ={})
    assert preflight.check_scoring_registry(settings) == "v0001"
    preflight.check(settings, "scoring")
    wants_mlp = load_settings(
        overrides={"scoring": {"registry_dir": str(registry), "fast_models": ["mlp"]}}, environ={}
    )
    with pytest.raises(ConfigError, match=r"scoring\.fast_models: expected models of champion"):
        preflight.check(wants_mlp, "scoring")
    empty = load_settings(
        overrides={"scoring": {"registry_dir": str(tmp_path / "none")}}, environ={}
    )
    with pytest.raises(RegistryError, match="expected a champion model"):
        preflight.check(empty, "scoring")
    preflight.check(empty, "features")  # only the scoring job serves models
