"""The riskstream metrics: one table of what the jobs export, and the helpers that register them.

:data:`METRICS` is the single list of the metrics a dashboard or an alert may use, with the name
Flink's Prometheus reporter gives each one (docs/observability.md renders the same table, and the
Grafana dashboard's test checks every query against it). Operators register through the helpers
here so names cannot drift from the table:

* counters: :func:`counter` (optionally with one label, a Flink key-value group);
* latency histograms: :class:`LatencyHistogram`, held on the Java side.

Thread-mode trap: a Python gauge callback (``MetricGroup.gauge(name, fn)``) makes Flink's metrics
thread, and so the Prometheus reporter on every scrape, call into the embedded interpreter; a query
racing a task's teardown crashed a TaskManager (commit 15dcca9, :mod:`udfs.java_gauge`). So nothing
here registers a Python callback in thread mode: counters are Java counters, gauges are
:class:`udfs.java_gauge.JavaGauge` (the task thread pushes the value) and a histogram is Flink's
``DescriptiveStatisticsHistogram`` updated from the task thread. Only the process-mode scoring UDF
uses a Python gauge: there the callback runs in the Python worker at the end of each bundle and
Java keeps the last value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pyflink.datastream import MapFunction, RuntimeContext

GROUP = "riskstream"
"""The metric group of every riskstream metric (``flink_..._operator_riskstream_<name>``)."""
OPERATOR_SCOPE = "flink_taskmanager_job_task_operator"
JOB_SCOPE = "flink_jobmanager_job"
JAVA_HISTOGRAM_CLASS = "org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram"
DEFAULT_WINDOW = 2048
MAX_LATENCY_MS = 2**53
"""Latencies are clamped to this (a Java long, and exact as a Prometheus float)."""

Kind = Literal["counter", "gauge", "histogram"]
Origin = Literal["riskstream", "flink"]

# Names used in code (the operators import these, so the table below is what they register).
EVENTS_IN = "eventsIn"
DEAD_LETTERS = "deadLetters"
DECISIONS = "decisions"
LATENCY = "latencyMs"
BREAKER_OPEN = "breakerOpenModels"
GUARDRAIL_BLOCK_SHARE = "guardrailBlockSharePpm"
GUARDRAIL_STEP_UP_SHARE = "guardrailStepUpSharePpm"
GUARDRAIL_OUT_OF_RANGE_SHARE = "guardrailOutOfRangeSharePpm"
GUARDRAIL_WINDOW_ROWS = "guardrailWindowRows"
GUARDRAIL_SAFE_MODE = "guardrailSafeMode"
GUARDRAIL_SAFE_MODE_DECISIONS = "guardrailSafeModeDecisions"
GUARDRAIL_ALERTS = "guardrailAlerts"
LABEL_KIND = "kind"
LABEL_RECORD_TYPE = "record_type"
LABEL_REASON = "reason"
LABEL_DECISION = "decision"
LABEL_STAGE = "stage"
STAGE_INGEST = "ingest"
STAGE_FEATURES = "features"
STAGE_SCORE = "score"
STAGE_TOTAL = "total"
STAGES = (STAGE_INGEST, STAGE_FEATURES, STAGE_SCORE, STAGE_TOTAL)

# Dead-letter reasons as a small fixed vocabulary (a label must not carry free text).
REASON_NOT_JSON = "not_json"
REASON_SCHEMA = "schema"
REASON_FUTURE = "future_event_time"
REASON_PAST = "past_event_time"
REASON_TOO_LARGE = "too_large"
REASON_EMPTY = "empty"
REASON_ENCODING = "encoding"
REASON_FEATURE_SET = "feature_set"
REASON_OTHER = "other"
_REASON_PATTERNS = (
    (REASON_EMPTY, re.compile(r"\b(empty|null value|tombstone)\b", re.I)),
    (REASON_TOO_LARGE, re.compile(r"\b(too large|larger than|exceeds|truncated)\b", re.I)),
    (REASON_ENCODING, re.compile(r"\b(utf-?8|decode|encoding)\b", re.I)),
    (REASON_NOT_JSON, re.compile(r"\b(json|malformed|parse)\b", re.I)),
    (REASON_FUTURE, re.compile(r"\bahead of\b|\bfuture\b", re.I)),
    (REASON_PAST, re.compile(r"\b(older than|before|too old)\b", re.I)),
    (REASON_FEATURE_SET, re.compile(r"\bfeature[- ]set\b|\bhash\b", re.I)),
)


@dataclass(frozen=True)
class Metric:
    """One exported metric: its Prometheus name, kind, labels and meaning."""

    name: str
    kind: Kind
    meaning: str
    operator: str
    labels: tuple[str, ...] = ()
    origin: Origin = "riskstream"
    lazy: bool = False
    """Exported only from the first event it counts (a counter of the process-mode scoring UDF,
    a dead-letter reason), not from the job's start."""

    @property
    def series(self) -> tuple[str, ...]:
        """The series names Prometheus stores for it (a histogram is a summary: quantiles under
        its own name, plus ``_count``)."""
        if self.kind == "histogram":
            return (self.name, f"{self.name}_count")
        return (self.name,)


