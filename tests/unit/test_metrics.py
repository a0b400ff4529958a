"""udfs.metrics: the metric table, dead-letter reasons, and the registration helpers (with a fake
metric group that records how Flink would name each metric)."""

from __future__ import annotations

import json
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from udfs import metrics
from udfs.ingest import dead_letter_json


class FakeCounter:
    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n


class FakeGroup:
    """Records counters under their Prometheus names, as Flink's reporter builds them."""

    def __init__(self, registry: dict[str, FakeCounter], path: tuple[str, ...] = ()) -> None:
        self.registry, self.path = registry, path
        self.labels: dict[str, str] = {}

    def add_group(self, name: str, extra: str | None = None) -> FakeGroup:
        child = FakeGroup(self.registry, (*self.path, name))
        child.labels = dict(self.labels)
        if extra is not None:
            child.labels[name] = extra
        return child

    def counter(self, name: str) -> FakeCounter:
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        key = f"{metrics.operator_metric(name, *self.path)}{{{labels}}}"
        return self.registry.setdefault(key, FakeCounter())


def test_metric_names_are_unique_and_histograms_have_a_count_series() -> None:
    names = [m.name for m in metrics.METRICS]
    assert len(names) == len(set(names))
    latency = next(m for m in metrics.METRICS if m.kind == "histogram")
    assert {latency.name, f"{latency.name}_count"} <= metrics.exported_series()


def test_dead_letters_are_counted_by_record_type_and_fixed_reason() -> None:
    registry: dict[str, FakeCounter] = {}
    counting = cloudpickle.loads(cloudpickle.dumps(metrics.DeadLetterMetrics()))

    class Context:
        def get_metrics_group(self) -> FakeGroup:
            return FakeGroup(registry)

    counting.open(Context())
    letters = [
        ("{broken", "JSON is malformed: unexpected end"),
        ('{"a": 1}', "Object missing required field `event_id`"),
        ("{}", "event_time 9 is 400000 ms ahead of the wall clock; expected at most 300000 ms"),
        ("{}", "event_time 9 is 400000 ms ahead of the wall clock; expected at most 300000 ms"),
    ]
    for raw, reason in letters:
        letter = dead_letter_json(
            raw,
            record_type="transaction",
            reason=reason,
            field=None,
            topic="t",
            source="s",
            record_time=None,
        )
        assert counting.map(letter) == letter  # passes through unchanged
    name = next(m.name for m in metrics.METRICS if m.name.endswith("deadLetters"))
    found = {key: c.value for key, c in registry.items()}
    assert found == {
        f"{name}{{reason=not_json,record_type=transaction}}": 1,
        f"{name}{{reason=schema,record_type=transaction}}": 1,
        f"{name}{{reason=future_event_time,record_type=transaction}}": 2,
    }
    assert counting.map("not json at all") == "not json at all"
    assert any("reason=other,record_type=unknown" in key for key in registry)


def test_labelled_counters_register_names_of_the_table() -> None:
    registry: dict[str, FakeCounter] = {}
    decisions = metrics.LabelledCounters(
        FakeGroup(registry), metrics.DECISIONS, metrics.LABEL_DECISION, fixed=("approve",)
    )
    decisions.inc("block", 3)
    name = next(m.name for m in metrics.METRICS if m.name.endswith("_decision_decisions"))
    assert {k: c.value for k, c in registry.items()} == {
        f"{name}{{decision=approve}}": 0,
        f"{name}{{decision=block}}": 3,
    }


def test_latency_histogram_without_a_java_group_records_nothing() -> None:
    histogram: Any = metrics.LatencyHistogram(FakeGroup({}), metrics.STAGES)
    histogram.update(metrics.STAGE_SCORE, 12)  # process mode / unit tests: a no-op
    assert cloudpickle.loads(cloudpickle.dumps(metrics.LatencyHistogram(None, ())))


def test_reason_labels_stay_in_the_vocabulary() -> None:
    vocabulary = json.dumps(next(m.meaning for m in metrics.METRICS if "deadLetters" in m.name))
    for reason in ("", "payload of 2000000 bytes is larger than 1048576", "tombstone: null value"):
        assert metrics.reason_label(reason) in vocabulary
