"""Settings: precedence file < env < overrides, typed values, unknown keys refused with their path,
secrets only from their environment variables, cross-field and per-job checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import SecretStr

from core.config import (
    ENV_SASL_PASSWORD,
    ENV_SASL_USERNAME,
    MASK,
    AnalyticsSettings,
    FeatureJobSettings,
    ModelName,
    ScoringSettings,
    Settings,
    TrainingSettings,
    check_job,
    load_settings,
    parse_assignments,
    replace,
    secrets_only,
    to_document,
    with_overrides,
)
from core.errors import ConfigError
from features.params import FeatureParams
from scoring import stacking
from scoring.scorer import ScoringPolicy
from udfs.analytics.windows import WindowParams

SECRET = "s3cret-Pa55"


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rs.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_models() -> None:
    settings = load_settings(environ={})
    assert settings == Settings.model_validate({})
    assert settings.kafka.port == 9092
    assert settings.kafka.topic("transactions") == "transactions"
    assert settings.kafka.bootstrap == "127.0.0.1:9092"
    assert settings.flink.execution_mode == "thread"
    assert settings.checkpoint.state_backend == "rocksdb"
    assert settings.scoring.fast_models == ("logistic_regression",)


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    config = _file(tmp_path, "kafka:\n  port: 19092\n  heap: 512M\nflink:\n  parallelism: 2\n")
    environ = {"RISKSTREAM__KAFKA__PORT": "29092", "RISKSTREAM__CHECKPOINT__INCREMENTAL": "false"}
    settings = load_settings(config, parse_assignments(["flink.parallelism=3"]), environ)
    assert settings.kafka.port == 29092
    assert settings.kafka.heap == "512M"
    assert settings.flink.parallelism == 3
    assert settings.checkpoint.incremental is False


def test_the_config_file_comes_from_the_environment_variable(tmp_path: Path) -> None:
    config = _file(tmp_path, "kafka: {port: 19093}\n")
    assert load_settings(environ={"RISKSTREAM_CONFIG": str(config)}).kafka.port == 19093


def test_nested_env_delimiter_reaches_every_level() -> None:
    environ = {
        "RISKSTREAM__SCORING__LATENCY_BUDGET_MS": "50",
        "riskstream__kafka__topics__transactions__name": "tx-eu",
    }
    settings = load_settings(environ=environ)
    assert settings.scoring.latency_budget_ms == 50
    assert settings.kafka.topic("transactions") == "tx-eu"
    assert settings.kafka.partitions("transactions") == 2  # the rest of the entry is kept
    assert settings.kafka.topic("labels") == "labels"  # and the other topics


def test_a_partial_mapping_merges_into_the_defaults(tmp_path: Path) -> None:
    config = _file(tmp_path, "training:\n  rules:\n    big: {feature: amount, threshold: 500}\n")
    rules = load_settings(config, environ={}).training.rules
    assert rules["big"].threshold == 500.0 and rules["big"].op == ">="
    assert "large_amount" in rules


def test_unknown_key_is_refused_with_its_path_and_the_nearest_key(tmp_path: Path) -> None:
    config = _file(tmp_path, "scoring:\n  fast_model: [mlp]\n")
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ={})
    message = str(error.value)
    assert message.startswith("scoring.fast_model: unknown key; did you mean fast_models?")
    assert str(config) in message


def test_unknown_keys_are_refused_from_every_source() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.prot: unknown key; did you mean port\?"):
        load_settings(environ={"RISKSTREAM__KAFKA__PROT": "1"})
    with pytest.raises(ConfigError, match=r"RISKSTREAM__KAFK__PORT: unknown section 'kafk'"):
        load_settings(environ={"RISKSTREAM__KAFK__PORT": "1"})
    with pytest.raises(ConfigError, match=r"kafka\.topics\.labels\.nam: unknown key"):
        load_settings(overrides=parse_assignments(["kafka.topics.labels.nam=x"]), environ={})
    with pytest.raises(ConfigError, match=r"scoring\.budget: unknown key"):
        with_overrides(load_settings(environ={}), scoring={"budget": 1})
    with pytest.raises(ConfigError, match=r"scorin: unknown section"):
        with_overrides(load_settings(environ={}), scorin={"x": 1})


def test_wrong_type_names_the_key_and_the_variable() -> None:
    with pytest.raises(
        ConfigError,
        match=r"kafka\.port: expected int, found 'abc' "
        r"\(from environment RISKSTREAM__KAFKA__PORT\)",
    ):
        load_settings(environ={"RISKSTREAM__KAFKA__PORT": "abc"})


def test_every_problem_of_a_load_is_listed(tmp_path: Path) -> None:
    config = _file(tmp_path, "kafka: {port: -1}\nflink: {parallelism: 0}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ={})
    assert "kafka.port: expected >= 0, found -1" in str(error.value)
    assert "flink.parallelism: expected >= 1, found 0" in str(error.value)


def test_a_guarantee_typo_fails_at_load_not_after_submission() -> None:
    typo = parse_assignments(["scoring.decisions_guarantee=EXACTLY_ONE"])
    with pytest.raises(
        ConfigError,
        match=r"scoring\.decisions_guarantee: expected one of EXACTLY_ONCE, AT_LEAST_ONCE, "
        r"found 'EXACTLY_ONE' \(from --set\)",
    ):
        load_settings(overrides=typo, environ={})
    for key in ("checkpoint.mode=exactly", "flink.execution_mode=threads"):
        with pytest.raises(ConfigError, match="expected one of"):
            load_settings(overrides=parse_assignments([key]), environ={})


def test_fast_models_are_a_list_of_known_models() -> None:
    from_env = load_settings(environ={"RISKSTREAM__SCORING__FAST_MODELS": "mlp, gradient_boosting"})
    assert from_env.scoring.fast_models == ("mlp", "gradient_boosting")
    as_list = load_settings(overrides=parse_assignments(["scoring.fast_models=[mlp]"]), environ={})
    assert as_list.scoring.fast_models == ("mlp",)
    with pytest.raises(ConfigError, match=r"scoring\.fast_models\.0: expected one of .*'xgboost'"):
        load_settings(environ={"RISKSTREAM__SCORING__FAST_MODELS": "xgboost"})
    with pytest.raises(ConfigError, match=r"scoring\.fast_models: expected model names without"):
        load_settings(environ={"RISKSTREAM__SCORING__FAST_MODELS": "mlp,mlp"})


def test_model_names_are_the_registrys_learned_models() -> None:
    assert get_args(ModelName) == stacking.LEARNED


def test_bootstrap_servers_are_a_list() -> None:
    settings = load_settings(environ={"RISKSTREAM__KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092"})
    assert settings.kafka.bootstrap_servers == ("k1:9092", "k2:9092")
    assert settings.kafka.bootstrap == "k1:9092,k2:9092"
    assert settings.kafka.client_config()["bootstrap.servers"] == "k1:9092,k2:9092"


def test_cross_field_rules_are_checked_when_loading() -> None:
    base = load_settings(environ={})
    with pytest.raises(ConfigError, match=r"scoring\.fallback_step_up: expected at most"):
        with_overrides(base, scoring={"fallback_step_up": 0.9, "fallback_block": 0.8})
    with pytest.raises(ConfigError, match=r"analytics\.merchant_window_ms: expected at most"):
        load_settings(environ={"RISKSTREAM__ANALYTICS__MERCHANT_WINDOW_MS": "7200000"})
    with pytest.raises(ConfigError, match=r"training\.block_rate: expected"):
        with_overrides(base, training={"block_rate": 0.5, "step_up_rate": 0.6})
    with pytest.raises(ConfigError, match=r"simulator\.start_date: expected a date YYYY-MM-DD"):
        replace(base.simulator, start_date="1.4.2018")


def test_settings_are_frozen_and_copies_are_validated() -> None:
    settings = load_settings(environ={})
    with pytest.raises(ValueError, match="frozen"):
        settings.kafka.port = 1
    changed = with_overrides(settings, kafka={"port": 19092}, flink={"parallelism": 2})
    assert (changed.kafka.port, changed.flink.parallelism) == (19092, 2)
    assert changed.kafka.topics == settings.kafka.topics and settings.kafka.port == 9092
    assert replace(settings.simulator, days=3).days == 3
    with pytest.raises(ConfigError, match=r"simulator\.days: expected >= 1, found 0"):
        replace(settings.simulator, days=0)
    with pytest.raises(ConfigError, match=r"training\.stack_folds: expected >= 2, found 1"):
        TrainingSettings(stack_folds=1)  # a section built directly is checked the same way


def test_sasl_credentials_only_from_their_environment_variables(tmp_path: Path) -> None:
    sasl = {"kafka": {"security_protocol": "SASL_SSL"}}
    without = load_settings(overrides=sasl, environ={})
    with pytest.raises(ConfigError, match=ENV_SASL_USERNAME):
        without.kafka.client_config()
    environ = {ENV_SASL_USERNAME: "svc", ENV_SASL_PASSWORD: SECRET}
    settings = load_settings(overrides=sasl, environ=environ)
    assert isinstance(settings.kafka.sasl_password, SecretStr)
    conf = settings.kafka.client_config()
    assert (conf["sasl.username"], conf["sasl.password"]) == ("svc", SECRET)
    in_file = _file(tmp_path, f"kafka: {{sasl_password: {SECRET}}}\n")
    attempts: list[tuple[Path | None, dict[str, Any], dict[str, str]]] = [
        (in_file, {}, {}),
        (None, {"kafka": {"sasl_password": SECRET}}, {}),
        (None, {}, {"RISKSTREAM__KAFKA__SASL_PASSWORD": SECRET}),
    ]
    for config, overrides, env in attempts:
        expected = f"expected only in the environment variable {ENV_SASL_PASSWORD}"
        with pytest.raises(ConfigError, match=expected) as error:
            load_settings(config, overrides, env)
        assert SECRET not in str(error.value)


def test_secrets_never_show_in_a_repr_a_dump_or_an_error() -> None:
    environ = {ENV_SASL_USERNAME: "svc", ENV_SASL_PASSWORD: SECRET}
    settings = load_settings(environ=environ)
    shown = [repr(settings), str(settings), repr(settings.kafka), settings.model_dump_json()]
    shown += [json.dumps(to_document(settings)), json.dumps(to_document(settings, "mask"))]
    assert all(SECRET not in text for text in shown)
    assert "sasl_password" not in to_document(settings)["kafka"]
    assert to_document(settings, "mask")["kafka"]["sasl_password"] == MASK
    with pytest.raises(ConfigError) as error:
        load_settings(environ={**environ, "RISKSTREAM__KAFKA__PORT": "x"})
    assert SECRET not in str(error.value)


def test_a_job_reads_the_secrets_and_nothing_else_from_its_environment() -> None:
    environ = {ENV_SASL_PASSWORD: SECRET, "RISKSTREAM__KAFKA__PORT": "1", "HOME": "/x"}
    assert secrets_only(environ) == {ENV_SASL_PASSWORD: SECRET}


def test_resolved_settings_files_hold_no_secret(tmp_path: Path) -> None:
    from riskstream.jobrunner import write_settings

    environ = {ENV_SASL_USERNAME: "svc", ENV_SASL_PASSWORD: SECRET}
    settings = load_settings(overrides={"flink": {"parallelism": 2}}, environ=environ)
    path = write_settings(settings, tmp_path / "job.yaml")
    assert SECRET not in path.read_text() and "svc" not in path.read_text()
    again = load_settings(path, environ=secrets_only(environ))
    assert again == settings


def test_exactly_once_sinks_need_checkpointing_per_job() -> None:
    off = with_overrides(load_settings(environ={}), checkpoint={"interval_ms": 0})
    for job in ("scoring", "analytics"):
        with pytest.raises(ConfigError, match=r"needs checkpointing: expected checkpoint\."):
            check_job(off, job)
    check_job(off, "skeleton")
    check_job(off, "features")
    at_least_once = with_overrides(
        off,
        scoring={"prediction_log_guarantee": "AT_LEAST_ONCE", "analytics": False},
        analytics={"guarantee": "AT_LEAST_ONCE"},
    )
    check_job(at_least_once, "scoring")
    check_job(at_least_once, "analytics")


def test_logic_parameters_take_their_defaults_from_the_model() -> None:
    features, scoring, analytics = FeatureJobSettings(), ScoringSettings(), AnalyticsSettings()
    assert FeatureParams() == FeatureParams.from_settings(features)
    assert ScoringPolicy() == ScoringPolicy.from_settings(scoring)
    assert WindowParams() == WindowParams.from_settings(analytics)
    changed = replace(scoring, fast_models=["mlp"], latency_budget_ms=7)
    policy = ScoringPolicy.from_settings(changed)
    assert (policy.fast_models, policy.latency_budget_ms) == (("mlp",), 7)


def test_bad_set_syntax() -> None:
    with pytest.raises(ConfigError, match=r"expected section\.key=value"):
        parse_assignments(["kafka.port"])
