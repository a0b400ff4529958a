"""Streaming feature job: payments and labels from Kafka -> per-key features -> enriched topic.

Graph (every operator has a stable uid)::

    transactions (Kafka, watermarks per partition) -> validate --dead letters--> dead-letter topic
        -> key by card  -> CardStage      (dedup, late flag, watermark lag, card features)
        -> key by device -> DeviceStage   <- fraud labels with a device, keyed by device
        -> key by terminal -> TerminalStage <- fraud labels keyed by terminal
        -> features topic (JSON, feature-set name/version/hash, flags, watermark lag)
    labels (Kafka) -> validate --dead letters--> dead-letter topic

The Kafka inputs are the connector's SQL table source (``format = raw``) turned into a DataStream:
each record arrives as ``Row(value bytes|None, partition, offset, rowtime)``, so validation sees
the original bytes, tombstones and empty values, and where the record came from (PyFlink's
``KafkaSource`` only offers a value deserializer, and ``SimpleStringSchema`` fails the job on a
tombstone and replaces invalid UTF-8). Watermarks come from the Kafka record timestamps (producers
set them to the event time), per partition, with bounded out-of-orderness and idleness, pushed
into the source; a record stamped more than ``features.max_future_skew_ms`` ahead of the time it
is read does not advance them (docs/ingestion.md). Run it with ``riskstream run --job features``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink
from pyflink.table import DataTypes, Schema, StreamTableEnvironment, TableDescriptor
from pyflink.table.expressions import col

from core.config import Guarantee, Settings
from core.errors import JobError
from features.params import FeatureParams
from jobs.entry import run_job_script
from jobs.env import create_env
from udfs.feature_gate import FeatureRows
from udfs.feature_rows import row_type
from udfs.feature_stages import (
    FEATURES_TAG,
    CardStage,
    DeviceStage,
    TerminalStage,
    card_key,
    device_key,
    terminal_key,
)
from udfs.ingest import DEAD_LETTER_TAG, IngestRules, ValidateRecords
from udfs.metrics import DeadLetterMetrics

JOB_NAME = "riskstream-features"
VALUE, PARTITION, OFFSET, ROWTIME = "value", "partition", "offset", "rowtime"
SOURCE_TRANSFORMATION = "SourceTransformation"


@dataclass(frozen=True)
class KafkaInput:
    """One Kafka topic read as raw records: what :func:`kafka_source` describes and
    :meth:`stream` builds (the settings carry the security; secrets stay masked in reprs)."""

    settings: Settings
    role: str
    bounded: bool
    group_id: str

    def stream(self, env: StreamExecutionEnvironment, uid: str) -> DataStream:
        """``Row(value, partition, offset, rowtime)`` records with the Kafka record timestamps
        and per-partition watermarks; the source operator gets ``uid`` (savepoints keep the
        offsets across versions)."""
        t_env = StreamTableEnvironment.create(env)
        schema = (
            Schema.new_builder()
            .column(VALUE, DataTypes.BYTES())
            .column_by_metadata(PARTITION, DataTypes.INT(), is_virtual=True)
            .column_by_metadata(OFFSET, DataTypes.BIGINT(), is_virtual=True)
            .column_by_metadata(ROWTIME, DataTypes.TIMESTAMP_LTZ(3), "timestamp", True)
            .watermark(ROWTIME, watermark_expression(self.settings))
            .build()
        )
        builder = TableDescriptor.for_connector("kafka").schema(schema).format("raw")
        for key, value in kafka_table_options(self).items():
            builder = builder.option(key, value)
        table = t_env.from_descriptor(builder.build()).select(
            col(VALUE), col(PARTITION), col(OFFSET), col(ROWTIME)
        )
        stream = t_env.to_data_stream(table)
        _set_source_uid(stream, uid)
        return stream


FeatureInput: TypeAlias = KafkaInput | DataStream
"""A Kafka topic, or a stream of payload strings that already carries timestamps and watermarks
(the backfill's replay of files, see ``jobs/backfill.py``)."""


@dataclass(frozen=True)
class FeatureSources:
    """The job's two inputs: Kafka topics whose record timestamps are the event times, or
    streams of raw payload strings that already carry timestamps and watermarks (the backfill's
    replay of files, see ``jobs/backfill.py``)."""

    transactions: FeatureInput
    labels: FeatureInput


@dataclass(frozen=True)
class FeatureSinks:
    """The job's two outputs; ``features=None`` leaves the returned stream to the caller."""

    features: Sink | None
    dead_letter: Sink


def feature_params(settings: Settings) -> FeatureParams:
    """The pure logic's parameters from the ``features`` settings section."""
    return FeatureParams.from_settings(settings.features)


def kafka_source(
    settings: Settings, role: str, bounded: bool = False, group_id: str | None = None
) -> KafkaInput:
    """The topic of ``role`` as raw records, from the earliest offset or, with
    ``features.start_timestamp_ms``, from each partition's first record stamped at or after it
    (offsets committed on checkpoints under ``group_id``, default ``features.group_id``);
    ``bounded`` stops at the offsets latest at start or, with ``features.stop_timestamp_ms``,
    before each partition's first record stamped at or after it."""
    return KafkaInput(settings, role, bounded, group_id or settings.features.group_id)


def kafka_table_options(source: KafkaInput) -> dict[str, str]:
    """Options of the Kafka SQL source: topic, offsets, idleness and the same security as every
    other client (``kafka.security_protocol``, SASL credentials from the environment)."""
    settings = source.settings
    f = settings.features
    options = {
        "topic": settings.kafka.topic(source.role),
        "properties.bootstrap.servers": settings.kafka.bootstrap,
        "properties.group.id": source.group_id,
        "scan.watermark.idle-timeout": f"{f.idleness_ms} ms",
    }
    if f.start_timestamp_ms:
        options |= {
            "scan.startup.mode": "timestamp",
            "scan.startup.timestamp-millis": str(f.start_timestamp_ms),
        }
    else:
        options["scan.startup.mode"] = "earliest-offset"
    if source.bounded and f.stop_timestamp_ms:
        options |= {
            "scan.bounded.mode": "timestamp",
            "scan.bounded.timestamp-millis": str(f.stop_timestamp_ms),
        }
    elif source.bounded:
        options["scan.bounded.mode"] = "latest-offset"
    for key, value in settings.kafka.java_client_config().items():
        options[f"properties.{key}"] = value
    return options


def watermark_expression(settings: Settings) -> str:
    """Bounded out-of-orderness on the record timestamps, leaving out records stamped more than
    ``features.max_future_skew_ms`` ahead of the time the source reads them (a NULL watermark
    candidate does not move the watermark). Like Flink's ``for_bounded_out_of_orderness`` (the
    backfill's :func:`watermarks`) it trails the highest timestamp by out-of-orderness + 1 ms, so
    the stream and the backfill flag the same events late."""
    f = settings.features
    return (
        f"CASE WHEN `{ROWTIME}` > TIMESTAMPADD(MILLISECOND, {f.max_future_skew_ms}, "
        "CURRENT_TIMESTAMP) THEN CAST(NULL AS TIMESTAMP_LTZ(3)) "
        f"ELSE TIMESTAMPADD(MILLISECOND, -{f.out_of_orderness_ms + 1}, `{ROWTIME}`) END"
    )


def _set_source_uid(stream: DataStream, uid: str) -> None:
    """Give the table source's operator a stable uid (the planner leaves it to a hash of the
    graph, which changes with any edit of the job)."""
    pending = [stream._j_data_stream.getTransformation()]
    while pending:
        transformation = pending.pop()
        if SOURCE_TRANSFORMATION in transformation.getClass().getSimpleName():
            transformation.setUid(uid)
            return
        pending.extend(transformation.getInputs())
    raise JobError(f"no Kafka source operator found under the table conversion for {uid}")


def kafka_sink(
    settings: Settings,
    role: str,
    guarantee: Guarantee = "AT_LEAST_ONCE",
    transactional_id_prefix: str = "",
    producer_config: dict[str, str] | None = None,
) -> KafkaSink:
    """A string sink to the topic of ``role``: at least once by default (consumers dedup by
    event_id); ``EXACTLY_ONCE`` writes in Kafka transactions committed on checkpoints, under a
    ``transactional_id_prefix`` that must be unique per job and stable across restarts. Every
    sink gets the clients' security settings and ``max.request.size`` = kafka.max_message_bytes
    (the broker's limit)."""
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(settings.kafka.bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(settings.kafka.topic(role))
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee[guarantee])
    )
    if guarantee == DeliveryGuarantee.EXACTLY_ONCE.name:
        builder = builder.set_transactional_id_prefix(f"{transactional_id_prefix}-{role}")
    properties = {
        "max.request.size": str(settings.kafka.max_message_bytes),
        **settings.kafka.java_client_config(),
        **(producer_config or {}),
    }
    for key, value in properties.items():
        builder = builder.set_property(key, value)
    return builder.build()


