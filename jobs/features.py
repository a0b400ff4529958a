"""Streaming feature job: payments and labels from Kafka -> per-key features -> enriched topic.

Graph (every operator has a stable uid)::

    transactions (Kafka, watermarks per partition) -> validate --dead letters--> dead-letter topic
        -> key by card  -> CardStage      (dedup, late flag, watermark lag, card features)
        -> key by device -> DeviceStage   <- fraud labels with a device, keyed by device
        -> key by terminal -> TerminalStage <- fraud labels keyed by terminal
        -> features topic (JSON, feature-set name/version/hash, flags, watermark lag)
    labels (Kafka) -> validate --dead letters--> dead-letter topic

Watermarks come from the Kafka record timestamps (producers set them to the event time): the
source's Java strategy (bounded out-of-orderness + idleness) tracks each partition, because a Python
timestamp assigner passed to ``from_source`` is ignored by PyFlink 2.2. Run it with
``riskstream run --job features``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink, Source
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)

from core.config import Guarantee, Settings
from features.params import FeatureParams
from jobs.entry import run_job_script
from jobs.env import create_env
from udfs.feature_stages import (
    CardStage,
    DeviceStage,
    TerminalStage,
    card_key,
    device_key,
    terminal_key,
)
from udfs.ingest import DEAD_LETTER_TAG, ValidateRecords
from udfs.metrics import DeadLetterMetrics

JOB_NAME = "riskstream-features"


@dataclass(frozen=True)
class FeatureSources:
    """The job's two inputs: Flink sources whose record timestamps are the event times (Kafka),
    or streams of raw payload strings that already carry timestamps and watermarks (the
    backfill's replay of files, see ``jobs/backfill.py``)."""

    transactions: Source | DataStream
    labels: Source | DataStream


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
) -> KafkaSource:
    """A string source over the topic of ``role``, from the earliest offset or, with
    ``features.start_timestamp_ms``, from each partition's first record stamped at or after it
    (offsets committed on checkpoints under ``group_id``, default ``features.group_id``);
    ``bounded`` stops at the offsets latest at start or, with ``features.stop_timestamp_ms``,
    before each partition's first record stamped at or after it."""
    f = settings.features
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka.bootstrap)
        .set_topics(settings.kafka.topic(role))
        .set_group_id(group_id or f.group_id)
        .set_starting_offsets(
            KafkaOffsetsInitializer.timestamp(f.start_timestamp_ms)
            if f.start_timestamp_ms
            else KafkaOffsetsInitializer.earliest()
        )
        .set_value_only_deserializer(SimpleStringSchema())
    )
    if bounded:
        builder = builder.set_bounded(
            KafkaOffsetsInitializer.timestamp(f.stop_timestamp_ms)
            if f.stop_timestamp_ms
            else KafkaOffsetsInitializer.latest()
        )
    return builder.build()


def kafka_sink(
    settings: Settings,
    role: str,
    guarantee: Guarantee = "AT_LEAST_ONCE",
    transactional_id_prefix: str = "",
    producer_config: dict[str, str] | None = None,
) -> KafkaSink:
    """A string sink to the topic of ``role``: at least once by default (consumers dedup by
    event_id); ``EXACTLY_ONCE`` writes in Kafka transactions committed on checkpoints, under a
    ``transactional_id_prefix`` that must be unique per job and stable across restarts."""
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
    for key, value in (producer_config or {}).items():
        builder = builder.set_property(key, value)
    return builder.build()


def watermarks(settings: Settings) -> WatermarkStrategy:
    """Bounded out-of-orderness + idleness on the Kafka record timestamps (no Python assigner)."""
    f = settings.features
    return WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(f.out_of_orderness_ms)
    ).with_idleness(Duration.of_millis(f.idleness_ms))


def _validated(
    env: StreamExecutionEnvironment,
    source: Source | DataStream,
    role: str,
    record_type: str,
    settings: Settings,
) -> DataStream:
    if isinstance(source, DataStream):
        raw = source
    else:
        raw = env.from_source(source, watermarks(settings), f"{role}-source").uid(
            f"features-{role}-source"
        )
    validate = ValidateRecords(
        record_type,
        settings.kafka.topic(role),
        settings.features.source,
        settings.features.max_future_skew_ms,
    )
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
) -> DataStream:
    """The job graph; returns the enriched-features stream (JSON strings)."""
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
        .process(TerminalStage(params), output_type=Types.STRING())
        .uid("features-terminal")
        .name("terminal features")
    )
    if sinks.features is not None:
        features.sink_to(sinks.features).uid("features-sink").name("features sink")
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