def operator_metric(name: str, *path: str) -> str:
    """The Prometheus name Flink's reporter gives an operator-scope metric of group ``path``.

    >>> operator_metric("decisions", "riskstream", "decision")
    'flink_taskmanager_job_task_operator_riskstream_decision_decisions'
    """
    return "_".join((OPERATOR_SCOPE, *path, name))


def _ours(name: str, *labels: str) -> str:
    """A riskstream metric's name: each label is a key-value group, so its key joins the name."""
    return operator_metric(name, GROUP, *labels)


METRICS: tuple[Metric, ...] = (
    Metric(_ours(EVENTS_IN, LABEL_RECORD_TYPE), "counter",
           "records read from the input topics, before validation", "validate <topic>",
           (LABEL_RECORD_TYPE,)),
    Metric(_ours(DEAD_LETTERS, LABEL_RECORD_TYPE, LABEL_REASON), "counter",
           "records sent to the dead-letter topic, by reason (" + ", ".join(
               (REASON_NOT_JSON, REASON_SCHEMA, REASON_FUTURE, REASON_PAST, REASON_TOO_LARGE,
                REASON_EMPTY, REASON_ENCODING, REASON_FEATURE_SET, REASON_OTHER)) + ")",
           "count dead letters", (LABEL_RECORD_TYPE, LABEL_REASON), lazy=True),
    Metric(operator_metric("lateEvents"), "counter",
           "payments behind the watermark by more than features.allowed_lateness_ms",
           "card features"),
    Metric(operator_metric("duplicateEvents"), "counter",
           "re-sent payments (same event_id) recognised by the card stage", "card features"),
    Metric(operator_metric("watermarkLagMs"), "gauge",
           "wall clock minus the card stage's event-time watermark (ms)", "card features"),
    Metric(_ours(LATENCY, LABEL_STAGE), "histogram",
           "latency in ms by stage: ingest = event time to validation, features = event time "
           "to features complete, score = features complete to decision emitted (scoring UDF "
           "and decide), total = event time to decision; quantile label 0.5 .. 0.999",
           "validate <topic>, decide", (LABEL_STAGE, "quantile")),
    Metric(_ours(DECISIONS, LABEL_DECISION), "counter",
           "decisions by outcome (approve, step_up, block)", "scoring UDF", (LABEL_DECISION,)),
    Metric(operator_metric("rows", "scoring"), "counter", "payments scored", "scoring UDF",
           lazy=True),
    Metric(operator_metric("degradedRows", "scoring"), "counter",
           "payments decided without the full ensemble (shed or rules only)", "scoring UDF",
           lazy=True),
    Metric(operator_metric("shedBatches", "scoring"), "counter",
           "batches scored in load-shedding mode (lag over scoring.latency_budget_ms, or "
           "replays of shed decisions)", "scoring UDF", lazy=True),
    Metric(operator_metric("replayedRows", "scoring"), "counter",
           "payments decided before a restart, scored again in the mode of their published "
           "decision (scoring.replay_memory_records)", "scoring UDF", lazy=True),
    Metric(operator_metric("modelFailures", "scoring"), "counter",
           "model calls that raised or returned NaN", "scoring UDF", lazy=True),
    Metric(_ours(BREAKER_OPEN), "gauge",
           "models skipped by an open circuit breaker in the last batch", "scoring UDF"),
    Metric(_ours(GUARDRAIL_BLOCK_SHARE), "gauge",
           "the model's block share (before the safe mode) in the last closed guardrail window "
           "(guardrails.window_ms of event time), parts per million", "decide"),
    Metric(_ours(GUARDRAIL_STEP_UP_SHARE), "gauge",
           "the model's step-up share in the last closed guardrail window, parts per million",
           "decide"),
    Metric(_ours(GUARDRAIL_OUT_OF_RANGE_SHARE), "gauge",
           "share of the last closed guardrail window's decisions with a feature outside its "
           "training range (model card), parts per million", "decide"),
    Metric(_ours(GUARDRAIL_WINDOW_ROWS), "gauge",
           "decisions in the last closed guardrail window (judged from guardrails.min_rows)",
           "decide"),
    Metric(_ours(GUARDRAIL_SAFE_MODE), "gauge",
           "1 while the guardrails' safe mode is on (blocks become step-ups), else 0", "decide"),
    Metric(_ours(GUARDRAIL_SAFE_MODE_DECISIONS), "counter",
           "blocks the safe mode turned into step-ups", "decide"),
    Metric(_ours(GUARDRAIL_ALERTS, LABEL_KIND), "counter",
           "guardrail alerts written, by kind (safe_mode_on, safe_mode_off, out_of_range)",
           "decide", (LABEL_KIND,), lazy=True),
    Metric(operator_metric("tooLateEvents"), "counter",
           "decided payments whose analytics window had closed", "merchant windows"),
    Metric(operator_metric("numRecordsIn"), "counter",
           "Flink's records into each operator (label operator_name)", "every operator",
           ("operator_name",), "flink"),
    Metric(operator_metric("currentOutputWatermark"), "gauge",
           "Flink's event-time watermark of each operator (epoch ms)", "every operator",
           ("operator_name",), "flink"),
    Metric(f"{JOB_SCOPE}_lastCheckpointDuration", "gauge",
           "duration of the last completed checkpoint (ms)", "job", (), "flink"),
    Metric(f"{JOB_SCOPE}_lastCheckpointSize", "gauge",
           "bytes written by the last checkpoint (incremental part)", "job", (), "flink"),
    Metric(f"{JOB_SCOPE}_lastCheckpointFullSize", "gauge",
           "full state size of the last checkpoint (bytes)", "job", (), "flink"),
    Metric(f"{JOB_SCOPE}_numberOfCompletedCheckpoints", "counter",
           "completed checkpoints", "job", (), "flink"),
    Metric(f"{JOB_SCOPE}_numberOfFailedCheckpoints", "counter",
           "failed checkpoints", "job", (), "flink"),
    Metric(f"{JOB_SCOPE}_numRestarts", "counter", "job restarts", "job", (), "flink"),
)  # fmt: skip


