"""Settings: documented defaults, precedence of file < env < overrides, refusal of unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import (
    ENV_SASL_PASSWORD,
    ENV_SASL_USERNAME,
    load_settings,
    parse_assignments,
)
from core.errors import ConfigError


def test_defaults_come_from_the_documented_file() -> None:
    settings = load_settings(environ={})
    assert settings.kafka.port == 9092
    assert settings.kafka.topic("transactions") == "transactions"
    assert settings.flink.execution_mode == "thread"
    assert settings.checkpoint.state_backend == "rocksdb"


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "rs.yaml"
    config.write_text("kafka:\n  port: 19092\n  heap: 512M\nflink:\n  parallelism: 2\n")
    environ = {"RISKSTREAM__KAFKA__PORT": "29092", "RISKSTREAM__CHECKPOINT__INCREMENTAL": "false"}
    settings = load_settings(config, parse_assignments(["flink.parallelism=3"]), environ)
    assert settings.kafka.port == 29092
    assert settings.kafka.heap == "512M"
    assert settings.flink.parallelism == 3
    assert settings.checkpoint.incremental is False


def test_unknown_key_is_refused_with_its_path(tmp_path: Path) -> None:
    config = tmp_path / "rs.yaml"
    config.write_text("kafka:\n  prot: 1\n")
    with pytest.raises(ConfigError, match=r"kafka\.prot"):
        load_settings(config, environ={})


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.port: expected int, found 'abc'"):
        load_settings(environ={"RISKSTREAM__KAFKA__PORT": "abc"})


def test_bad_set_syntax() -> None:
    with pytest.raises(ConfigError, match=r"expected section\.key=value"):
        parse_assignments(["kafka.port"])


def test_sasl_credentials_only_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(overrides={"kafka": {"security_protocol": "SASL_SSL"}}, environ={})
    monkeypatch.delenv(ENV_SASL_USERNAME, raising=False)
    monkeypatch.delenv(ENV_SASL_PASSWORD, raising=False)
    with pytest.raises(ConfigError, match=ENV_SASL_USERNAME):
        settings.kafka.client_config()
    monkeypatch.setenv(ENV_SASL_USERNAME, "svc")
    monkeypatch.setenv(ENV_SASL_PASSWORD, "s3cret")
    conf = settings.kafka.client_config()
    assert conf["sasl.username"] == "svc"
    assert conf["sasl.password"] == "s3cret"
    assert "s3cret" not in repr(settings)
