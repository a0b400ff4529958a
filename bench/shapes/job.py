"""The graphs of the shapes study, as one job script.

``python bench/shapes/job.py SPEC.json`` runs one shape on a local mini-cluster;
``flink run -py bench/shapes/job.py SPEC.json`` submits it to a cluster. The spec (written by
:mod:`bench.shapes.study`) names the shape (``base``, ``a``, ``b``, ``tiles``), the mode (``floor``:
same graph, empty bodies, no state; ``real``: today's feature functions with fault-tolerant keyed
state), the settings overrides (broker, topics, ports, checkpointing) and the bound (a stop
timestamp).

Shapes (every Python operator runs in thread mode; sources and sinks are Java):

* ``base`` (today): validate -> key by card -> card -> key by device -> device (+ labels) -> key by
  terminal -> terminal (+ labels) -> JSON; the real mode calls ``jobs.features.build`` unchanged.
* ``a``: validate (chained with the key selector) -> key by card -> ONE keyed broadcast operator:
  card + event features and the terminal features from hourly tiles (SQL window aggregation in
  Java over the transactions topic, one broadcast record per hour) and fraud labels (broadcast).
* ``tiles``: the tile aggregation alone (what it costs).
* ``b``: ``a`` whose payments with a device leave by a side output -> key by device -> device
  features (+ device labels) -> union with the payments without a device.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pyflink.common import Types
from pyflink.common.serialization import ByteArraySchema, SimpleStringSchema
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.table import StreamTableEnvironment

from bench.shapes import ops
from core.config import Settings, load_settings
from jobs import features as features_job
from jobs.env import create_env
from udfs.ingest import DEAD_LETTER_TAG

BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())
PICKLED = Types.PICKLED_BYTE_ARRAY()
SHAPES = ("base", "a", "b", "tiles")
MODES = ("floor", "real")
FRAUD_MARK = '"label":"fraud"'


def out_sink(bootstrap: str, topic: str, raw_bytes: bool) -> KafkaSink:
    """At-least-once Kafka sink of the study's output topic (strings or bytes), batched (20 ms,
    1 MB, lz4) so that the broker on the same two cores does not cap the fast shapes."""
    schema = ByteArraySchema() if raw_bytes else SimpleStringSchema()
    return (
        KafkaSink.builder()
        .set_bootstrap_servers(bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(topic)
            .set_value_serialization_schema(schema)
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .set_property("linger.ms", "20")
        .set_property("batch.size", "1048576")
        .set_property("compression.type", "lz4")
        .build()
    )


TILE_TABLE = """
CREATE TABLE tile_payments (
  terminal_id STRING,
  event_time BIGINT,
  ts AS TO_TIMESTAMP_LTZ(event_time, 3),
  WATERMARK FOR ts AS ts - INTERVAL '{ooo_s}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '{topic}',
  'properties.bootstrap.servers' = '{bootstrap}',
  'properties.group.id' = '{group}',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'timestamp',
  'scan.bounded.timestamp-millis' = '{stop_ms}',
  'format' = 'json',
  'json.ignore-parse-errors' = 'true',
  'json.fail-on-missing-field' = 'false'
)
"""
TILE_QUERY = """
WITH per_terminal AS (
  SELECT window_time AS rt, terminal_id,
         MAX(event_time / 3600000) AS hour_index, COUNT(*) AS n
  FROM TABLE(TUMBLE(TABLE tile_payments, DESCRIPTOR(ts), INTERVAL '1' HOUR))
  WHERE terminal_id IS NOT NULL AND event_time IS NOT NULL
  GROUP BY window_start, window_end, window_time, terminal_id
)
SELECT MAX(hour_index) AS hour_index,
       LISTAGG(CONCAT(terminal_id, ':', CAST(n AS STRING)), ';') AS payload