def exported_series() -> frozenset[str]:
    """Every series name of :data:`METRICS` (what a dashboard query may name)."""
    return frozenset(series for metric in METRICS for series in metric.series)


def reason_label(reason: str) -> str:
    """The fixed label of a dead letter's free-text reason.

    >>> reason_label("event_time 9 is 400000 ms ahead of the wall clock")
    'future_event_time'
    >>> reason_label("expected `str`, got `int` - at `$.card_id`")
    'schema'
    """
    for label, pattern in _REASON_PATTERNS:
        if pattern.search(reason):
            return label
    return REASON_SCHEMA if reason else REASON_OTHER


def counter(group: Any, name: str, label: str | None = None, value: str | None = None) -> Any:
    """A counter ``name`` in the riskstream group, with ``label=value`` if given."""
    scoped = group.add_group(GROUP)
    if label is not None:
        scoped = scoped.add_group(label, value)
    return scoped.counter(name)


class LabelledCounters:
    """Counters ``name{label=value}``, created on the first use of each value."""

    def __init__(self, group: Any, name: str, label: str, fixed: Iterable[str] = ()) -> None:
        self._group, self._name, self._label = group, name, label
        self._counters: dict[str, Any] = {}
        for value in fixed:
            self._get(value).inc(0)  # a process-mode (Beam) counter is reported once updated

    def inc(self, value: str, n: int = 1) -> None:
        """Add ``n`` to the counter of ``value``."""
        self._get(value).inc(n)

    def _get(self, value: str) -> Any:
        found = self._counters.get(value)
        if found is None:
            found = self._counters[value] = counter(self._group, self._name, self._label, value)
        return found


