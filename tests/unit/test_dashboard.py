"""The Grafana dashboard (docker/grafana/riskstream.json) is valid and only uses exported metrics.

The list of exported series comes from :data:`udfs.metrics.METRICS` (the table the operators
register from and docs/observability.md documents), not from a copy in this test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from core.config import TrainingSettings
from udfs.metrics import METRICS, STAGES, exported_series, markdown_table

DASHBOARD = Path(__file__).resolve().parents[2] / "docker" / "grafana" / "riskstream.json"
METRIC_NAME = re.compile(r"\bflink_[A-Za-z0-9_:]+")
TOPICS = ("Throughput", "Latency", "Decision shares", "lag", "Dead letters", "Checkpoints")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_every_query_names_only_metrics_the_jobs_export(dashboard: dict[str, Any]) -> None:
    exported = exported_series()
    named = {m for t in _targets(dashboard) for m in METRIC_NAME.findall(t["expr"])}
    assert named, "the dashboard has no queries"
    assert named - exported == set()
    # And the dashboard shows every metric of the table that a person watches.
    watched = {m.name for m in METRICS if m.origin == "riskstream"} - {
        m.name for m in METRICS if "tooLateEvents" in m.name
    }
    assert watched - named == set()


def test_every_query_has_a_metric_and_panels_have_unique_ids(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for target in _targets(dashboard):
        assert METRIC_NAME.search(target["expr"]) or target["expr"].startswith("vector($"), target


def test_the_dashboard_covers_each_topic_of_the_issue(dashboard: dict[str, Any]) -> None:
    titles = " | ".join(panel["title"] for panel in dashboard["panels"])
    for topic in TOPICS:
        assert topic.lower() in titles.lower(), (topic, titles)
    latency = " ".join(t["expr"] for t in _targets(dashboard) if "latencyMs" in t["expr"])
    assert {'quantile="0.5"', 'quantile="0.95"', 'quantile="0.99"'} <= set(
        re.findall(r'quantile="[0-9.]+"', latency)
    )
    assert "by (stage)" in latency and len(STAGES) == 4


def test_configured_rates_are_the_settings_defaults(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    defaults = TrainingSettings()
    assert float(variables["block_rate"]["query"]) == defaults.block_rate
    assert float(variables["step_up_rate"]["query"]) == defaults.step_up_rate
    used = {m for t in _targets(dashboard) for m in re.findall(r"\$(\w+)", t["expr"])}
    assert used <= set(variables)


def test_the_documented_table_is_the_metrics_list() -> None:
    doc = (DASHBOARD.parents[2] / "docs" / "observability.md").read_text()
    start, end = "<!-- metrics-table:start -->\n", "<!-- metrics-table:end -->"
    documented = doc[doc.index(start) + len(start) : doc.index(end)]
    assert documented == markdown_table(), "regenerate the table from udfs.metrics.markdown_table"
