"""Replay: the scoring job again over a past range of its input topics, into separate outputs.

:func:`replay_settings` derives everything a replay changes from the live settings (a pure
function): every output topic becomes ``<live topic>.replay-<name>``, the consumer group
``<scoring.group_id>-replay-<name>``, the transactional-id prefix
``<scoring.transactional_id_prefix>-replay-<name>``, the checkpoints ``<run dir>/replay/<name>/
checkpoints`` (never restored from: state starts empty), and the sources start at the first
record stamped at or after ``--from-timestamp`` (and stop before ``--to-timestamp``). Record
timestamps of the input topics are the payments' and labels' event times (producers stamp them),
so the range is one of event time, cut per partition at offsets.

The Kafka helpers here prepare the replay topics with the admin client (same partition counts,
replication and explicit topic configs as the live topics; refusing to mix two replays in one
topic) and count what a replay wrote.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import ConfigResource, ConfigSource
from confluent_kafka.admin._listoffsets import OffsetSpec
from confluent_kafka.cimpl import NewTopic

from core.config import Settings, TopicSettings, with_overrides
from core.errors import ConfigError, ServiceError
from riskstream.support.kafka_io import TopicReader

INPUT_ROLES = ("transactions", "labels")
OUTPUT_ROLES = (
    "decisions",
    "predictions",
    "alerts",
    "guardrail_alerts",
    "dead_letter",
    "features",
    "analytics",
    "late_events",
)
TOPIC_SUFFIX = ".replay-"
ID_SUFFIX = "-replay-"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}")
MAX_TOPIC_LENGTH = 249
# Below this an epoch value is far more likely seconds than milliseconds (1973-03-03 in ms).
MIN_EPOCH_MS = 100_000_000_000
MAX_EPOCH_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z, as the event contracts
ADMIN_TIMEOUT_S = 30.0

_QUIET_LOGGER = logging.getLogger("riskstream.replay.kafka")
_QUIET_LOGGER.addHandler(logging.NullHandler())
_QUIET_LOGGER.propagate = False
# OffsetSpec's factories are untyped in confluent-kafka
_EARLIEST: Any = OffsetSpec.earliest
_LATEST: Any = OffsetSpec.latest
_AT_TIME: Any = OffsetSpec.for_timestamp


def parse_timestamp(text: str, flag: str) -> int:
    """Epoch milliseconds from epoch ms digits or an ISO-8601 time with a zone (``Z`` = UTC).

    >>> parse_timestamp("2026-11-28T10:00:00Z", "--from-timestamp")
    1795860000000
    >>> parse_timestamp("1795860000000", "--from-timestamp")
    1795860000000
    """
    value = text.strip()
    example = "epoch milliseconds (1795860000000) or ISO-8601 UTC (2026-11-28T10:00:00Z)"
    if value.isdigit():
        ms = int(value)
        if 0 < ms < MIN_EPOCH_MS:
            raise ConfigError(
                f"{flag}: {value} looks like epoch seconds or a typo (before 1973 in ms); "
                f"expected {example}"
            )
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{flag}: expected {example}, found {text!r}") from None
        if moment.tzinfo is None:
            raise ConfigError(
                f"{flag}: {text!r} has no time zone; add Z for UTC, e.g. {value}Z; "
                f"expected {example}"
            )
        ms = round(moment.timestamp() * 1000)
        if ms < 0:
            raise ConfigError(f"{flag}: {text!r} is before 1970; expected {example}")
    if ms > MAX_EPOCH_MS:
        raise ConfigError(f"{flag}: {text!r} is after 2100; expected {example}")
    return ms


def iso(ms: int) -> str:
    """Epoch ms as ISO-8601 UTC, for messages.

    >>> iso(1795860000000)
    '2026-11-28T10:00:00.000Z'
    """
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def default_name(from_ms: int) -> str:
    """The replay name when ``--name`` is not given: the start time in UTC.

    >>> default_name(1795860000000)
    '20261128-100000'
    """
    return datetime.fromtimestamp(from_ms / 1000, UTC).strftime("%Y%m%d-%H%M%S")


def check_name(name: str) -> str:
    """A replay name is used in topic names, ids and a directory: letters, digits, ``-``."""
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"--name: expected 1-63 letters, digits or '-' (not starting with '-'), found {name!r}"
        )
    return name


def replay_topic(live_topic: str, name: str) -> str:
    """The replay's topic for a live output topic."""
    return f"{live_topic}{TOPIC_SUFFIX}{name}"


