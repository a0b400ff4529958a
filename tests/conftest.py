"""Session fixtures: the real local Kafka broker and Flink cluster, and a tiny trained registry.

Each session gets its own run directory and free ports, so tests never touch a developer's running
services; the processes started here are stopped by their recorded pids at the end of the session.

The training fixtures share one tiny simulated history, trained once per session: a
Handbook-profile simulation small enough for CI (a few thousand payments, a few seconds of
features and fitting); its features come from the project's feature code and its training set
from ``training/dataset.py``, like a real run. ``fresh_registry(dir)`` copies the trained
registry (one candidate ``v0001``) under ``dir``; ``fresh_champion(dir)`` also promotes it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.config import Settings, load_settings, replace
from core.net import free_port
from riskstream.infra import jars
from riskstream.infra.cluster import LocalCluster
from riskstream.infra.kafka import LocalKafka
from schemas.feature_set import PAYMENT_FEATURES
from training import registry, train
from training.data import TrainingData, simulated_training_data

TINY = {"profile": "handbook", "customers": 120, "terminals": 240, "days": 24, "seed": 3}
TINY_SPLIT = {"train_days": 5, "delay_days": 3, "test_days": 4, "stack_folds": 2}


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
            "metrics": {
                "port": free_port(),
                "local_port": free_port(),
                "prometheus_port": free_port(),
            },
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


@pytest.fixture(scope="session")
def tiny_settings() -> Settings:
    """Default settings with the tiny simulation and a short split."""
    settings = load_settings(environ={})
    return replace(
        settings,
        simulator=replace(settings.simulator, **TINY),
        training=replace(settings.training, **TINY_SPLIT),
    )


@pytest.fixture(scope="session")
def tiny_data(tiny_settings: Settings) -> TrainingData:
    """The tiny training set (computed once per test session)."""
    return simulated_training_data(tiny_settings.simulator, quiet=True)


@pytest.fixture(scope="session")
def tiny_run(tiny_settings: Settings, tiny_data: TrainingData) -> train.TrainingRun:
    """Every model trained on the tiny history (once per test session)."""
    return train.run(
        tiny_data.frame,
        tiny_data.start_ms,
        tiny_data.end_ms,
        tiny_settings.training,
        PAYMENT_FEATURES,
        quiet=True,
    )


@pytest.fixture(scope="session")
def fresh_registry(
    tmp_path_factory: pytest.TempPathFactory, tiny_run: train.TrainingRun, tiny_data: TrainingData
) -> Callable[[Path], Path]:
    """``copy(dir)``: a registry under ``dir`` holding one candidate ``v0001`` of the tiny run."""
    pristine = tmp_path_factory.mktemp("tiny-registry") / "registry"
    registry.write_version(pristine, tiny_run, tiny_data.source, tiny_data.generator)

    def copy(tmp: Path) -> Path:
        target = tmp / "registry"
        shutil.copytree(pristine, target)
        return target

    return copy


@pytest.fixture(scope="session")
def fresh_champion(fresh_registry: Callable[[Path], Path]) -> Callable[[Path], Path]:
    """``copy(dir)``: like ``fresh_registry``, with ``v0001`` promoted to champion."""

    def copy(tmp: Path) -> Path:
        models = fresh_registry(tmp)
        registry.promote(models, "v0001")
        return models

    return copy
