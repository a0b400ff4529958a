"""Session fixtures: the real local Kafka broker and Flink cluster, started by the project's code.

Each session gets its own run directory and free ports, so tests never touch a developer's running
services; the processes started here are stopped by their recorded pids at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Settings, load_settings
from core.net import free_port
from riskstream.infra import jars
from riskstream.infra.cluster import LocalCluster
from riskstream.infra.kafka import LocalKafka


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for this test session: a private run dir and free ports; the shared jar cache."""
    run_dir: Path = tmp_path_factory.mktemp("riskstream-run")
    settings = load_settings(
        overrides={
            "paths": {"run_dir": str(run_dir)},
            "kafka": {"port": free_port(), "controller_port": free_port()},
            "flink": {
                "rest_port": free_port(),
                "rpc_port": free_port(),
                "local_rest_port": free_port(),
            },
            "checkpoint": {"interval_ms": 2000},
        },
        environ={},
    )
    jars.ensure_jars(settings)
    return settings


@pytest.fixture(scope="session")
def kafka_settings(base_settings: Settings) -> Iterator[Settings]:
    """A real single-node KRaft broker with the project topics; stopped after the session."""
    broker = LocalKafka(base_settings)
    broker.start()
    try:
        yield base_settings
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def flink_cluster(kafka_settings: Settings) -> Iterator[LocalCluster]:
    """A real standalone Flink session cluster from the pip distribution; stopped afterwards."""
    cluster = LocalCluster(kafka_settings)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
