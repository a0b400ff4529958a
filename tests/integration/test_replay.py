"""``riskstream replay`` on the real broker and the Flink mini-cluster.

Three batches of payments with distinct event times (A oldest, then B, then C; every card,
terminal, device and merchant lives in one batch only) go through the live scoring job once. A
replay of ``[start of B, start of C)`` through the CLI must decide exactly B's valid payments, as
the live job did, into its own topics, without changing any live topic or the live group's offsets.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from core.config import Settings
from jobs import scoring
from riskstream.cli import main as cli_main
from riskstream.infra.cluster import LocalCluster
from riskstream.jobrunner import write_settings
from riskstream.replay import end_offsets, iso, replay_topic
from riskstream.support.factories import label_for, payment
from riskstream.support.kafka_io import read_values
from riskstream.support.topics import private_settings
from schemas.records import Transaction

pytestmark = [pytest.mark.integration, pytest.mark.flink]

ROLES = {
    "transactions": 2,
    "labels": 2,
    "dead_letter": 1,
    "decisions": 2,
    "predictions": 1,
    "alerts": 1,
    "analytics": 1,
    "late_events": 1,
}
OUTPUTS = ("decisions", "predictions", "alerts", "dead_letter", "analytics", "late_events")
DAY_MS = 86_400_000
CARDS, PAYMENTS_PER_CARD = 8, 5


def _transaction(batch: str, i: int, at: int) -> dict[str, Any]:
    card = i % CARDS
    online = card % 3 == 0
    tx = payment(
        f"{batch}-tx-{i}",
        at,
        source="test-replay",
        correlation_id=f"{batch}-corr-{i}",
        card=f"{batch}-card-{card}",
        customer=f"{batch}-cust-{card}",
        merchant=f"{batch}-merchant-{i % 4}",
        terminal=f"{batch}-terminal-{i % 4}",
        amount=[12.5, 48.0, 230.0, 7.25, 900.0][i % 5] + card,
        latitude=48.1 + card / 100,
        longitude=11.5 + card / 100,
        device=f"{batch}-device-{card % 2}" if online else None,
        country="DE",
    )
    return msgspec.structs.asdict(tx)


def _label(tx: dict[str, Any], at: int) -> dict[str, Any]:
    label = label_for(msgspec.convert(tx, Transaction), at, event_id=f"label-{tx['event_id']}")
    return msgspec.structs.asdict(label)


def _batch(batch: str, start: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str]]:
    """Payments one minute apart from ``start`` (plus one malformed), and one fraud label an
    hour after the first payment; returns records, labels and the valid payment ids."""
    payments = [
        _transaction(batch, i, start + i * 60_000) for i in range(CARDS * PAYMENTS_PER_CARD)
    ]
    malformed = {**_transaction(batch, 999, start + 90_000), "amount": -3.0}
    labels = [_label(payments[1], start + 3_600_000)]
    return [*payments, malformed], labels, {p["event_id"] for p in payments}


def _produce(settings: Settings, role: str, records: list[dict[str, Any]]) -> None:
    """Keyed by card, record timestamp = event time, as the simulator produces."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap, "enable.idempotence": True})
    for record in records:
        producer.produce(
            settings.kafka.topic(role),
            json.dumps(record).encode(),
            key=record["card_id"].encode(),
            timestamp=record["event_time"],
        )
    assert producer.flush(30) == 0


def _settings(base: Settings, tmp: Path, models: Path) -> Settings:
    name = f"replay-{uuid.uuid4().hex[:6]}"
    return private_settings(
        base,
        name,
        ROLES,
        flink={"parallelism": 1},
        checkpoint={"dir": str(tmp / "checkpoints")},
        scoring={
            "registry_dir": str(models),
            "group_id": f"{name}-group",
            "transactional_id_prefix": name,
            "latency_budget_ms": 3_600_000,
        },
    )


def _read(settings: Settings, topic: str) -> list[dict[str, Any]]:
    return [json.loads(v) for v in read_values(settings, topic)]


def _committed(
    settings: Settings, group: str, topics: list[str], commit: bool = False
) -> dict[tuple[str, int], int]:
    """The group's committed offsets of both partitions of ``topics``; with ``commit``, first
    commit each partition's end offset (where a live job that has read everything would be)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": group})
    try:
        wanted = [TopicPartition(t, p) for t in topics for p in range(2)]
        if commit:
            ends = [
                TopicPartition(tp.topic, tp.partition, consumer.get_watermark_offsets(tp, 10)[1])
                for tp in wanted
            ]
            consumer.commit(offsets=ends, asynchronous=False)
        return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(wanted, 30)}
    finally:
        consumer.close()


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@dataclass(frozen=True)
class LiveRun:
    """The live job's settings after it scored batches A, B and C, and what it wrote."""

    settings: Settings
    tmp: Path
    starts: dict[str, int]
    valid: dict[str, set[str]]
    logs: dict[str, dict[str, Any]]
    committed: dict[tuple[str, int], int]

    @property
    def inputs(self) -> list[str]:
        return [self.settings.kafka.topic("transactions"), self.settings.kafka.topic("labels")]

    @property
    def topics(self) -> list[str]:
        return [self.settings.kafka.topic(role) for role in ROLES]


