"""Walking skeleton: Kafka JSON events -> per-key ValueState counter -> Kafka.

Proves the whole chain on real parts (connector jar, thread-mode keyed state, Kafka in and out) on
both the mini-cluster and the standalone cluster. Run it with ``riskstream run --job skeleton``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence

from pyflink.common import Types, WatermarkStrategy
from pyflink.common.serialization import ByteArraySchema, SimpleStringSchema
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)

from core.config import Settings
from jobs.entry import run_job_script
from jobs.env import create_env
from udfs.counter import KeyCounter, key_of

JOB_NAME = "riskstream-skeleton"


def kafka_source(settings: Settings, bounded: bool) -> KafkaSource:
    """Source over the skeleton's input topic, from the earliest offset, as raw bytes (a
    tombstone is skipped, not a failure), with the clients' security settings.

    ``bounded`` stops at the offsets that are latest when the job starts (tests, one-off runs).
    """
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka.bootstrap)
        .set_topics(settings.skeleton.input_topic)
        .set_group_id(settings.skeleton.group_id)
        .set_starting_offsets(KafkaOffsetsInitializer.earliest())
        .set_value_only_deserializer(ByteArraySchema())
    )
    for key, value in settings.kafka.java_client_config().items():
        builder = builder.set_property(key, value)
    if bounded:
        builder = builder.set_bounded(KafkaOffsetsInitializer.latest())
    return builder.build()


def kafka_sink(settings: Settings) -> KafkaSink:
    """At-least-once sink to the skeleton's output topic, with the clients' security settings."""
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(settings.kafka.bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(settings.skeleton.output_topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
    )
    for key, value in settings.kafka.java_client_config().items():
        builder = builder.set_property(key, value)
    return builder.build()


def build(
    env: StreamExecutionEnvironment, source: KafkaSource, sink: KafkaSink, settings: Settings
) -> DataStream:
    """The job graph: source -> key by ``skeleton.key_field`` -> counter -> sink."""
    events = env.from_source(source, WatermarkStrategy.no_watermarks(), "skeleton-source").uid(
        "skeleton-source"
    )
    counts = (
        events.key_by(
            functools.partial(key_of, key_field=settings.skeleton.key_field), Types.STRING()
        )
        .process(KeyCounter(), output_type=Types.STRING())
        .uid("skeleton-counter")
        .name("count per key")
    )
    counts.sink_to(sink).uid("skeleton-sink").name("skeleton-sink")
    return counts


def main(settings: Settings, bounded: bool = False) -> None:
    """Build and run the job in this process's environment (mini-cluster or ``flink run``)."""
    env = create_env(settings)
    build(env, kafka_source(settings, bounded), kafka_sink(settings), settings)
    env.execute(JOB_NAME)


def cli(argv: Sequence[str] | None = None) -> None:
    """Entry for ``flink run -pym jobs.skeleton``, used by ``riskstream run --target cluster``."""
    run_job_script(main, __doc__, argv)


if __name__ == "__main__":
    cli(sys.argv[1:])