def watermarks(settings: Settings) -> WatermarkStrategy:
    """Bounded out-of-orderness + idleness, for streams whose timestamps are already assigned
    (the backfill's file replay); the Kafka inputs use :func:`watermark_expression`."""
    f = settings.features
    return WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(f.out_of_orderness_ms)
    ).with_idleness(Duration.of_millis(f.idleness_ms))


def raw_stream(
    env: StreamExecutionEnvironment, source: FeatureInput, uid: str
) -> tuple[DataStream, bool]:
    """The records of ``source`` and whether they come from Kafka (live ingestion)."""
    if isinstance(source, DataStream):
        return source, False
    return source.stream(env, uid), True


def validator(
    settings: Settings, record_type: str, role: str, source_name: str, live: bool
) -> ValidateRecords:
    """The validation function of one input (rules from the ``features`` and ``ingest``
    sections; ``live`` = read from Kafka)."""
    rules = IngestRules.from_settings(settings.features, settings.ingest, live)
    return ValidateRecords(record_type, settings.kafka.topic(role), source_name, rules)


def _validated(
    env: StreamExecutionEnvironment,
    source: FeatureInput,
    role: str,
    record_type: str,
    settings: Settings,
) -> DataStream:
    raw, live = raw_stream(env, source, f"features-{role}-source")
    validate = validator(settings, record_type, role, settings.features.source, live)
    return (
        raw.process(validate, output_type=Types.PICKLED_BYTE_ARRAY())
        .uid(f"features-validate-{role}")
        .name(f"validate {role}")
    )


