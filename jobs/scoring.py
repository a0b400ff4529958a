"""Scoring job: Event -> Feature -> Prediction -> Action in one Flink job.

Graph::

    transactions, labels (Kafka) -> the feature graph of jobs/features.py (validation with dead
        letters, card / device / terminal keyed stages)
      -> enriched features as narrow rows (id, lag stamp, packed features, packed record), with
         their event time, made by the terminal stage itself (udfs/feature_gate.py)
      -> Table API (rowtime + SOURCE_WATERMARK(): event time and watermarks kept)
      -> pandas UDF: rules + every champion model (onnxruntime) + ensemble, per Arrow batch;
         three columns out (packed numbers, reason codes, model version)
      -> back to the DataStream API -> DecisionOutputs (reads its five fields by position)
      -> decisions (at least once, deterministic decision ids), prediction log (exactly once by
         default), alerts (blocked payments), guardrail alerts (docs/scoring.md, "Guardrails")
      -> windowed analytics of the decided payments (jobs/analytics.py ``attach``; analytics and
         late-events topics exactly once by default)

Run it with ``riskstream run --job scoring``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors import Sink
from pyflink.table import DataTypes, Schema, StreamTableEnvironment
from pyflink.table.expressions import col

from core.config import Guarantee, Settings, check_job
from features.output import FEATURE_SET_HASH
from jobs import features as feature_job
from jobs.analytics import AnalyticsSinks, attach
from jobs.entry import run_job_script
from jobs.env import create_env
from scoring import registry
from scoring.guardrails import GuardrailPolicy
from scoring.scorer import ScoringPolicy
from udfs.decision_memory import MemorySource
from udfs.decisions import (
    ALERTS_TAG,
    GUARDRAIL_TAG,
    PREDICTION_LOG_TAG,
    SCORED_COLUMNS,
    SCORED_TAG,
    DecisionOutputs,
)
from udfs.feature_gate import REFUSED_TAG, FeatureRows
from udfs.feature_rows import EVENT_ID, FEATURES, LAG_TIME, RECORD
from udfs.guardrails import DecisionGuard
from udfs.metrics import DeadLetterMetrics
from udfs.score_udf import score_function

JOB_NAME = "riskstream-scoring"
ROWTIME = "rowtime"
SCORE = "s"
BUNDLE_TIME_OPTION = "python.fn-execution.bundle.time"


@dataclass(frozen=True)
class ScoringSinks:
    """The job's outputs."""

    decisions: Sink
    prediction_log: Sink
    alerts: Sink
    dead_letter: Sink
    features: Sink | None = None
    analytics: AnalyticsSinks | None = None
    guardrail_alerts: Sink | None = None


def policy(settings: Settings) -> ScoringPolicy:
    """Degraded-mode policy from the ``scoring`` settings."""
    return ScoringPolicy.from_settings(settings.scoring)


def replay_memory(settings: Settings) -> MemorySource | None:
    """Where the scoring UDF reads back the published decisions (``scoring.replay_memory_records``
    per partition of the decisions topic; None when 0)."""
    records = settings.scoring.replay_memory_records
    if records <= 0:
        return None
    return MemorySource(settings.kafka, settings.kafka.topic("decisions"), records)


def feature_gate(settings: Settings) -> FeatureRows:
    """Rows for scoring; features of another feature-set hash than the champion's (as registered
    at submission: the UDF refuses at load a champion whose hash is not the code's) are dead
    letters."""
    models = settings.registry
    version = registry.champion(models)
    if version is None:  # the UDF's open() fails with the registry's own message
        expected, version = FEATURE_SET_HASH, "none"
    else:
        expected = str(registry.read_card(models, version)["feature_set"]["spec_hash"])
    return FeatureRows(
        expected,
        version,
        topic=settings.kafka.topic("features"),
        source=settings.scoring.source_name,
        max_bytes=settings.ingest.dead_letter_max_bytes,
    )


def guard(settings: Settings) -> DecisionGuard | None:
    """The decision step's guardrails (``guardrails`` settings), or None when they are off."""
    if not settings.guardrails.enabled:
        return None
    return DecisionGuard(
        GuardrailPolicy.from_settings(settings.guardrails),
        str(settings.registry),
        settings.scoring.source_name,
    )