FROM TABLE(TUMBLE(TABLE per_terminal, DESCRIPTOR(rt), INTERVAL '1' HOUR))
GROUP BY window_start, window_end
"""


def tile_stream(env: StreamExecutionEnvironment, settings: Settings, stop_ms: int) -> DataStream:
    """Hourly per-terminal payment counts, one record per hour: ``("t", hour, payload)``.

    Counted in Java (Flink SQL tumbling windows over the transactions topic, JSON format reading
    two fields); only the hourly record crosses into Python.
    """
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.exec.source.idle-timeout", f"{settings.features.idleness_ms} ms")
    t_env.execute_sql(
        TILE_TABLE.format(
            topic=settings.kafka.topic("transactions"),
            bootstrap=settings.kafka.bootstrap,
            group=f"{settings.features.group_id}-tiles",
            stop_ms=stop_ms,
            ooo_s=max(1, settings.features.out_of_orderness_ms // 1000),
        )
    )
    rows = t_env.to_data_stream(t_env.sql_query(TILE_QUERY))
    return (
        rows.map(lambda row: ("t", int(row[0]), row[1]), output_type=PICKLED)
        .uid("shapes-tiles-map")
        .name("tile records")
    )


def _source(env: StreamExecutionEnvironment, settings: Settings, role: str) -> DataStream:
    """The payload strings of ``role``'s topic, as the study measured them (a string
    ``KafkaSource``; the jobs now read raw records through ``features_job.kafka_source``)."""
    src = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka.bootstrap)
        .set_topics(settings.kafka.topic(role))
        .set_group_id(settings.features.group_id)
        .set_starting_offsets(KafkaOffsetsInitializer.earliest())
        .set_bounded(KafkaOffsetsInitializer.latest())
        .set_value_only_deserializer(SimpleStringSchema())
        .build()
    )
    return env.from_source(src, features_job.watermarks(settings), f"{role}-source").uid(
        f"shapes-{role}-source"
    )


def build_base_floor(env: StreamExecutionEnvironment, settings: Settings, sink: KafkaSink) -> None:
    """Today's graph with empty bodies."""
    tx = _source(env, settings, "transactions").process(ops.FloorValidate(), PICKLED)
    labels = _source(env, settings, "labels").process(ops.FloorValidate(), PICKLED)
    cards = tx.key_by(ops.card_of, Types.STRING()).process(ops.FloorKeyed(), PICKLED)
    device_labels = labels.filter(lambda raw: ops.NO_DEVICE not in raw)
    devices = (
        cards.key_by(lambda raw: ops.device_of(raw) or ops.card_of(raw), Types.STRING())
        .connect(device_labels.key_by(ops.device_of, Types.STRING()))
        .process(ops.FloorCo(), PICKLED)
    )
    out = (
        devices.key_by(ops.terminal_of, Types.STRING())
        .connect(labels.key_by(ops.terminal_of, Types.STRING()))
        .process(ops.FloorCo(), Types.STRING())
    )
    out.sink_to(sink)


def build_base_real(env: StreamExecutionEnvironment, settings: Settings, sink: KafkaSink) -> None:
    """Today's feature job graph, unchanged (JSON output)."""
    sources = features_job.FeatureSources(
        features_job.kafka_source(settings, "transactions", bounded=True),
        features_job.kafka_source(settings, "labels", bounded=True),
    )
    sinks = features_job.FeatureSinks(sink, features_job.kafka_sink(settings, "dead_letter"))
    features_job.build(env, sources, sinks, settings)


def build_tiles_floor(
    env: StreamExecutionEnvironment, settings: Settings, sink: KafkaSink, stop_ms: int, b: bool
) -> None:
    """Shapes a/b with empty bodies (the tile SQL, broadcast and side output are kept)."""
    tx = _source(env, settings, "transactions").process(ops.FloorValidate(), PICKLED)
    labels = _source(env, settings, "labels").process(ops.FloorValidate(), PICKLED)
    frauds = labels.filter(lambda raw: FRAUD_MARK in raw).map(lambda raw: ("l", raw), PICKLED)
    broadcast = tile_stream(env, settings, stop_ms).union(frauds).broadcast(ops.TILES)
    cards = (
        tx.key_by(ops.card_of, Types.STRING())
        .connect(broadcast)
        .process(ops.FloorBroadcast(route_devices=b), Types.STRING())
    )
    out = cards
    if b:
        device_labels = labels.filter(lambda raw: ops.NO_DEVICE not in raw and FRAUD_MARK in raw)
        devices = (
            cards.get_side_output(ops.FLOOR_DEVICE_TAG)
            .key_by(ops.device_of, Types.STRING())
            .connect(device_labels.key_by(ops.device_of, Types.STRING()))
            .process(ops.FloorCo(), Types.STRING())
        )
        out = cards.union(devices)
    out.sink_to(sink)


