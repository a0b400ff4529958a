"""Private topics for one run: fresh, uniquely named topics per role plus setting overrides."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from core.config import Settings, TopicSettings, with_overrides
from core.errors import ServiceError

TOPIC_CREATE_TIMEOUT_S = 30.0


def create_topic(settings: Settings, prefix: str, partitions: int = 2) -> str:
    """Create a fresh topic named ``<prefix>-<8 hex>`` on the broker; returns its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    conf: dict[str, Any] = {**settings.kafka.client_config()}
    admin = AdminClient(conf)
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    try:
        futures[name].result(timeout=TOPIC_CREATE_TIMEOUT_S)
    except Exception as exc:  # confluent-kafka raises KafkaException or a timeout
        raise ServiceError(
            f"could not create topic {name} at {settings.kafka.bootstrap}: {exc}"
        ) from exc
    return name


def private_settings(
    base: Settings,
    name: str,
    topics: Mapping[str, int],
    **overrides: Mapping[str, Any],
) -> Settings:
    """``base`` with a fresh topic for each role of ``topics`` (role -> partitions), named
    ``<name>-<role>-<8 hex>``, and ``overrides`` (section -> {key: value}) applied on top.

    Roles not in ``topics`` keep the base settings' topics. A ``kafka`` override is merged with
    the new topics.
    """
    merged = dict(base.kafka.topics)
    for role, partitions in topics.items():
        topic = create_topic(base, f"{name}-{role}", partitions)
        merged[role] = TopicSettings(name=topic, partitions=partitions)
    kafka = {**overrides.pop("kafka", {}), "topics": merged}
    return with_overrides(base, kafka=kafka, **overrides)
