"""Shared, cached fixtures for the training tests: one tiny simulated history, trained once.

The history is a Handbook-profile simulation small enough for CI (a few thousand payments, a few
seconds of features and fitting); its features come from the project's feature code and its
training set from ``training/dataset.py``, like a real run.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import shutil
import tempfile
from pathlib import Path

from core.config import Settings, load_settings
from schemas.feature_set import PAYMENT_FEATURES
from training import registry, train
from training.data import TrainingData, simulated_training_data

TINY = {"profile": "handbook", "customers": 120, "terminals": 240, "days": 24, "seed": 3}
TINY_SPLIT = {"train_days": 5, "delay_days": 3, "test_days": 4, "stack_folds": 2}


def tiny_settings() -> Settings:
    """Default settings with the tiny simulation and a short split."""
    settings = load_settings(environ={})
    return dataclasses.replace(
        settings,
        simulator=dataclasses.replace(settings.simulator, **TINY),  # type: ignore[arg-type]
        training=dataclasses.replace(settings.training, **TINY_SPLIT),  # type: ignore[arg-type]
    )


@functools.cache
def tiny_data() -> TrainingData:
    """The tiny training set (computed once per test session)."""
    return simulated_training_data(tiny_settings().simulator, quiet=True)


@functools.cache
def tiny_run() -> train.TrainingRun:
    """Every model trained on the tiny history (once per test session)."""
    data = tiny_data()
    return train.run(
        data.frame,
        data.start_ms,
        data.end_ms,
        tiny_settings().training,
        PAYMENT_FEATURES,
        quiet=True,
    )


@functools.cache
def _pristine_registry() -> Path:
    root = Path(tempfile.mkdtemp(prefix="riskstream-tiny-registry-"))
    atexit.register(shutil.rmtree, root, True)
    registry.write_version(root, tiny_run(), tiny_data().source)
    return root


def fresh_registry(tmp: Path) -> Path:
    """A registry under ``tmp`` holding one candidate version ``v0001`` of the tiny run."""
    target = tmp / "registry"
    shutil.copytree(_pristine_registry(), target)
    return target