class LatencyHistogram:
    """Latency histograms ``latencyMs{stage=...}`` held in Java (thread mode), see module doc.

    Outside thread mode (no Java metric group behind the Python one) it records nothing; the
    default ``flink.execution_mode`` is thread."""

    def __init__(self, group: Any, stages: Iterable[str], window: int = DEFAULT_WINDOW) -> None:
        self._histograms: dict[str, Any] = {}
        java_group = getattr(group, "_metrics", None)
        if java_group is None:
            return
        from pemja import findClass  # type: ignore[import-untyped]  # thread-mode worker only

        histogram_class = findClass(JAVA_HISTOGRAM_CLASS)
        for stage in stages:
            scoped = java_group.addGroup(GROUP).addGroup(LABEL_STAGE, stage)
            self._histograms[stage] = scoped.histogram(LATENCY, histogram_class(window))

    def update(self, stage: str, millis: int) -> None:
        """Record one latency of ``stage`` (negative values, from skewed clocks, count as 0)."""
        histogram = self._histograms.get(stage)
        if histogram is not None:
            histogram.update(min(max(int(millis), 0), MAX_LATENCY_MS))


class DeadLetterMetrics(MapFunction):  # type: ignore[misc]
    """Pass-through before the dead-letter sink: counts each letter by record type and reason."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str], Any] = {}
        self._group: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        """Keep the metric group; counters are created per (record type, reason)."""
        self._group = runtime_context.get_metrics_group()

    def map(self, value: str) -> str:
        """Count ``value`` (a DeadLetter JSON) and return it unchanged."""
        try:
            letter = json.loads(value)
            record_type = str(letter.get("record_type") or "unknown")
            reason = reason_label(str(letter.get("reason") or ""))
        except (ValueError, AttributeError):
            record_type, reason = "unknown", REASON_OTHER
        key = (record_type, reason)
        found = self._counters.get(key)
        if found is None:
            scoped = self._group.add_group(GROUP).add_group(LABEL_RECORD_TYPE, record_type)
            found = self._counters[key] = scoped.add_group(LABEL_REASON, reason).counter(
                DEAD_LETTERS
            )
        found.inc()
        return value


def markdown_table() -> str:
    """:data:`METRICS` as the Markdown table of docs/observability.md (a unit test keeps the
    document equal to it)."""
    lines = [
        "| Prometheus name | kind | labels | from | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in METRICS:
        labels = ", ".join(m.labels) or "-"
        origin = m.operator if m.origin == "riskstream" else f"{m.operator} (Flink's own)"
        note = " Exported from its first event." if m.lazy else ""
        lines.append(f"| `{m.name}` | {m.kind} | {labels} | {origin} | {m.meaning}.{note} |")
    return "\n".join(lines) + "\n"