def written_roles(settings: Settings) -> tuple[str, ...]:
    """The output roles the scoring job writes with these settings."""
    skipped = set()
    if not settings.scoring.write_features:
        skipped.add("features")
    if not settings.scoring.analytics:
        skipped |= {"analytics", "late_events"}
    if not settings.guardrails.enabled:
        skipped.add("guardrail_alerts")
    return tuple(r for r in OUTPUT_ROLES if r not in skipped and r in settings.kafka.topics)


def replay_settings(live: Settings, name: str, from_ms: int, to_ms: int | None = None) -> Settings:
    """The live settings with every output, id and state location of a replay named ``name``.

    Inputs stay the live input topics; the sources read ``[from_ms, to_ms)`` of record time per
    partition (``to_ms=None``: up to the end offsets when the job starts) and always run bounded.
    """
    check_name(name)
    if to_ms is not None and to_ms <= from_ms:
        raise ConfigError(
            f"--to-timestamp ({iso(to_ms)}) must be after --from-timestamp ({iso(from_ms)})"
        )
    topics = dict(live.kafka.topics)
    for role in OUTPUT_ROLES:
        if role in topics:
            spec = topics[role]
            topics[role] = TopicSettings(
                name=replay_topic(spec.name, name), partitions=spec.partitions
            )
    suffix = f"{ID_SUFFIX}{name}"
    replay = with_overrides(
        live,
        kafka={"topics": topics},
        features={
            "start_timestamp_ms": from_ms,
            "stop_timestamp_ms": to_ms or 0,
            "source": live.features.source + suffix,
        },
        analytics={"source": live.analytics.source + suffix},
        scoring={
            "group_id": live.scoring.group_id + suffix,
            "transactional_id_prefix": live.scoring.transactional_id_prefix + suffix,
            "source_name": live.scoring.source_name + suffix,
        },
        checkpoint={
            "dir": str(live.paths.run / "replay" / name / "checkpoints"),
            "restore_from": "",
            "allow_non_restored_state": False,
        },
        # a bounded run nobody stops with a savepoint: never take the live local job's port
        flink={"local_rest_port": 0},
    )
    check_isolated(live, replay)
    return replay


def check_isolated(live: Settings, replay: Settings) -> None:
    """Raise unless the replay shares no output topic, group, prefix or checkpoint dir with live."""
    live_topics = {spec.name for spec in live.kafka.topics.values()}
    clashes = [
        f"{role} topic {replay.kafka.topic(role)!r}"
        for role in OUTPUT_ROLES
        if role in replay.kafka.topics and replay.kafka.topic(role) in live_topics
    ]
    too_long = [
        replay.kafka.topic(r)
        for r in OUTPUT_ROLES
        if r in replay.kafka.topics and len(replay.kafka.topic(r)) > MAX_TOPIC_LENGTH
    ]
    if replay.scoring.group_id in (live.scoring.group_id, live.features.group_id):
        clashes.append(f"consumer group {replay.scoring.group_id!r}")
    if replay.scoring.transactional_id_prefix == live.scoring.transactional_id_prefix:
        clashes.append(f"transactional id prefix {replay.scoring.transactional_id_prefix!r}")
    if replay.checkpoint_dir == live.checkpoint_dir:
        clashes.append(f"checkpoint dir {replay.checkpoint_dir}")
    if clashes:
        raise ConfigError(
            "replay: would share with the live job its "
            + ", ".join(clashes)
            + "; pick another --name"
        )
    if too_long:
        raise ConfigError(
            f"replay: topic name(s) {', '.join(too_long)} exceed Kafka's {MAX_TOPIC_LENGTH} "
            "characters; use a shorter --name"
        )


def admin_client(settings: Settings) -> AdminClient:
    """An admin client for ``kafka.bootstrap`` (librdkafka's connection noise silenced)."""
    conf: dict[str, Any] = {**settings.kafka.client_config(), "logger": _QUIET_LOGGER}
    return AdminClient(conf)