def build_tiles_real(
    env: StreamExecutionEnvironment,
    settings: Settings,
    sink: KafkaSink,
    stop_ms: int,
    *,
    b: bool,
    fail: ops.FailOnce,
) -> None:
    """Shapes a/b with today's validation and feature functions and fault-tolerant state."""
    params = features_job.feature_params(settings)
    tx = features_job._validated(
        env, _source(env, settings, "transactions"), "transactions", "transaction", settings
    )
    labels = features_job._validated(
        env, _source(env, settings, "labels"), "labels", "label", settings
    )
    tx.get_side_output(DEAD_LETTER_TAG).union(labels.get_side_output(DEAD_LETTER_TAG)).sink_to(
        features_job.kafka_sink(settings, "dead_letter")
    ).uid("shapes-dead-letters").name("dead letters")
    frauds = (
        labels.filter(lambda label: label.label == "fraud")
        .uid("shapes-fraud-labels")
        .map(lambda label: ("l", label), output_type=PICKLED)
        .uid("shapes-fraud-records")
    )
    broadcast = tile_stream(env, settings, stop_ms).union(frauds).broadcast(ops.TILES)
    cards = (
        tx.key_by(lambda t: t.card_id, Types.STRING())
        .connect(broadcast)
        .process(ops.CardWithTiles(params, route_devices=b, fail=fail), output_type=BYTES)
        .uid("shapes-card")
        .name("card + terminal tiles")
    )
    out = cards
    if b:
        device_labels = labels.filter(
            lambda label: label.device_id is not None and label.label == "fraud"
        ).uid("shapes-device-labels")
        devices = (
            cards.get_side_output(ops.DEVICE_TAG)
            .key_by(lambda record: record[0].device_id, Types.STRING())
            .connect(device_labels.key_by(lambda label: label.device_id, Types.STRING()))
            .process(ops.DeviceTail(params), output_type=BYTES)
            .uid("shapes-device")
            .name("device features")
        )
        out = cards.union(devices)
    out.sink_to(sink).uid("shapes-sink").name("output")


def run(spec: dict[str, Any]) -> None:
    """Build and execute the job the spec describes."""
    settings = load_settings(overrides=spec["settings"], environ={})
    shape, mode = spec["shape"], spec["mode"]
    if shape not in SHAPES or mode not in MODES:
        raise SystemExit(f"shape in {SHAPES} and mode in {MODES} expected, found {shape}/{mode}")
    env = create_env(settings)
    env.set_buffer_timeout(settings.features.buffer_timeout_ms)
    raw_bytes = mode == "real" and shape in ("a", "b")
    sink = out_sink(settings.kafka.bootstrap, spec["out_topic"], raw_bytes)
    stop_ms = settings.features.stop_timestamp_ms
    fail = ops.FailOnce(
        spec.get("fail_after_s", 0.0), spec.get("marker", ""), spec.get("report", "")
    )
    if shape == "tiles":  # the tile aggregation alone (its cost), one record per hour out
        tiles = tile_stream(env, settings, stop_ms)
        tiles.map(lambda t: f"{t[1]}|{t[2]}", output_type=Types.STRING()).sink_to(sink)
    elif shape == "base":
        (build_base_floor if mode == "floor" else build_base_real)(env, settings, sink)
    elif mode == "floor":
        build_tiles_floor(env, settings, sink, stop_ms, shape == "b")
    else:
        build_tiles_real(env, settings, sink, stop_ms, b=shape == "b", fail=fail)
    env.execute(f"shapes-{shape}-{mode}")


if __name__ == "__main__":
    run(json.loads(Path(sys.argv[1]).read_text()))
