"""Nothing a producer sends stops the scoring job, and dead letters keep the original bytes.

The scoring job runs live (``riskstream run --job scoring`` on the mini-cluster, no restarts
allowed) while a hostile corpus arrives between two batches of on-time payments: a 0.9 MB valid
JSON payment with an unknown field full of escaped quotes, 700 kB of 0xFF, a tombstone, an empty
value, ordinary malformed records, event times in 1970 and too far ahead, and one valid payment
whose Kafka record timestamp is 50 minutes in the future (a producer with a wrong clock). The job
must keep running with zero restarts, dead-letter every hostile record with its original bytes
recoverable (whole, or as a prefix plus size and SHA-256 of the record found at its topic,
partition and offset), decide every valid payment exactly once, and not let the future record
timestamp push the watermark ahead (issue 12, items 1-3).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Producer

from core.config import Settings
from core.errors import JobError
from jobs import scoring
from riskstream import jobrunner
from riskstream.infra.process import wait_until
from riskstream.infra.rest import FlinkRest, JobInfo
from riskstream.support.factories import payment
from riskstream.support.kafka_io import Record, read_to_end, read_values
from riskstream.support.topics import private_settings
from schemas.records import DeadLetter, Decision, PredictionLog
from schemas.validation import decode

pytestmark = [pytest.mark.integration, pytest.mark.flink]

RISKSTREAM = str(Path(sys.executable).parent / "riskstream")
ROLES = {
    "transactions": 1,  # one partition: the future timestamp would own the watermark
    "labels": 1,
    "dead_letter": 1,
    "decisions": 1,
    "predictions": 1,
    "alerts": 1,
    "analytics": 1,
    "late_events": 1,
}
NO_SHEDDING_MS = 3_600_000
FUTURE_STAMP_MS = 50 * 60_000
"""Ahead of the wall clock, yet under the broker's own guard (1 h)."""
BIG_QUOTES = 450_000
"""Escaped quotes in the 0.9 MB record's unknown field (2 bytes each in the JSON)."""
FIRST, SECOND = 60, 300
WAIT_S = 240.0
POLL_S = 1.0
MAX_WATERMARK_AHEAD_MS = 60_000
"""How far ahead of the wall clock the card stage's watermark may be (it is normally behind)."""


@dataclass(frozen=True)
class Sent:
    """One produced record: its value, record timestamp and whether the job must decide it."""

    value: bytes | None
    timestamp: int
    valid_id: str | None
    what: str


def _payment(event_id: str, event_time: int, **fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = msgspec.to_builtins(
        payment(event_id, event_time, card=f"card-{event_id[-1]}", terminal="term-7")
    )
    document.update(fields)
    return document


def _on_time(prefix: str, count: int) -> list[Sent]:
    now = int(time.time() * 1000)
    out = []
    for i in range(count):
        stamp = now - (count - i) * 10
        event_id = f"{prefix}-{i:04d}"
        value = json.dumps(_payment(event_id, stamp)).encode()
        out.append(Sent(value, stamp, event_id, "on time"))
    return out


def _hostile(run: str) -> list[Sent]:
    now = int(time.time() * 1000)
    big = _payment(f"{run}-big", now, note='"' * BIG_QUOTES)
    no_card = _payment(f"{run}-nocard", now)
    del no_card["card_id"]
    cases: list[tuple[bytes | None, str]] = [
        (json.dumps(big).encode(), "0.9 MB of valid JSON with an unknown field of escaped quotes"),
        (b"\xff" * 700_000, "700 kB of 0xFF"),
        (None, "a tombstone"),
        (b"", "an empty value"),
        (b"{not json", "not JSON"),
        (json.dumps(_payment(f"{run}-type", now, amount="ten")).encode(), "a wrong type"),
        (json.dumps(no_card).encode(), "a missing field"),
        (json.dumps(_payment(f"{run}-1970", 0)).encode(), "event_time 0 (1970)"),
        (json.dumps(_payment(f"{run}-ahead", now + 600_000)).encode(), "event_time 10 min ahead"),
        (b'{"event_id": "\xc3\x28", "amount": 1}', "invalid UTF-8 inside JSON"),
        (b"[1, 2, 3]", "a JSON array"),
    ]
    return [Sent(value, now, None, what) for value, what in cases]


def _future_stamped(run: str) -> Sent:
    """A valid payment whose producer stamps the Kafka record 50 minutes ahead."""
    now = int(time.time() * 1000)
    value = json.dumps(_payment(f"{run}-clock", now)).encode()
    return Sent(value, now + FUTURE_STAMP_MS, f"{run}-clock", "record timestamp 50 min ahead")


def _produce(settings: Settings, records: list[Sent]) -> None:
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True})
    topic = settings.kafka.topic("transactions")
    failures: list[Any] = []
    for sent in records:
        producer.produce(
            topic,
            value=sent.value,
            timestamp=sent.timestamp,
            on_delivery=lambda err, _msg: failures.append(err) if err else None,
        )
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not failures


