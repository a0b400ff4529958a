"""Run a job: in this process on the mini-cluster, or submitted to the standalone cluster.

Jobs are modules in ``jobs/`` with ``main(settings, bounded=False)`` and a ``cli(argv)`` that reads
``--settings-file``; the cluster path writes the resolved settings to a file so the job submitted
with ``flink run -pym jobs.<name>`` sees exactly the settings the user gave the CLI.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import yaml

from core.config import Settings, to_document
from core.errors import JobError
from jobs.env import LOOPBACK, restore_path
from riskstream import preflight
from riskstream.infra import jars, process
from riskstream.infra.cluster import LocalCluster

JOBS = {
    "skeleton": "jobs.skeleton",
    "scoring": "jobs.scoring",
    "features": "jobs.features",
    "analytics": "jobs.analytics",
}
TARGETS = ("local", "cluster")


def job_module(name: str) -> str:
    """Module path of a job name; raises with the list of known jobs."""
    try:
        return JOBS[name]
    except KeyError:
        raise JobError(f"unknown job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None


def write_settings(settings: Settings, path: Path) -> Path:
    """Dump resolved settings as YAML that :func:`load_settings` reads back unchanged.

    Secrets are left out: the job reads them from its own environment (``jobs.entry``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_document(settings), sort_keys=False))
    return path


def run_local(settings: Settings, name: str, bounded: bool = False) -> None:
    """Run a job in this process on the Flink mini-cluster; blocks until it ends."""
    module = job_module(name)
    preflight.check(settings, name)
    if settings.flink.local_rest_port:
        process.require_free_port(
            LOOPBACK,
            settings.flink.local_rest_port,
            "the local job's REST API",
            "flink.local_rest_port",
        )
    jars.fetch_connector_jar(settings)  # the job's environment adds it (jobs.env.create_env)
    importlib.import_module(module).main(settings, bounded=bounded)


def submit_to_cluster(
    settings: Settings, name: str, bounded: bool = False, detached: bool = False
) -> str:
    """Submit a job to the local standalone cluster with ``flink run -py``; returns the client's
    output. Attached runs block until the job ends. Every client-side check runs first."""
    module_name = job_module(name)
    preflight.check(settings, name)
    cluster = LocalCluster(settings)
    cluster.require_running()
    if importlib.util.find_spec(module_name) is None:
        raise JobError(f"cannot find the job module {module_name}")
    settings_file = write_settings(settings, settings.paths.run / "submit" / f"{name}.yaml")
    cmd = [
        *cluster.flink_command(),
        "run",
        "-m",
        cluster.address,
        # As a module, not a script: `-py jobs/scoring.py` would put jobs/ first on sys.path,
        # where jobs/scoring.py and jobs/features.py shadow the scoring and features packages.
        "-pym",
        module_name,
        "-pyexec",
        sys.executable,
        "-pyclientexec",
        sys.executable,
        "-j",
        str(jars.fetch_connector_jar(settings)),
        *(["-d"] if detached else []),
        *(
            ["-s", restore_path(settings.checkpoint.restore_from)]
            if settings.checkpoint.restore_from
            else []
        ),
        *(["--allowNonRestoredState"] if settings.checkpoint.allow_non_restored_state else []),
        "--settings-file",
        str(settings_file),
        *(["--bounded"] if bounded else []),
    ]
    done = subprocess.run(
        cmd, env=cluster.environment(), capture_output=True, text=True, check=False
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise JobError(
            f"`flink run` of job {name!r} failed (exit {done.returncode}); client output:\n"
            + "\n".join(output.strip().splitlines()[-40:])
        )
    return output
