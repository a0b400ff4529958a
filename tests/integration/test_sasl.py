"""Security settings reach every client: the scoring job against a SASL/PLAIN broker.

A private single-node KRaft broker (``riskstream.infra.kafka.LocalKafka`` with
``kafka.security_protocol: SASL_PLAINTEXT``) accepts only SASL/PLAIN logins of one user, whose
credentials come from the environment variables alone. The test's producer and reader
(confluent-kafka), the preflight check and the job's Kafka source and sinks (the Flink
connector's shaded Java clients) all log in with them; a wrong password fails the run before
submission with a message that names the settings, quickly, and never shows the password.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.config import ENV_SASL_PASSWORD, ENV_SASL_USERNAME, Settings, load_settings
from core.errors import ConfigError
from core.net import free_port
from riskstream import jobrunner, preflight
from riskstream.infra.kafka import LocalKafka
from riskstream.support.factories import payment
from riskstream.support.kafka_io import produce_at_rate, producer, read_values
from schemas.records import Decision

pytestmark = [pytest.mark.integration, pytest.mark.flink]

USER = "riskstream-svc"
PASSWORD = f"pw-{uuid.uuid4().hex[:12]}"
PAYMENTS = 150
FAIL_FAST_S = 10.0
NO_SHEDDING_MS = 3_600_000


def _overrides(run_dir: Path) -> dict[str, Any]:
    return {
        "paths": {"run_dir": str(run_dir)},
        "kafka": {
            "port": free_port(),
            "controller_port": free_port(),
            "heap": "512M",
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
        },
        "checkpoint": {"interval_ms": 2000, "dir": str(run_dir / "checkpoints")},
        "flink": {"local_rest_port": free_port(), "parallelism": 1},
    }


@pytest.fixture(scope="module")
def sasl_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, dict[str, Any]]]:
    """A broker of this module alone with SASL/PLAIN on its client port."""
    overrides = _overrides(tmp_path_factory.mktemp("sasl-run"))
    settings = load_settings(
        overrides=overrides, environ={ENV_SASL_USERNAME: USER, ENV_SASL_PASSWORD: PASSWORD}
    )
    broker = LocalKafka(settings)
    broker.start()  # creates the project topics, logging in as USER
    try:
        yield settings, overrides
    finally:
        broker.stop()


def test_the_scoring_job_reads_and_writes_through_sasl(
    sasl_broker: tuple[Settings, dict[str, Any]],
    tmp_path: Path,
    fresh_champion: Callable[[Path], Path],
    capfd: pytest.CaptureFixture[str],
) -> None:
    base, overrides = sasl_broker
    settings = load_settings(
        overrides={
            **overrides,
            "scoring": {
                "registry_dir": str(fresh_champion(tmp_path)),
                "latency_budget_ms": NO_SHEDDING_MS,
            },
        },
        environ={ENV_SASL_USERNAME: USER, ENV_SASL_PASSWORD: PASSWORD},
    )
    now = int(time.time() * 1000)
    topic = settings.kafka.topic("transactions")
    sent = [
        payment(f"sasl-{i:04d}", now - (PAYMENTS - i) * 1000, card=f"card-{i % 9}")
        for i in range(PAYMENTS)
    ]
    records = [(topic, msgspec.json.encode(tx), None, tx.event_time) for tx in sent]
    assert produce_at_rate(producer(base), records, None) == PAYMENTS

    jobrunner.run_local(settings, "scoring", bounded=True)  # preflight logs in, then the job

    raw = read_values(settings, settings.kafka.topic("decisions"), committed=False)
    decided = [msgspec.json.decode(v, type=Decision).transaction_id for v in raw]
    assert sorted(decided) == sorted(tx.event_id for tx in sent)
    assert read_values(settings, settings.kafka.topic("dead_letter"), committed=False) == []
    assert len(read_values(settings, settings.kafka.topic("predictions"))) == PAYMENTS
    out, err = capfd.readouterr()
    assert PASSWORD not in out and PASSWORD not in err


def test_a_wrong_password_fails_fast_and_names_the_setting(
    sasl_broker: tuple[Settings, dict[str, Any]],
    tmp_path: Path,
    fresh_champion: Callable[[Path], Path],
) -> None:
    _, overrides = sasl_broker
    wrong_password = f"wrong-{uuid.uuid4().hex[:8]}"
    wrong = load_settings(
        overrides={**overrides, "scoring": {"registry_dir": str(fresh_champion(tmp_path))}},
        environ={ENV_SASL_USERNAME: USER, ENV_SASL_PASSWORD: wrong_password},
    )
    started = time.monotonic()
    with pytest.raises(ConfigError) as failure:
        jobrunner.run_local(wrong, "scoring", bounded=True)
    assert time.monotonic() - started < FAIL_FAST_S
    message = str(failure.value)
    assert ENV_SASL_PASSWORD in message and "kafka.security_protocol" in message
    assert "refused the login" in message
    assert wrong_password not in message and PASSWORD not in message
    with pytest.raises(ConfigError, match=ENV_SASL_USERNAME):
        preflight.check_kafka(
            load_settings(overrides=overrides, environ={ENV_SASL_USERNAME: "nobody"}),
        )