def _result(future: Any, what: str) -> Any:
    try:
        return future.result(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as exc:
        raise ServiceError(f"Kafka admin request failed: {what}: {exc}") from exc


def _offsets(admin: AdminClient, topic: str, partitions: int, spec: Any) -> dict[int, int]:
    request = {TopicPartition(topic, p): spec for p in range(partitions)}
    futures = admin.list_offsets(request, request_timeout=ADMIN_TIMEOUT_S)
    return {
        tp.partition: int(_result(f, f"offsets of {topic}").offset) for tp, f in futures.items()
    }


def offset_ranges(
    settings: Settings, from_ms: int, to_ms: int | None
) -> dict[str, dict[int, tuple[int, int]]]:
    """Per input topic and partition, the offsets ``[start, end)`` a replay reads, as of now
    (the job looks them up again when it starts)."""
    admin = admin_client(settings)
    topics = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    ranges: dict[str, dict[int, tuple[int, int]]] = {}
    for role in INPUT_ROLES:
        topic = settings.kafka.topic(role)
        if topic not in topics:
            raise ConfigError(f"replay: input topic {topic!r} ({role}) does not exist")
        n = len(topics[topic].partitions)
        latest = _offsets(admin, topic, n, _LATEST())
        # offsets for a time after the last record come back as -1: nothing to read there
        start = _offsets(admin, topic, n, _AT_TIME(from_ms))
        end = _offsets(admin, topic, n, _AT_TIME(to_ms)) if to_ms else latest
        ranges[topic] = {
            p: (latest[p] if start[p] < 0 else start[p], latest[p] if end[p] < 0 else end[p])
            for p in range(n)
        }
    return ranges


def _held(admin: AdminClient, topic: str, partitions: int) -> int:
    low = _offsets(admin, topic, partitions, _EARLIEST())
    high = _offsets(admin, topic, partitions, _LATEST())
    return sum(high[p] - low[p] for p in range(partitions))


def _explicit_configs(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource("TOPIC", topic)
    entries = _result(admin.describe_configs([resource])[resource], f"configs of {topic}")
    return {
        key: str(entry.value)
        for key, entry in entries.items()
        if ConfigSource(entry.source) == ConfigSource.DYNAMIC_TOPIC_CONFIG
        and entry.value is not None
    }


def prepare_topics(live: Settings, replay: Settings, overwrite: bool = False) -> list[str]:
    """Create the replay's output topics like the live ones; returns the topics it will write.

    An existing replay topic is reused if it is empty (or emptied with ``overwrite``, by deleting
    its records); one that holds records, or has another partition count, is refused.
    """
    admin = admin_client(live)
    existing = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    targets, new = [], []
    for role in written_roles(replay):
        source, target = live.kafka.topic(role), replay.kafka.topic(role)
        targets.append(target)
        if source in existing:
            partitions = len(existing[source].partitions)
            replicas = len(next(iter(existing[source].partitions.values())).replicas)
            configs = _explicit_configs(admin, source)
        else:
            partitions, replicas, configs = live.kafka.partitions(role), 1, {}
        if target not in existing:
            new.append(NewTopic(target, partitions, replicas, config=configs))
            continue
        found = len(existing[target].partitions)
        if found != partitions:
            raise ConfigError(
                f"replay topic {target!r} exists with {found} partitions, the live {source!r} "
                f"has {partitions}; delete it or use another --name"
            )
        held = _held(admin, target, found)
        if held and not overwrite:
            raise ConfigError(
                f"replay topic {target!r} already holds {held} records (an earlier replay of the "
                "same name); pass --overwrite to empty it, or use another --name"
            )
        if held:
            futures = admin.delete_records(
                [TopicPartition(target, p, -1) for p in range(found)],
                request_timeout=ADMIN_TIMEOUT_S,
            )
            for future in futures.values():
                _result(future, f"emptying {target}")
    if new:
        created = admin.create_topics(new, operation_timeout=ADMIN_TIMEOUT_S)
        for topic, future in created.items():
            _result(future, f"creating topic {topic}")
    return targets


def end_offsets(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Sum of the end offsets of each topic (grows while a replay writes; progress only)."""
    admin = admin_client(settings)
    meta = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    return {t: sum(_offsets(admin, t, len(meta[t].partitions), _LATEST()).values()) for t in topics}


def count_records(settings: Settings, topic: str, timeout_s: float = 120.0) -> int:
    """Committed records in ``topic`` (read_committed, transaction markers not counted)."""
    with TopicReader(settings, topic) as reader:
        return sum(1 for _ in reader.records(timeout_s))


def describe(replay: Settings) -> dict[str, str]:
    """What a replay uses besides its topics (for the CLI's plan)."""
    return {
        "consumer group": replay.scoring.group_id,
        "transactional id prefix": replay.scoring.transactional_id_prefix,
        "checkpoints": str(replay.checkpoint_dir),
    }
