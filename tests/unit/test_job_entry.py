"""The jobs' entry (``flink run -pym jobs.<name> ...``) reads the config file and the
``RISKSTREAM__*`` environment, as a container deployment configures it (docs/deployment.md).

The scoring job's own ``cli`` is called with its ``main`` replaced by a recorder: everything up to
building the job graph is the real entry path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import Settings
from jobs import entry, scoring


class Recorder:
    """Stands in for a job's ``main``: keeps the settings it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[Settings, bool]] = []

    def __call__(self, settings: Settings, bounded: bool = False) -> None:
        self.calls.append((settings, bounded))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    found = Recorder()
    monkeypatch.setattr(scoring, "main", found)
    return found


def _config(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "riskstream.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_scoring_job_reads_a_riskstream_scoring_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    config = _config(
        tmp_path,
        {"kafka": {"bootstrap_servers": "kafka:9092"}, "scoring": {"latency_budget_ms": 150}},
    )
    monkeypatch.setenv("RISKSTREAM__SCORING__LATENCY_BUDGET_MS", "250")
    monkeypatch.setenv("RISKSTREAM__SCORING__SOURCE_NAME", "riskstream-compose")
    scoring.cli(["--settings-file", str(config), "--bounded"])
    [(settings, bounded)] = recorder.calls
    assert bounded is True
    assert settings.scoring.latency_budget_ms == 250  # the environment beats the file
    assert settings.scoring.source_name == "riskstream-compose"
    assert settings.kafka.bootstrap == "kafka:9092"  # the file beats the defaults


def test_without_a_flag_the_job_reads_riskstream_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    config = _config(tmp_path, {"scoring": {"fallback_block": 0.9}})
    monkeypatch.setenv("RISKSTREAM_CONFIG", str(config))
    monkeypatch.setenv("RISKSTREAM__SCORING__BREAKER_FAILURES", "7")
    scoring.cli([])
    [(settings, bounded)] = recorder.calls
    assert bounded is False
    assert settings.scoring.fallback_block == 0.9
    assert settings.scoring.breaker_failures == 7


def test_a_bad_override_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    from core.errors import ConfigError

    monkeypatch.setenv("RISKSTREAM__SCORING__LATENCY_BUDGET_MS", "fast")
    with pytest.raises(ConfigError, match="RISKSTREAM__SCORING__LATENCY_BUDGET_MS"):
        scoring.cli(["--settings-file", str(_config(tmp_path, {}))])
    assert recorder.calls == []


def test_the_cluster_client_gets_resolved_settings_only() -> None:
    """``riskstream run --target cluster`` resolved the environment into the file already: the
    Flink client it starts must not see the variables again (they would beat ``--set``)."""
    environ = {
        "RISKSTREAM__SCORING__LATENCY_BUDGET_MS": "250",
        "riskstream__kafka__port": "1",
        "RISKSTREAM_CONFIG": "/etc/riskstream.yaml",
        "RISKSTREAM_KAFKA_SASL_PASSWORD": "secret",
        "PATH": "/usr/bin",
    }
    assert entry.client_environment(environ) == {
        "RISKSTREAM_KAFKA_SASL_PASSWORD": "secret",
        "PATH": "/usr/bin",
    }
