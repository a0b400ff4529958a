"""The image's entry command (docker/submit.sh, the compose file's one-shot ``submit``) submits the
scoring job to the local standalone cluster, configured the container way: a config file named by
``$RISKSTREAM_CONFIG`` plus a ``RISKSTREAM__SCORING__...`` override, which the job obeys.

Only the paths differ from the image: ``FLINK_HOME`` is the pip distribution's Flink,
``JOBMANAGER`` the local cluster's REST address, ``RISKSTREAM_PYTHON`` the venv's interpreter. The
job runs ``--bounded`` and attached (``SUBMIT_ATTACHED=1``) so the test can read what it wrote.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from core.config import Settings
from jobs.entry import client_environment
from riskstream.cli import main as cli_main
from riskstream.infra.cluster import LocalCluster, flink_home
from riskstream.jobrunner import write_settings
from riskstream.support.kafka_io import read_values
from riskstream.support.topics import private_settings

pytestmark = [pytest.mark.integration, pytest.mark.flink]

SUBMIT = Path(__file__).resolve().parents[2] / "docker" / "submit.sh"
ROLES = {
    "transactions": 1,
    "labels": 1,
    "dead_letter": 1,
    "decisions": 1,
    "predictions": 1,
    "alerts": 1,
    "analytics": 1,
    "late_events": 1,
}
OVERRIDE = "riskstream-from-env"
SUBMIT_TIMEOUT_S = 600


def test_submit_sh_runs_the_scoring_job_with_the_environment_override(
    flink_cluster: LocalCluster,
    tmp_path: Path,
    fresh_champion: Callable[[Path], Path],
) -> None:
    name = f"image-{uuid.uuid4().hex[:6]}"
    models = str(fresh_champion(tmp_path))
    settings: Settings = private_settings(
        flink_cluster.settings,
        name,
        ROLES,
        flink={"parallelism": 1},
        checkpoint={"dir": str(tmp_path / "checkpoints")},
        training={"registry_dir": models},
        scoring={"group_id": f"{name}-group", "transactional_id_prefix": name},
    )
    config = write_settings(settings, tmp_path / "riskstream.yaml")
    argv = ["--config", str(config), "simulate", "--to-kafka", "--days", "4", "--cards", "40"]
    argv += ["--merchants", "20", "--rate", "200000", "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli_main(argv) == 0

    env = client_environment(flink_cluster.environment())
    env |= {
        "RISKSTREAM_CONFIG": str(config),
        "RISKSTREAM__SCORING__SOURCE_NAME": OVERRIDE,
        "JOBMANAGER": flink_cluster.address,
        "FLINK_HOME": str(flink_home()),
        "RISKSTREAM_PYTHON": sys.executable,
        "SUBMIT_ATTACHED": "1",
    }
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(SUBMIT), "--bounded"],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBMIT_TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    (tmp_path / "submit.log").write_text(output)
    assert done.returncode == 0, output[-4000:]
    assert "all topics exist" in output or "created " in output
    assert "training one" not in output  # the registry has a champion: no training
    assert "Job has been submitted with JobID" in output
    print(f"submit.sh ran the bounded job in {time.monotonic() - started:.1f} s")

    decisions = [json.loads(v) for v in read_values(settings, settings.kafka.topic("decisions"))]
    assert decisions, "the job wrote no decision"
    assert {d["source"] for d in decisions} == {OVERRIDE}
