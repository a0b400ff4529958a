"""`riskstream cluster add-taskmanager` starts a standby TaskManager and `cluster status` names each
process's role, on the real standalone cluster (issue 12, item 5)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from riskstream.cli import main as cli_main
from riskstream.infra import process
from riskstream.infra.cluster import ROLE_JOBMANAGER, ROLE_STANDBY, LocalCluster
from riskstream.jobrunner import write_settings

pytestmark = [pytest.mark.integration]

DEREGISTER_S = 60.0


def test_add_taskmanager_starts_a_standby_and_status_names_every_role(
    flink_cluster: LocalCluster, tmp_path: Path
) -> None:
    config = write_settings(flink_cluster.settings, tmp_path / "settings.yaml")
    before = {p.pid for p in flink_cluster.processes()}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["--config", str(config), "cluster", "add-taskmanager"]) == 0
    added = [p for p in flink_cluster.processes() if p.pid not in before]
    try:
        assert len(added) == 1, flink_cluster.processes()
        standby = added[0]
        assert standby.role == ROLE_STANDBY and standby.slots_free == standby.slots_total > 0
        assert f"pid {standby.pid}" in out.getvalue()
        status = io.StringIO()
        with contextlib.redirect_stdout(status):
            assert cli_main(["--config", str(config), "cluster", "status"]) == 0
        lines = status.getvalue().splitlines()
        roles = [p.role for p in flink_cluster.processes()]
        assert roles[0] == ROLE_JOBMANAGER and roles.count(ROLE_JOBMANAGER) == 1
        for proc in flink_cluster.processes():
            assert any(f"pid {proc.pid:>7}  {proc.role}" in line for line in lines), lines
        assert "taskmanagers: 2" in status.getvalue()
    finally:
        for proc in added:
            flink_cluster.kill_taskmanager(proc.pid)
        process.wait_until(
            lambda: flink_cluster.status().taskmanagers == 1, DEREGISTER_S, "one TaskManager"
        )
