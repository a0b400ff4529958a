"""The local broker and cluster through the CLI: idempotent start, status, stop of only our own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import Settings, with_overrides
from core.errors import ServiceError
from core.net import free_port
from riskstream.infra.cluster import LocalCluster
from riskstream.infra.kafka import LocalKafka
from riskstream.infra.process import process_matches
from riskstream.jobrunner import write_settings

pytestmark = pytest.mark.integration

RISKSTREAM = str(Path(sys.executable).parent / "riskstream")


def _cli(settings: Settings, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = write_settings(settings, tmp_path / "settings.yaml")
    return subprocess.run(
        [RISKSTREAM, "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def _broker_processes(broker: LocalKafka) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and process_matches(int(entry.name), str(broker.properties)):
            count += 1
    return count


def test_kafka_start_twice_starts_nothing(kafka_settings: Settings, tmp_path: Path) -> None:
    broker = LocalKafka(kafka_settings)
    pid = broker.running_pid()
    assert pid is not None
    with pytest.raises(ServiceError, match=rf"already running \(pid {pid}\)"):
        broker.start()
    done = _cli(kafka_settings, tmp_path, "kafka", "start")
    assert done.returncode == 0, done.stderr
    assert f"already running (pid {pid})" in done.stdout
    assert broker.running_pid() == pid
    assert _broker_processes(broker) == 1


def test_kafka_status_lists_project_topics(kafka_settings: Settings, tmp_path: Path) -> None:
    done = _cli(kafka_settings, tmp_path, "kafka", "status")
    assert done.returncode == 0, done.stderr
    for role in ("transactions", "labels", "dead_letter", "decisions"):
        assert kafka_settings.kafka.topic(role) in done.stdout


def test_stop_ends_only_the_broker_it_started(kafka_settings: Settings, tmp_path: Path) -> None:
    other = with_overrides(
        kafka_settings,
        paths={"run_dir": str(tmp_path / "other")},
        kafka={"port": free_port(), "controller_port": free_port()},
    )
    second = LocalKafka(other)
    second_pid = second.start()
    assert second.stop() is True
    assert not process_matches(second_pid, str(second.properties))
    assert LocalKafka(kafka_settings).running_pid() is not None
    assert second.stop() is False


def test_cluster_start_twice_and_status(flink_cluster: LocalCluster, tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="already running"):
        flink_cluster.start()
    done = _cli(flink_cluster.settings, tmp_path, "cluster", "status")
    assert done.returncode == 0, done.stderr
    assert "taskmanagers: 1" in done.stdout
    slots = flink_cluster.settings.flink.taskmanager_slots
    assert f"/{slots} free" in done.stdout
    assert set(flink_cluster.running_pids()) == {"standalonesession", "taskexecutor"}