def _running(rest: FlinkRest) -> JobInfo | None:
    try:
        job = rest.running_job(name=scoring.JOB_NAME)
    except JobError:
        return None
    return job if rest.tasks_running(job.job_id) else None


def _decisions(settings: Settings) -> list[Decision]:
    raw = read_values(settings, settings.kafka.topic("decisions"), timeout_s=30, committed=False)
    return [msgspec.json.decode(v, type=Decision) for v in raw]


def _logged(settings: Settings) -> list[PredictionLog]:
    raw = read_values(settings, settings.kafka.topic("predictions"), timeout_s=30, committed=False)
    return [msgspec.json.decode(v, type=PredictionLog) for v in raw]


def _letters(settings: Settings) -> list[DeadLetter]:
    raw = read_values(settings, settings.kafka.topic("dead_letter"), timeout_s=30)
    return [decode("dead_letter", v) for v in raw]


def _original(letter: DeadLetter) -> bytes:
    assert letter.payload is not None
    if letter.payload_encoding == "base64":
        return base64.b64decode(letter.payload)
    return letter.payload.encode("utf-8")


def _check_letter(letter: DeadLetter, record: Record, settings: Settings) -> None:
    """The dead letter describes exactly the record at its position, bytes recoverable."""
    assert letter.topic == settings.kafka.topic("transactions")
    assert letter.record_timestamp == record.timestamp
    assert letter.reason and letter.record_type == "transaction"
    if record.value is None:
        assert letter.payload is None and letter.payload_sha256 is None
        assert "tombstone" in letter.reason
        return
    assert letter.payload_size == len(record.value)
    assert letter.payload_sha256 == hashlib.sha256(record.value).hexdigest()
    kept = _original(letter)
    if letter.payload_truncated:
        assert 0 < len(kept) < len(record.value) and record.value.startswith(kept)
    else:
        assert kept == record.value


LiveJob = tuple[Settings, "subprocess.Popen[bytes]", FlinkRest, str, Path]


