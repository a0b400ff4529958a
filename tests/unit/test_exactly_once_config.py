"""Exactly-once analytics outputs need checkpointing: both jobs refuse to build their sinks
without it (before any JVM is involved), naming the setting to change."""

from __future__ import annotations

import pytest

from core.config import load_settings, with_overrides
from core.errors import ConfigError
from jobs import analytics, scoring


def test_defaults_write_the_analytics_exactly_once() -> None:
    settings = load_settings(environ={})
    assert settings.analytics.guarantee == "EXACTLY_ONCE"
    assert settings.scoring.analytics_guarantee == "EXACTLY_ONCE"
    assert settings.analytics.transactional_id_prefix != settings.scoring.transactional_id_prefix


def test_standalone_analytics_refuses_exactly_once_without_checkpoints() -> None:
    settings = with_overrides(load_settings(environ={}), checkpoint={"interval_ms": 0})
    with pytest.raises(ConfigError, match=r"analytics\.guarantee"):
        analytics.kafka_sinks(settings)


def test_scoring_refuses_exactly_once_analytics_without_checkpoints() -> None:
    settings = with_overrides(
        load_settings(environ={}),
        checkpoint={"interval_ms": 0},
        scoring={"prediction_log_guarantee": "AT_LEAST_ONCE"},
    )
    with pytest.raises(ConfigError, match="checkpointing"):
        scoring.kafka_sinks(settings)
