"""The analytics job on the real standalone cluster: progress metrics through the REST API.

Per-partition watermarks come from Flink's Kafka source itself (split metric groups, one per
topic-partition, including the idle one); the window stages add watermark and lateness metrics.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest

from core.errors import JobError
from jobs.analytics import JOB_NAME
from riskstream import jobrunner
from riskstream.infra.cluster import LocalCluster
from riskstream.infra.process import wait_until
from riskstream.infra.rest import FlinkRest
from tests.integration.test_analytics_job import (
    MIN,
    POLL_S,
    SEC,
    T0,
    WAIT_S,
    Feed,
    job_settings,
    late_events,
    revision,
    tx,
)

pytestmark = pytest.mark.integration

PARTITIONS = 3
REST_TIMEOUT_S = 10


def _get(rest: FlinkRest, path: str) -> Any:
    with urllib.request.urlopen(rest.base_url + path, timeout=REST_TIMEOUT_S) as answer:
        return json.loads(answer.read())


def _metrics(rest: FlinkRest, job_id: str) -> dict[str, str]:
    """Every metric of every vertex of the job (subtask-prefixed ids) with its value."""
    values: dict[str, str] = {}
    for vertex in _get(rest, f"/jobs/{job_id}")["vertices"]:
        path = f"/jobs/{job_id}/vertices/{vertex['id']}/metrics"
        ids = [m["id"] for m in _get(rest, path)]
        for chunk in range(0, len(ids), 40):
            query = ",".join(ids[chunk : chunk + 40])
            for metric in _get(rest, f"{path}?get={urllib.parse.quote(query)}"):
                values[metric["id"]] = metric.get("value", "")
    return values


def _running(rest: FlinkRest) -> str | None:
    try:
        return rest.running_job(name=JOB_NAME).job_id
    except JobError:
        return None


def test_watermark_progress_and_lateness_metrics(flink_cluster: LocalCluster) -> None:
    settings = job_settings(flink_cluster.settings, "an-metrics", PARTITIONS)
    feed = Feed(settings)
    rest = FlinkRest(flink_cluster.rest_url)
    jobrunner.submit_to_cluster(settings, "analytics", detached=True)
    job_id = wait_until(lambda: _running(rest), WAIT_S, "the running job", poll_s=POLL_S)
    try:
        feed.send(0, tx("a1", "m1", T0 + 10 * SEC, 10.0), tx("a2", "m1", T0 + 20 * MIN, 1.0))
        feed.send(1, tx("b1", "m2", T0 + 20 * SEC, 5.0), tx("b2", "m2", T0 + 20 * MIN, 1.0))
        wait_until(
            revision(settings, "global", "all", T0, 1), WAIT_S, "the first minute", poll_s=POLL_S
        )
        feed.send(0, tx("a3", "m1", T0 + 30 * SEC, 2.0))  # 20 minutes behind: too late
        wait_until(lambda: late_events(settings), WAIT_S, "the too-late event", poll_s=POLL_S)

        def reported() -> dict[str, str] | None:
            values = _metrics(rest, job_id)
            late = [v for k, v in values.items() if k.endswith(".tooLateEvents")]
            return values if any(v == "1" for v in late) else None

        values = wait_until(reported, WAIT_S, "the tooLateEvents counter", poll_s=POLL_S)
    finally:
        request = urllib.request.Request(
            f"{rest.base_url}/jobs/{job_id}?mode=cancel", method="PATCH"
        )
        urllib.request.urlopen(request, timeout=REST_TIMEOUT_S).close()

    topic = feed.topic
    split_watermarks = {
        k: v for k, v in values.items() if k.endswith(".watermark.currentWatermark")
    }
    for partition in range(PARTITIONS):
        assert any(f"{topic}-{partition}" in k for k in split_watermarks), (
            partition,
            sorted(split_watermarks),
        )
    busy = [v for k, v in split_watermarks.items() if f"{topic}-0" in k]
    assert int(busy[0]) == T0 + 20 * MIN - 1  # partition 0's own watermark (out-of-orderness 0)
    # The merchant stage counted the too-late event; its gauges sit next to that counter.
    (stage,) = [
        k[: -len("tooLateEvents")]
        for k, v in values.items()
        if k.endswith(".tooLateEvents") and v == "1"
    ]
    assert int(values[stage + "currentWatermarkMs"]) == T0 + 20 * MIN - 1
    assert int(values[stage + "watermarkLagMs"]) == 1  # newest event T0+20m, watermark 1 ms behind
    assert values[stage + "windowResults"] != "0" and values[stage + "duplicateEvents"] == "0"
    assert values[stage + "unscoredEvents"] == "4"  # a1, a2, b1, b2
    # Flink's own operator watermark metrics are there for every window stage too.
    inputs = [
        v for k, v in values.items() if "windows" in k and k.endswith(".currentInputWatermark")
    ]
    assert inputs and all(int(v) >= T0 + 20 * MIN - 1 for v in inputs), inputs
