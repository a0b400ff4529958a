"""Windowed analytics: per-merchant minutes, per-MCC hours and global minutes, with revisions.

``attach(scored, sinks, settings)`` adds the windows to any stream of
:class:`udfs.analytics.records.ScoredPayment` records that carries event-time timestamps and
watermarks (the scoring job calls it on its scored stream)::

    scored -> as rows (plain tuples)
           -> key by merchant shard -> ShardStage (dedup, too-late?, merchant windows, partials)
           -> key by "<kind>|<key>" -> MergeStage (MCC-hour and global-minute windows, summed)
    window results (both stages) -> analytics topic      (WindowAnalytics JSON, revisioned)
    too-late payments            -> late-events topic    (how late, which window)

Both topics are written exactly once by default (Kafka transactions committed on checkpoints:
read them with ``isolation.level=read_committed``).

The standalone job (``riskstream run --job analytics``) reads the transactions topic with the
feature job's source, watermarks (per partition, with idleness) and validator, and counts every
payment as unscored (``decision=None, score=None``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import KafkaSink

from core.config import Settings, check_job, with_overrides
from core.errors import JobError
from jobs import features
from jobs.entry import run_job_script
from jobs.env import create_env
from udfs.analytics.records import payment_row, unscored_row
from udfs.analytics.stages import (
    LATE_TAG,
    RESULTS_TAG,
    MergeStage,
    ShardKey,
    ShardStage,
    view_key,
)
from udfs.analytics.windows import WindowParams
from udfs.ingest import DEAD_LETTER_TAG

JOB_NAME = "riskstream-analytics"


@dataclass(frozen=True)
class AnalyticsSinks:
    """Where window results and too-late payments go; the standalone job also dead-letters."""

    analytics: KafkaSink
    late_events: KafkaSink
    dead_letter: KafkaSink | None = None


def window_params(settings: Settings) -> WindowParams:
    """The pure logic's parameters from the ``analytics`` settings."""
    return WindowParams.from_settings(settings.analytics)


def attach(scored: DataStream, sinks: AnalyticsSinks, settings: Settings) -> DataStream:
    """Add the three window views to ``scored`` (ScoredPayment records with event timestamps).

    Returns the window-results stream (JSON strings), which is also written to ``sinks.analytics``.
    """
    rows = (
        scored.map(payment_row, output_type=Types.PICKLED_BYTE_ARRAY())
        .uid("analytics-rows")
        .name("payments as rows")
    )
    return _windows(rows, sinks, settings)


def _windows(rows: DataStream, sinks: AnalyticsSinks, settings: Settings) -> DataStream:
    """The window stages and sinks over a stream of :data:`udfs.analytics.records.PaymentRow` s."""
    params, source = window_params(settings), settings.analytics.source
    key = ShardKey(settings.analytics.shards)
    shards = (
        rows.key_by(key, Types.INT())
        .process(ShardStage(params, source, key), output_type=Types.PICKLED_BYTE_ARRAY())
        .uid("analytics-shard-windows")
        .name("merchant windows and view partials")
    )
    views = (
        shards.key_by(view_key, Types.STRING())
        .process(MergeStage(params, source), output_type=Types.STRING())
        .uid("analytics-view-merge")
        .name("mcc and global windows")
    )
    results = shards.get_side_output(RESULTS_TAG).union(views.get_side_output(RESULTS_TAG))
    late = shards.get_side_output(LATE_TAG)
    results.sink_to(sinks.analytics).uid("analytics-results-sink").name("analytics sink")
    late.sink_to(sinks.late_events).uid("analytics-late-events-sink").name("late-events sink")
    return results


def build(
    env: StreamExecutionEnvironment,
    source: features.FeatureInput,
    sinks: AnalyticsSinks,
    settings: Settings,
) -> DataStream:
    """Standalone graph: transactions -> validate (dead letters) -> unscored payments -> windows."""
    if sinks.dead_letter is None:
        raise JobError("the standalone analytics job needs a dead-letter sink")
    raw, live = features.raw_stream(env, source, "analytics-transactions-source")
    validate = features.validator(
        settings, "transaction", "transactions", settings.analytics.source, live
    )
    transactions = (
        raw.process(validate, output_type=Types.PICKLED_BYTE_ARRAY())
        .uid("analytics-validate")
        .name("validate transactions")
    )
    transactions.get_side_output(DEAD_LETTER_TAG).sink_to(sinks.dead_letter).uid(
        "analytics-dead-letter-sink"
    ).name("dead letters")
    rows = (
        transactions.map(unscored_row, output_type=Types.PICKLED_BYTE_ARRAY())
        .uid("analytics-unscored")
        .name("as unscored payments")
    )
    return _windows(rows, sinks, settings)


def kafka_source(settings: Settings, bounded: bool = False) -> features.KafkaInput:
    """The feature job's transactions source, under the analytics consumer group."""
    own_group = with_overrides(settings, features={"group_id": settings.analytics.group_id})
    return features.kafka_source(own_group, "transactions", bounded)


def kafka_sinks(settings: Settings) -> AnalyticsSinks:
    """Sinks to the analytics and late-events topics with ``analytics.guarantee`` (exactly once by
    default: Kafka transactions under ``analytics.transactional_id_prefix``, committed on
    checkpoints), and an at-least-once dead-letter sink."""
    a = settings.analytics
    conf: dict[str, str] = {}
    check_job(settings, "analytics")  # EXACTLY_ONCE needs checkpointing
    if a.guarantee == DeliveryGuarantee.EXACTLY_ONCE.name:
        conf = {"transaction.timeout.ms": str(a.transaction_timeout_ms)}

    def sink(role: str) -> KafkaSink:
        return features.kafka_sink(
            settings, role, a.guarantee, a.transactional_id_prefix, producer_config=conf
        )

    return AnalyticsSinks(
        analytics=sink("analytics"),
        late_events=sink("late_events"),
        dead_letter=features.kafka_sink(settings, "dead_letter"),
    )


def main(settings: Settings, bounded: bool = False) -> None:
    """Build and run the standalone job (mini-cluster or ``flink run``)."""
    env = create_env(settings)
    env.get_config().set_auto_watermark_interval(settings.analytics.watermark_interval_ms)
    build(env, kafka_source(settings, bounded), kafka_sinks(settings), settings)
    env.execute(JOB_NAME)


def cli(argv: Sequence[str] | None = None) -> None:
    """Entry of ``flink run -pym jobs.analytics`` (``riskstream run --target cluster``)."""
    run_job_script(main, __doc__, argv)


if __name__ == "__main__":
    cli(sys.argv[1:])
