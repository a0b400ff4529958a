"""Settings -> Flink and Prometheus configuration: reporter ports, heartbeats, local recovery,
the scrape config and the pinned Prometheus package."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings, load_settings, with_overrides
from core.errors import ToolError
from jobs.env import (
    PROMETHEUS_FACTORY,
    cluster_configuration,
    job_configuration,
    local_configuration,
    prometheus_reporter_jar,
)
from riskstream.infra import prometheus
from riskstream.infra.cluster import LocalCluster

FACTORY_KEY = "metrics.reporter.prom.factory.class"
PORT_KEY = "metrics.reporter.prom.port"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(overrides={"paths": {"run_dir": str(tmp_path)}}, environ={})


def test_cluster_and_mini_cluster_get_the_reporter_on_their_own_ports(settings: Settings) -> None:
    cluster = cluster_configuration(settings)
    assert cluster[FACTORY_KEY] == PROMETHEUS_FACTORY
    assert cluster[PORT_KEY] == "9249-9252"
    local = local_configuration(settings)
    assert local[PORT_KEY] == "9259" and local[FACTORY_KEY] == PROMETHEUS_FACTORY
    off = with_overrides(settings, metrics={"reporter": False})
    assert FACTORY_KEY not in cluster_configuration(off) | local_configuration(off)
    jar = prometheus_reporter_jar()
    assert jar is not None and jar.is_file()  # the plugin ships in the pip distribution


def test_failure_detection_and_local_recovery_come_from_the_settings(settings: Settings) -> None:
    tuned = with_overrides(
        settings, flink={"heartbeat_interval_ms": 700, "heartbeat_rpc_failures": 3}
    )
    conf = cluster_configuration(tuned)
    assert conf["heartbeat.interval"] == "700"
    assert conf["heartbeat.rpc-failure-threshold"] == "3"
    assert conf["heartbeat.timeout"] == str(settings.flink.heartbeat_timeout_ms)
    assert job_configuration(settings)["execution.checkpointing.local-backup.enabled"] == "true"
    no_local = with_overrides(settings, flink={"local_recovery": False})
    assert "execution.checkpointing.local-backup.enabled" not in job_configuration(no_local)


def test_the_cluster_config_file_carries_reporter_and_heartbeats(settings: Settings) -> None:
    import yaml

    cluster = LocalCluster(settings)
    document = yaml.safe_load(cluster.write_config().read_text())
    assert document["metrics"]["reporter"]["prom"]["port"] == "9249-9252"
    assert document["heartbeat"]["interval"] == str(settings.flink.heartbeat_interval_ms)


def test_scrape_config_covers_the_cluster_range_and_the_mini_cluster(settings: Settings) -> None:
    tuned = with_overrides(settings, metrics={"port": 19000, "port_count": 2, "local_port": 19100})
    jobs = {j["job_name"]: j for j in prometheus.scrape_config(tuned)["scrape_configs"]}
    targets = {name: j["static_configs"][0]["targets"] for name, j in jobs.items()}
    assert targets[prometheus.CLUSTER_JOB] == ["127.0.0.1:19000", "127.0.0.1:19001"]
    assert targets[prometheus.LOCAL_JOB] == ["127.0.0.1:19100"]


def test_the_prometheus_package_is_pinned_and_a_wrong_file_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    tool = prometheus.pinned_tool()
    assert tool.package == "prometheus" and len(tool.sha256) == 64
    assert tool.deb_name == f"prometheus_{tool.version}_{tool.architecture}.deb"
    cached = settings.paths.cache / "tools" / f"{tool.package}-{tool.version}" / tool.deb_name
    fake = with_overrides(settings, paths={"cache_dir": str(tmp_path / "cache")})
    swapped = fake.paths.cache / cached.relative_to(settings.paths.cache)
    swapped.parent.mkdir(parents=True)
    swapped.write_bytes(b"not the pinned package")
    with pytest.raises(ToolError, match="checksum mismatch"):
        prometheus.fetch_tool(fake, tool)