@pytest.fixture
def live_job(
    kafka_settings: Settings, tmp_path: Path, fresh_champion: Callable[[Path], Path]
) -> Iterator[LiveJob]:
    """The scoring job running live on the mini-cluster (no restart allowed) and its REST API."""
    name = f"hostile-{uuid.uuid4().hex[:6]}"
    settings = private_settings(
        kafka_settings,
        name,
        ROLES,
        flink={"parallelism": 1},
        checkpoint={"dir": str(tmp_path / "checkpoints"), "restart_attempts": 0},
        scoring={
            "registry_dir": str(fresh_champion(tmp_path)),
            "group_id": f"{name}-group",
            "transactional_id_prefix": name,
            "latency_budget_ms": NO_SHEDDING_MS,
        },
    )
    config = jobrunner.write_settings(settings, tmp_path / "settings.yaml")
    log_path = tmp_path / "job.log"
    with log_path.open("w") as log:
        job = subprocess.Popen(
            [RISKSTREAM, "--config", str(config), "run", "--job", "scoring"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    rest = FlinkRest(f"http://127.0.0.1:{settings.flink.local_rest_port}")
    try:
        started = wait_until(
            lambda: job.poll() is not None or _running(rest),
            WAIT_S,
            "the scoring job's tasks to run",
            poll_s=POLL_S,
        )
        assert isinstance(started, JobInfo), log_path.read_text()[-3000:]
        yield settings, job, rest, started.job_id, log_path
    finally:
        if (running := _running(rest)) is not None:
            rest.cancel(running.job_id)
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.wait(timeout=60)
        if job.poll() is None:
            job.kill()
            job.wait(timeout=30)


def _alive_until(
    job: subprocess.Popen[bytes], log_path: Path, check: Callable[[], Any], what: str
) -> Any:
    """Wait for ``check`` while the job runs; a job that ends fails the test with its log."""

    def alive_check() -> Any:
        assert job.poll() is None, f"the job ended: {log_path.read_text()[-3000:]}"
        return check()

    return wait_until(alive_check, WAIT_S, what, poll_s=POLL_S)


def test_hostile_corpus_never_stops_the_job(live_job: LiveJob) -> None:
    settings, job, rest, job_id, log_path = live_job
    run = uuid.uuid4().hex[:6]
    first = _on_time(f"{run}-a", FIRST)
    _produce(settings, first)
    _alive_until(job, log_path, lambda: len(_decisions(settings)) >= FIRST, "first decisions")

    hostile = _hostile(run)
    clock = _future_stamped(run)
    _produce(settings, [*hostile, clock])
    time.sleep(3)  # watermarks are emitted every 200 ms: the future stamp has had its chance
    second = _on_time(f"{run}-b", SECOND)
    _produce(settings, second)

    sent = [*first, *hostile, clock, *second]
    valid = {s.valid_id for s in sent if s.valid_id is not None}
    _alive_until(
        job,
        log_path,
        lambda: valid <= {d.transaction_id for d in _decisions(settings)},
        "a decision for every valid payment",
    )
    _alive_until(
        job,
        log_path,
        lambda: len(_letters(settings)) >= len(hostile),
        "a dead letter for every hostile record",
    )
    assert job.poll() is None, log_path.read_text()[-3000:]
    assert rest.job_metric(job_id, "numRestarts") == 0

    decisions = _decisions(settings)
    ids = [d.transaction_id for d in decisions]
    assert sorted(ids) == sorted(valid)  # exactly once each, and nothing else decided

    records = read_to_end(settings, settings.kafka.topic("transactions"), committed=False)
    assert len(records) == len(sent)
    letters = {(x.partition, x.offset): x for x in _letters(settings)}
    assert len(letters) == len(hostile)
    limit = settings.ingest.dead_letter_max_bytes
    raw_letters = read_values(settings, settings.kafka.topic("dead_letter"), timeout_s=30)
    assert max(len(v) for v in raw_letters) <= limit
    for record, item in zip(records, sent, strict=True):
        assert record.value == item.value
        if item.valid_id is not None:
            continue
        letter = letters[(record.partition, record.offset)]
        _check_letter(letter, record, settings)
    by_what = {
        item.what: letters[(r.partition, r.offset)]
        for r, item in zip(records, sent, strict=True)
        if item.valid_id is None
    }
    assert by_what["0.9 MB of valid JSON with an unknown field of escaped quotes"].payload_truncated
    assert by_what["700 kB of 0xFF"].payload_encoding == "base64"
    assert by_what["invalid UTF-8 inside JSON"].payload_encoding == "base64"
    assert by_what["an empty value"].payload == "" and "empty" in by_what["an empty value"].reason
    assert "min_event_time" in by_what["event_time 0 (1970)"].reason
    assert "ahead" in by_what["event_time 10 min ahead"].reason

    # The future-stamped record was decided but did not move the watermark: on-time payments
    # after it see a watermark behind the wall clock, not 50 minutes ahead of it.
    later = {s.valid_id for s in second if s.valid_id is not None}

    def second_logged() -> dict[str, PredictionLog] | None:
        found = {x.transaction_id: x for x in _logged(settings)}
        return found if found.keys() >= later else None

    logs = _alive_until(job, log_path, second_logged, "the prediction log of the second batch")
    ahead = [
        (i, logs[i].watermark_lag_ms)
        for i in sorted(later)
        if logs[i].watermark_lag_ms < -MAX_WATERMARK_AHEAD_MS or logs[i].late
    ]
    assert ahead == []
    too_late = read_values(settings, settings.kafka.topic("late_events"), committed=False)
    assert not any(run in v.decode() for v in too_late)