def build(
    env: StreamExecutionEnvironment,
    sources: FeatureSources,
    sinks: FeatureSinks,
    settings: Settings,
    gate: FeatureRows | None = None,
) -> DataStream:
    """The job graph; returns the enriched-features stream (JSON strings) or, with a scoring
    ``gate``, the gate's rows (:func:`udfs.feature_rows.row_type`; its dead letters on the
    gate's side output), the terminal stage then being an operator chained to nothing so the
    scoring UDF's task opens on its own."""
    # Three keyed exchanges: Flink's default 100 ms buffer timeout per exchange would dominate
    # the latency budget at low rates.
    env.set_buffer_timeout(settings.features.buffer_timeout_ms)
    params = feature_params(settings)
    transactions = _validated(env, sources.transactions, "transactions", "transaction", settings)
    labels = _validated(env, sources.labels, "labels", "label", settings)
    dead_letters = transactions.get_side_output(DEAD_LETTER_TAG).union(
        labels.get_side_output(DEAD_LETTER_TAG)
    )
    counted = (
        dead_letters.map(DeadLetterMetrics(), output_type=Types.STRING())
        .uid("features-dead-letter-metrics")
        .name("count dead letters")
    )
    counted.sink_to(sinks.dead_letter).uid("features-dead-letter-sink").name("dead letters")

    cards = (
        transactions.key_by(card_key, Types.STRING())
        .process(CardStage(params), output_type=Types.PICKLED_BYTE_ARRAY())
        .uid("features-card")
        .name("card features")
    )
    device_labels = (
        labels.filter(lambda label: label.device_id is not None)
        .uid("features-device-labels")
        .name("labels with a device")
    )
    devices = (
        cards.key_by(device_key, Types.STRING())
        .connect(device_labels.key_by(lambda label: label.device_id, Types.STRING()))
        .process(DeviceStage(params), output_type=Types.PICKLED_BYTE_ARRAY())
        .uid("features-device")
        .name("device features")
    )
    features = (
        devices.key_by(terminal_key, Types.STRING())
        .connect(labels.key_by(lambda label: label.terminal_id, Types.STRING()))
        .process(
            TerminalStage(params, gate, features_json=sinks.features is not None),
            output_type=Types.STRING() if gate is None else row_type(),
        )
        .uid("features-terminal")
        .name("terminal features")
    )
    if gate is not None:
        features = features.disable_chaining()
    if sinks.features is not None:
        json = features if gate is None else features.get_side_output(FEATURES_TAG)
        json.sink_to(sinks.features).uid("features-sink").name("features sink")
    return features


def main(settings: Settings, bounded: bool = False) -> None:
    """Build and run the job in this process's environment (mini-cluster or ``flink run``)."""
    env = create_env(settings)
    sources = FeatureSources(
        kafka_source(settings, "transactions", bounded), kafka_source(settings, "labels", bounded)
    )
    sinks = FeatureSinks(kafka_sink(settings, "features"), kafka_sink(settings, "dead_letter"))
    build(env, sources, sinks, settings)
    env.execute(JOB_NAME)


def cli(argv: Sequence[str] | None = None) -> None:
    """Entry of ``flink run -pym jobs.features`` (``riskstream run --target cluster``)."""
    run_job_script(main, __doc__, argv)


if __name__ == "__main__":
    cli(sys.argv[1:])
