"""Checks run on the client before a job starts or is submitted, so a bad setting fails here with
a one-line :class:`~core.errors.ConfigError` instead of a Java traceback after submission.

The settings model already refused wrong types, unknown keys and bad values when it loaded. This
adds what depends on the job (its sinks' delivery guarantees vs checkpointing:
:func:`core.config.check_job`), on the environment (SASL credentials when the protocol needs
them) and on the model registry (the scoring job needs a champion that has every
``scoring.fast_models``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource

from core.config import (
    ENV_SASL_PASSWORD,
    ENV_SASL_USERNAME,
    RECORD_OVERHEAD_BYTES,
    Settings,
    check_job,
)
from core.errors import ConfigError, RegistryError, ServiceError
from scoring import registry

KAFKA_JOBS = ("skeleton", "features", "scoring", "analytics")
BROKER_TIMEOUT_S = 15.0
PROBE_S = 1.0
TOPIC_LIMIT = "max.message.bytes"
AUTH_FAILURE = "Authentication failed"
"""How librdkafka's log reports a refused SASL login (also as an _AUTHENTICATION error)."""
_QUIET = logging.getLogger("riskstream.preflight.kafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class _Collect(logging.Handler):
    """Keeps librdkafka's log lines of one check (they name a refused login); prints nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the message."""
        self.lines.append(record.getMessage())


def check_scoring_registry(settings: Settings) -> str:
    """The champion version the scoring job will serve; raises if there is none or if a
    ``scoring.fast_models`` entry is not one of its models."""
    path = settings.registry
    version = registry.champion(path) if path.is_dir() else None
    if version is None:
        raise RegistryError(
            f"scoring: expected a champion model in {path} (scoring.registry_dir, else "
            "training.registry_dir), found none; train one with `riskstream train` and promote "
            "it with `riskstream models promote VERSION`"
        )
    models = registry.read_card(path, version)["models"]
    missing = [m for m in settings.scoring.fast_models if m not in models]
    if missing:
        raise ConfigError(
            f"scoring.fast_models: expected models of champion {version} "
            f"({', '.join(sorted(models))}), found {', '.join(missing)}"
        )
    return version


def check_kafka(settings: Settings, timeout_s: float = BROKER_TIMEOUT_S) -> None:
    """Reach the brokers with the jobs' security settings, before any job is built.

    A refused login raises :class:`ConfigError` naming the settings and variables to fix (the
    Flink connector would otherwise retry it in a restart loop); no answer raises
    :class:`ServiceError`. Then the dead-letter topic's ``max.message.bytes``, when the topic
    exists, must hold a dead letter of ``ingest.dead_letter_max_bytes`` and the producers'
    ``kafka.max_message_bytes``. Never prints the credentials.
    """
    kafka = settings.kafka
    errors: list[KafkaError] = []
    log = _Collect()
    _QUIET.addHandler(log)
    conf: dict[str, Any] = {
        **kafka.client_config(),
        "error_cb": errors.append,
        "logger": _QUIET,
        "socket.connection.setup.timeout.ms": int(timeout_s * 1000),
    }
    admin = AdminClient(conf)

    def refusals() -> list[str]:
        admin.poll(0)  # serves error_cb and forwards the client's log
        found = [e.str() for e in errors if e.code() == KafkaError._AUTHENTICATION]
        return found + [line for line in log.lines if AUTH_FAILURE in line]

    deadline = time.monotonic() + timeout_s
    metadata = None
    try:
        # Short metadata calls: a refused login shows between them, long before the timeout.
        while metadata is None and not refusals() and time.monotonic() < deadline:
            try:
                metadata = admin.list_topics(timeout=min(PROBE_S, timeout_s))
            except KafkaException as exc:
                errors.append(exc.args[0])
        refused = refusals()
    finally:
        _QUIET.removeHandler(log)
    if refused:
        raise ConfigError(
            f"kafka: the brokers at {kafka.bootstrap} refused the login "
            f"(kafka.security_protocol {kafka.security_protocol}, kafka.sasl_mechanism "
            f"{kafka.sasl_mechanism}, user from {ENV_SASL_USERNAME}): {refused[0]}; check "
            f"{ENV_SASL_USERNAME} and {ENV_SASL_PASSWORD}"
        )
    if metadata is None:
        found = errors[-1].str() if errors else "no answer"
        raise ServiceError(
            f"kafka: no broker answered at {kafka.bootstrap} within {timeout_s:.0f} s "
            f"(kafka.bootstrap_servers, else kafka.host/kafka.port; kafka.security_protocol "
            f"{kafka.security_protocol}): {found}"
        )
    _check_dead_letter_limit(settings, admin, set(metadata.topics), timeout_s)


def _check_dead_letter_limit(
    settings: Settings, admin: AdminClient, topics: set[str], timeout_s: float
) -> None:
    topic = settings.kafka.topic("dead_letter")
    if topic not in topics:
        return
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        described = admin.describe_configs([resource])[resource].result(timeout=timeout_s)
    except KafkaException:
        return  # not allowed to describe configs: the sink's own limit still applies
    entry = described.get(TOPIC_LIMIT)
    if entry is None or entry.value is None:
        return
    limit = int(entry.value)
    needed = settings.ingest.dead_letter_max_bytes + RECORD_OVERHEAD_BYTES
    if limit < needed:
        raise ConfigError(
            f"ingest.dead_letter_max_bytes: expected dead letters to fit the dead-letter topic "
            f"{topic!r} ({TOPIC_LIMIT} {limit}), found {settings.ingest.dead_letter_max_bytes} "
            f"+ {RECORD_OVERHEAD_BYTES} bytes of record overhead; lower it or raise the topic's "
            "limit"
        )


def check(settings: Settings, job: str, connect: bool = False) -> None:
    """Every client-side check of ``job``; raises :class:`ConfigError` / ``RegistryError``.

    ``connect`` also reaches the brokers (:func:`check_kafka`): job submission does, ``config
    check`` does not."""
    check_job(settings, job)
    if job in KAFKA_JOBS:
        settings.kafka.client_config()  # SASL credentials present when the protocol needs them
    if job == "scoring":
        check_scoring_registry(settings)
    if connect and job in KAFKA_JOBS:
        check_kafka(settings)
