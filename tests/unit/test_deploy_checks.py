"""Train on the world you score: promotion refuses a model trained on another generator profile
than the deployment's (``scoring.profile``), or whose block threshold rests on too few scores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import RegistryError
from riskstream.cli import main
from scoring.registry import CHAMPION, champion, read_card
from training import registry, train

Registry = Callable[[Path], Path]


def test_model_card_records_the_generator_and_the_guardrail_fields(
    tmp_path: Path, fresh_registry: Registry, tiny_run: train.TrainingRun
) -> None:
    card = read_card(fresh_registry(tmp_path), "v0001")
    generator = card["training"]["generator"]
    assert generator["profile"] == "handbook" and generator["seed"] == 3
    assert generator["settings"]["customers"] == 120
    ranges = card["feature_ranges"]
    assert ranges["quantiles"] == [0.001, 0.999]
    assert set(ranges["features"]) == set(card["inputs"])
    for r in ranges["features"].values():
        assert r["min"] <= r["low"] <= r["high"] <= r["max"]
    shares = card["expected_decisions"]
    assert abs(shares["approve"] + shares["step_up"] + shares["block"] - 1.0) < 1e-9
    assert set(shares["train_out_of_fold"]) == {"approve", "step_up", "block"}
    # the handbook profile has no devices and no card-not-present travel: those rules never fire
    never = set(card["rules_never_fired"])
    assert {"shared_device", "device_seen_fraud", "impossible_travel"} <= never
    by_name = {r["name"]: r for r in card["rules"]}
    assert by_name["shared_device"]["never_fired_in_training"] is True
    assert by_name["large_amount"]["never_fired_in_training"] is False
    assert by_name["large_amount"]["fired_share_train"] > 0
    support = card["threshold_support"]
    assert support["block_tail"] == tiny_run.threshold_support["block_tail"]
    assert support["stable"] is (support["block_tail"] >= 100)


def test_models_promote_refuses_another_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fresh_registry: Registry
) -> None:
    root = fresh_registry(tmp_path)
    relaxed = ["--set", "training.min_block_tail=1"]
    status = main([*relaxed, "models", "--registry", str(root), "promote", "v0001"])
    err = capsys.readouterr().err
    assert status != 0
    assert "trained on the 'handbook' profile" in err and "'realistic' profile" in err
    assert champion(root) is None
    served_here = ["--set", "scoring.profile=handbook", *relaxed]
    assert main([*served_here, "models", "--registry", str(root), "promote", "v0001"]) == 0
    assert champion(root) == "v0001"


def test_force_promotes_with_a_loud_warning_recorded_in_the_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fresh_registry: Registry
) -> None:
    root = fresh_registry(tmp_path)
    assert main(["models", "--registry", str(root), "promote", "v0001", "--force"]) == 0
    err = capsys.readouterr().err
    assert "WARNING: promoting v0001 anyway" in err and "'handbook' profile" in err
    assert "fewer than training.min_block_tail = 100" in err
    card = read_card(root, "v0001")
    assert card["stage"] == CHAMPION
    assert any("forced" in entry for entry in card["history"])


def test_unstable_block_threshold_and_unknown_profile_are_problems(
    tmp_path: Path, fresh_registry: Registry
) -> None:
    card = read_card(fresh_registry(tmp_path), "v0001")
    policy = registry.DeployPolicy("handbook", min_block_tail=10**6)
    assert any("min_block_tail" in p for p in registry.deploy_problems(card, policy))
    card["training"]["generator"] = None
    problems = registry.deploy_problems(card, registry.DeployPolicy("handbook", 0))
    assert len(problems) == 1 and "records no generator profile" in problems[0]
    with pytest.raises(RegistryError, match="refusing to promote v0001"):
        registry.promote(
            fresh_registry(tmp_path / "again"), "v0001", registry.DeployPolicy("realistic", 0)
        )
