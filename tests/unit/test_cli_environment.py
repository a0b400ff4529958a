"""What the CLI removes from an environment inherited from a process that ran a local Python UDF.

PyFlink's loopback worker copies the worker's environment into the process that ran the job
(tests, the demo), and every `riskstream` that process starts inherits it: the gateway flag made
the child refuse to start Flink, an empty JAVA_HOME made PyFlink run "bin/java", and the worker's
FLINK_CONF_DIR pointed a local run at a TaskManager's configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.config import load_settings
from riskstream.cli import GATEWAY_DISABLED_VAR, JAVA_HOME_VAR, main
from riskstream.infra.cluster import LocalCluster

CONF_DIR_VAR = "FLINK_CONF_DIR"
LOOPBACK_VAR = "PYTHON_LOOPBACK_SERVER_ADDRESS"


def _show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show"]) == 0
    assert "kafka" in capsys.readouterr().out


def test_a_worker_environment_is_dropped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(GATEWAY_DISABLED_VAR, "true")
    monkeypatch.setenv(JAVA_HOME_VAR, "")
    monkeypatch.setenv(CONF_DIR_VAR, "/tmp/some-taskmanager/conf")
    _show(capsys)
    for name in (GATEWAY_DISABLED_VAR, JAVA_HOME_VAR, CONF_DIR_VAR):
        assert name not in os.environ


def test_a_users_flink_and_java_settings_are_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(GATEWAY_DISABLED_VAR, raising=False)
    monkeypatch.setenv(JAVA_HOME_VAR, "/opt/jdk-17")
    monkeypatch.setenv(CONF_DIR_VAR, "/etc/flink")
    _show(capsys)
    assert os.environ[JAVA_HOME_VAR] == "/opt/jdk-17"
    assert os.environ[CONF_DIR_VAR] == "/etc/flink"


def test_an_empty_java_home_is_unset(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(JAVA_HOME_VAR, "")
    _show(capsys)
    assert JAVA_HOME_VAR not in os.environ


def test_the_cluster_processes_get_no_worker_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(GATEWAY_DISABLED_VAR, "true")
    monkeypatch.setenv(LOOPBACK_VAR, "localhost:40000")
    monkeypatch.setenv(JAVA_HOME_VAR, "")
    settings = load_settings(overrides={"paths": {"run_dir": str(tmp_path)}}, environ={})
    env = LocalCluster(settings).environment()
    for name in (GATEWAY_DISABLED_VAR, LOOPBACK_VAR, JAVA_HOME_VAR):
        assert name not in env
    assert env[CONF_DIR_VAR].startswith(str(tmp_path))
    assert os.environ[LOOPBACK_VAR] == "localhost:40000"  # this process's own is left alone