def build(
    env: StreamExecutionEnvironment,
    sources: feature_job.FeatureSources,
    sinks: ScoringSinks,
    settings: Settings,
) -> DataStream:
    """The job graph; returns the decisions stream (JSON strings)."""
    # The terminal stage hands each enriched record to the gate itself (no JSON, no operator of
    # its own) and is chained to nothing: on a restart the scoring UDF's task (its pandas worker
    # process and models) then opens at once, instead of after every thread-mode Python operator
    # chained with it has opened in the TaskManager's one embedded interpreter (``decide`` starts
    # a new chain for the same reason). docs/operations.md, "Where the time goes".
    rows = feature_job.build(
        env,
        sources,
        feature_job.FeatureSinks(sinks.features, sinks.dead_letter),
        settings,
        gate=feature_gate(settings),
    )
    (
        rows.get_side_output(REFUSED_TAG)
        .map(DeadLetterMetrics(), output_type=Types.STRING())
        .uid("scoring-refused-features-metrics")
        .name("count refused features")
        .sink_to(sinks.dead_letter)
        .uid("scoring-refused-features-sink")
        .name("refused features")
    )
    t_env = StreamTableEnvironment.create(env)
    # Only the Table API's Python operator (the scoring UDF) reads the table config.
    t_env.get_config().set(BUNDLE_TIME_OPTION, str(settings.scoring.bundle_time_ms))
    table = t_env.from_data_stream(
        rows,
        Schema.new_builder()
        .column_by_metadata(ROWTIME, DataTypes.TIMESTAMP_LTZ(3))
        .watermark(ROWTIME, "SOURCE_WATERMARK()")
        .build(),
    )
    score = score_function(settings.registry, policy(settings), replay_memory(settings))
    alerting = settings.guardrails.enabled and sinks.guardrail_alerts is not None
    # Lean columns: the UDF reads the id, the lag stamp and the packed features; the packed
    # record and features ride through to the decision step, which reads its row by position.
    scored = table.select(
        col(RECORD),
        col(FEATURES),
        score(col(EVENT_ID), col(LAG_TIME), col(FEATURES)).alias(SCORE),
    ).select(
        *[col(c) if c in (RECORD, FEATURES) else col(SCORE).get(c).alias(c) for c in SCORED_COLUMNS]
    )
    decisions = (
        t_env.to_data_stream(scored)
        .process(
            DecisionOutputs(
                settings.scoring.source_name,
                analytics=sinks.analytics is not None,
                guard=guard(settings),
                guardrail_alerts=alerting,
            ),
            output_type=Types.STRING(),
        )
        .uid("scoring-decisions")
        .name("decide")
        .start_new_chain()
    )
    decisions.sink_to(sinks.decisions).uid("scoring-decisions-sink").name("decisions sink")
    decisions.get_side_output(PREDICTION_LOG_TAG).sink_to(sinks.prediction_log).uid(
        "scoring-prediction-log-sink"
    ).name("prediction log sink")
    decisions.get_side_output(ALERTS_TAG).sink_to(sinks.alerts).uid("scoring-alerts-sink").name(
        "alerts sink"
    )
    if alerting and sinks.guardrail_alerts is not None:
        decisions.get_side_output(GUARDRAIL_TAG).sink_to(sinks.guardrail_alerts).uid(
            "scoring-guardrail-alerts-sink"
        ).name("guardrail alerts sink")
    if sinks.analytics is not None:
        attach(decisions.get_side_output(SCORED_TAG), sinks.analytics, settings)
    return decisions


def kafka_sinks(settings: Settings) -> ScoringSinks:
    """The Kafka sinks, with the configured delivery guarantees."""
    s = settings.scoring
    check_job(settings, "scoring")  # an EXACTLY_ONCE sink needs checkpointing
    exactly_once = "EXACTLY_ONCE"
    fast = {"linger.ms": str(s.linger_ms)}
    transactional = {"transaction.timeout.ms": str(s.transaction_timeout_ms)}

    def sink(role: str, guarantee: Guarantee) -> Sink:
        conf = fast | (transactional if guarantee == exactly_once else {})
        return feature_job.kafka_sink(
            settings, role, guarantee, s.transactional_id_prefix, producer_config=conf
        )

    return ScoringSinks(
        decisions=sink("decisions", s.decisions_guarantee),
        prediction_log=sink("predictions", s.prediction_log_guarantee),
        alerts=sink("alerts", s.decisions_guarantee),
        guardrail_alerts=sink("guardrail_alerts", s.decisions_guarantee)
        if settings.guardrails.enabled
        else None,
        dead_letter=feature_job.kafka_sink(settings, "dead_letter"),
        features=feature_job.kafka_sink(settings, "features") if s.write_features else None,
        analytics=AnalyticsSinks(
            sink("analytics", s.analytics_guarantee), sink("late_events", s.analytics_guarantee)
        )
        if s.analytics
        else None,
    )


def prepare(settings: Settings, bounded: bool = False) -> StreamExecutionEnvironment:
    """The environment holding the whole job on Kafka, ready to execute (or execute_async)."""
    env = create_env(settings)
    group = settings.scoring.group_id
    sources = feature_job.FeatureSources(
        feature_job.kafka_source(settings, "transactions", bounded, group),
        feature_job.kafka_source(settings, "labels", bounded, group),
    )
    build(env, sources, kafka_sinks(settings), settings)
    return env


def main(settings: Settings, bounded: bool = False) -> None:
    """Build and run the job in this process's environment (mini-cluster or ``flink run``)."""
    prepare(settings, bounded).execute(JOB_NAME)


def cli(argv: Sequence[str] | None = None) -> None:
    """Entry of ``flink run -pym jobs.scoring`` (``riskstream run --target cluster``)."""
    run_job_script(main, __doc__, argv)


if __name__ == "__main__":
    cli(sys.argv[1:])
