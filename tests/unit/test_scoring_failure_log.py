"""Model failures are logged once per circuit-breaker opening, with their cause (issue 12.9)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas.feature_set import PAYMENT_FEATURES
from scoring import stacking
from scoring.fields import MODE_RULES
from scoring.registry import LoadedModels, load_version
from scoring.scorer import Scorer, ScoringPolicy
from training.data import TrainingData

FAILURES = 2
COOLDOWN_MS = 1000


@pytest.fixture(scope="module")
def models(
    tmp_path_factory: pytest.TempPathFactory, fresh_registry: Callable[[Path], Path]
) -> LoadedModels:
    return load_version(fresh_registry(tmp_path_factory.mktemp("failure-log")), "v0001")


@pytest.fixture(scope="module")
def batch(tiny_data: TrainingData) -> np.ndarray[Any, np.dtype[np.float64]]:
    values: np.ndarray[Any, np.dtype[np.float64]] = tiny_data.frame[
        list(PAYMENT_FEATURES.names)
    ].to_numpy(dtype=np.float64)
    return values[:50]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Raising:
    """An onnxruntime session stand-in whose every call raises (a corrupt model)."""

    def get_inputs(self) -> Any:
        raise RuntimeError("model exploded: input 'features' has 3 columns")


def _scorer(models: LoadedModels, name: str, session: Any, clock: _Clock) -> Scorer:
    broken = LoadedModels(**{**models.__dict__, "sessions": {**models.sessions, name: session}})
    policy = ScoringPolicy(breaker_failures=FAILURES, breaker_cooldown_ms=COOLDOWN_MS)
    return Scorer(broken, policy, clock_ms=clock)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "scoring.scorer" and r.levelno == logging.WARNING
    ]


def test_an_exception_is_logged_once_per_breaker_opening_with_its_cause(
    models: LoadedModels, batch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = _Clock()
    scorer = _scorer(models, stacking.MLP, _Raising(), clock)
    caplog.set_level(logging.WARNING, logger="scoring.scorer")
    for _ in range(FAILURES - 1):
        assert scorer.score(batch, lag_ms=0.0).mode == MODE_RULES
    assert not _warnings(caplog)  # not yet open: no line per failing batch
    scorer.score(batch, lag_ms=0.0)  # this failure opens the breaker
    for _ in range(5):  # skipped while open: nothing more is logged
        scorer.score(batch, lag_ms=0.0)
    (opened,) = _warnings(caplog)
    message = opened.getMessage()
    assert stacking.MLP in message and models.version in message
    assert "RuntimeError: model exploded: input 'features' has 3 columns" in message
    assert opened.exc_info is not None and opened.exc_info[0] is RuntimeError  # the traceback
    clock.now += COOLDOWN_MS + 1  # half-open: tried again, fails, opens again: a second line
    for _ in range(FAILURES):
        scorer.score(batch, lag_ms=0.0)
    assert len(_warnings(caplog)) == 2


class _NaN:
    """A session that answers, but with NaN probabilities (a broken graph)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def get_inputs(self) -> Any:
        return self.real.get_inputs()

    def get_outputs(self) -> Any:
        return self.real.get_outputs()

    def run(self, names: Any, feeds: Any) -> Any:
        return [
            np.full_like(np.asarray(o, dtype=np.float32), np.nan)
            for o in self.real.run(names, feeds)
        ]


def test_a_nan_output_is_named_as_the_cause(
    models: LoadedModels, batch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    name = stacking.BOOSTING
    scorer = _scorer(models, name, _NaN(models.sessions[name]), _Clock())
    caplog.set_level(logging.WARNING, logger="scoring.scorer")
    for _ in range(FAILURES):
        scorer.score(batch, lag_ms=0.0)
    (opened,) = _warnings(caplog)
    assert name in opened.getMessage()
    assert "non-finite score(s)" in opened.getMessage()
    assert opened.exc_info is None or opened.exc_info[0] is None