@pytest.fixture(scope="module")
def live_run(
    kafka_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    fresh_champion: Callable[[Path], Path],
) -> LiveRun:
    tmp = tmp_path_factory.mktemp("replay")
    models = fresh_champion(tmp)
    live = _settings(kafka_settings, tmp, models)
    hour = 3_600_000
    now = time.time_ns() // 1_000_000 // hour * hour
    starts = {"A": now - 6 * DAY_MS, "B": now - 4 * DAY_MS, "C": now - 2 * DAY_MS}
    valid: dict[str, set[str]] = {}
    for batch, start in starts.items():
        payments, labels, valid[batch] = _batch(batch, start)
        _produce(live, "transactions", payments)
        _produce(live, "labels", labels)

    scoring.main(live, bounded=True)
    decided = {d["transaction_id"] for d in _read(live, live.kafka.topic("decisions"))}
    assert decided == set().union(*valid.values())
    logs = {p["transaction_id"]: p for p in _read(live, live.kafka.topic("predictions"))}
    inputs = [live.kafka.topic("transactions"), live.kafka.topic("labels")]
    # Whether a bounded run commits offsets depends on a checkpoint completing while its sources
    # still run (one run committed none); give the live group the position of a live job that has
    # read everything, so the replay has real offsets to leave alone.
    committed = _committed(live, live.scoring.group_id, inputs, commit=True)
    assert all(offset > 0 for offset in committed.values())
    return LiveRun(live, tmp, starts, valid, logs, committed)


def _replay(run: LiveRun, *args: str) -> str:
    """Run ``riskstream replay ARGS`` against the live settings; check that nothing of the live
    job changed (topics, committed offsets, checkpoints); returns what it printed."""
    live = run.settings
    before = end_offsets(live, run.topics)
    checkpoints = _listing(run.tmp / "checkpoints")
    config = write_settings(live, run.tmp / "live.yaml")
    out = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out):
        assert cli_main(["--config", str(config), "replay", *args]) == 0
    print(f"replay took {time.monotonic() - started:.1f} s")
    print(out.getvalue())
    assert end_offsets(live, run.topics) == before
    assert _committed(live, live.scoring.group_id, run.inputs) == run.committed
    assert _listing(run.tmp / "checkpoints") == checkpoints
    return out.getvalue()


def _check_decided_as_live(run: LiveRun, name: str, expected: set[str]) -> dict[str, str]:
    """The replay named ``name`` decided exactly ``expected`` as the live job did (those
    payments' cards, terminals and devices have no history before them); returns its topics."""
    topic = {role: replay_topic(run.settings.kafka.topic(role), name) for role in OUTPUTS}
    decisions = _read(run.settings, topic["decisions"])
    assert sorted(d["transaction_id"] for d in decisions) == sorted(expected)
    assert all(d["source"] == f"riskstream-scoring-replay-{name}" for d in decisions)
    logs = {p["transaction_id"]: p for p in _read(run.settings, topic["predictions"])}
    assert set(logs) == expected
    for tx_id, log in logs.items():
        live_log = run.logs[tx_id]
        assert log["features"] == live_log["features"], tx_id
        assert log["score"] == live_log["score"], tx_id  # scores do not depend on batching
        assert log["model_scores"] == live_log["model_scores"], tx_id
        assert log["decision"] == live_log["decision"], tx_id
        assert log["decision_id"] == live_log["decision_id"]
    assert _read(run.settings, topic["analytics"])
    admin = AdminClient({"bootstrap.servers": run.settings.kafka.bootstrap})
    meta = admin.list_topics(timeout=10).topics
    for role in OUTPUTS:  # laid out like the live topics
        live_partitions = len(meta[run.settings.kafka.topic(role)].partitions)
        assert len(meta[topic[role]].partitions) == live_partitions, role
    return topic


def test_replay_of_a_past_range_decides_it_again_into_its_own_topics(live_run: LiveRun) -> None:
    b, c = live_run.starts["B"], live_run.starts["C"]
    args = ["--name", "incident-7", "--from-timestamp", iso(b), "--to-timestamp", str(c)]
    printed = _replay(live_run, *args)
    topic = _check_decided_as_live(live_run, "incident-7", live_run.valid["B"])
    dead = _read(live_run.settings, topic["dead_letter"])
    assert ["B-tx-999" in d["payload"] for d in dead] == [True]

    # the CLI reports what it wrote, and under which ids
    b_count = len(live_run.valid["B"])
    assert end_offsets(live_run.settings, [topic["decisions"]])[topic["decisions"]] == b_count
    assert f"  {topic['decisions']}: {b_count}\n" in printed
    assert f"  {topic['predictions']}: {b_count}\n" in printed
    assert f"  {topic['dead_letter']}: 1\n" in printed
    group = live_run.settings.scoring.group_id + "-replay-incident-7"
    assert f"consumer group: {group}\n" in printed
    checkpoints = live_run.settings.paths.run / "replay" / "incident-7" / "checkpoints"
    assert checkpoints.is_dir()

    # a second replay of the same name would mix two runs in one topic: refused before it runs
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        config = str(live_run.tmp / "live.yaml")
        assert cli_main(["--config", config, "replay", *args]) == 2
    assert f"replay topic {topic['decisions']!r} already holds {b_count} records" in err.getvalue()
    assert "--overwrite" in err.getvalue()


def test_replay_on_the_cluster_reads_to_the_end_offsets(
    live_run: LiveRun, flink_cluster: LocalCluster
) -> None:
    assert flink_cluster.address
    start = live_run.starts["B"]
    _replay(live_run, "--name", "on-cluster", "--from-timestamp", str(start), "--target", "cluster")
    expected = live_run.valid["B"] | live_run.valid["C"]
    topic = _check_decided_as_live(live_run, "on-cluster", expected)
    dead = sorted(
        json.loads(d["payload"])["event_id"] for d in _read(live_run.settings, topic["dead_letter"])
    )
    assert dead == ["B-tx-999", "C-tx-999"]
