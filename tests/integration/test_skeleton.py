"""The walking skeleton on real parts: Kafka in, thread-mode keyed ValueState, Kafka out."""

from __future__ import annotations

import collections
import json

import pytest

from core.config import Settings, replace, with_overrides
from riskstream import jobrunner
from riskstream.infra.cluster import LocalCluster
from riskstream.support.kafka_io import produce_at_rate, producer, read_values
from riskstream.support.topics import create_topic

pytestmark = pytest.mark.integration

RECORDS = 600
KEYS = 13


def _prepare(settings: Settings, name: str) -> tuple[Settings, collections.Counter[str]]:
    source = create_topic(settings, f"{name}-in", partitions=3)
    sink = create_topic(settings, f"{name}-out", partitions=1)
    records = [(f"k{i % KEYS}", {"id": f"k{(i * 7) % KEYS}", "seq": i}) for i in range(RECORDS)]
    encoded = [(source, json.dumps(doc).encode(), key, None) for key, doc in records]
    assert (
        produce_at_rate(producer(settings, **{"enable.idempotence": "true"}), encoded, None)
        == RECORDS
    )
    expected = collections.Counter(str(document["id"]) for _key, document in records)
    job = replace(
        settings.skeleton, input_topic=source, output_topic=sink, group_id=f"{name}-group"
    )
    return replace(settings, skeleton=job), expected


def _assert_counts(settings: Settings, expected: collections.Counter[str]) -> None:
    outputs = [
        json.loads(v)
        for v in read_values(settings, settings.skeleton.output_topic, committed=False)
    ]
    assert len(outputs) == RECORDS
    seen: dict[str, list[int]] = collections.defaultdict(list)
    for out in outputs:
        seen[out["key"]].append(out["count"])
    assert {k: max(v) for k, v in seen.items()} == dict(expected)
    for key, counts in seen.items():
        assert sorted(counts) == list(range(1, expected[key] + 1)), key


def test_skeleton_on_mini_cluster(kafka_settings: Settings) -> None:
    settings, expected = _prepare(kafka_settings, "skel-local")
    jobrunner.run_local(settings, "skeleton", bounded=True)
    _assert_counts(settings, expected)


def test_skeleton_on_mini_cluster_parallelism_2(kafka_settings: Settings) -> None:
    settings, expected = _prepare(kafka_settings, "skel-p2")
    jobrunner.run_local(
        with_overrides(settings, flink={"parallelism": 2}), "skeleton", bounded=True
    )
    _assert_counts(settings, expected)


def test_skeleton_on_standalone_cluster(flink_cluster: LocalCluster) -> None:
    settings, expected = _prepare(flink_cluster.settings, "skel-cluster")
    output = jobrunner.submit_to_cluster(settings, "skeleton", bounded=True)
    assert "has finished" in output
    states = flink_cluster.job_states()
    assert "FINISHED" in states.values()
    _assert_counts(settings, expected)
