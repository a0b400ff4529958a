"""Run a job: in this process on the mini-cluster, or submitted to the standalone cluster.

Jobs are modules in ``jobs/`` with ``main(settings, bounded=False)`` and a ``cli(argv)`` that reads
``--settings-file``; the cluster path writes the resolved settings to a file so the job submitted
with ``flink run -pym jobs.<name>`` sees exactly the settings the user gave the CLI.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from core.config import Settings, to_document
from core.errors import JobError
from jobs.entry import client_environment
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
_CAUSED_BY = re.compile(r"^(?:Caused by: )?([\w.$]+(?:Exception|Error|Throwable)\b.*)$", re.M)
_FAILED_TASK = re.compile(
    r"(?:^|\] - )(.+?) \(\d+/\d+\)(?:#\d+)? (?:\(\S+\) )?switched from \w+ to FAILED",
    re.M,
)
_SUBMITTED = re.compile(r"JobID ([0-9a-f]{32})")
_NOISE = ("Py4JJavaError", "JobExecutionException", "JobException", "ExecutionException")


def root_cause(trace: str) -> str:
    r"""The innermost exception of a Java (or Py4J) stack trace: its class and message.

    >>> root_cause("x.JobExecutionException: Job execution failed.\n\tat a.b\n"
    ...            "Caused by: java.lang.IllegalStateException: boom\n\tat c.d")
    'java.lang.IllegalStateException: boom'
    """
    causes = [m.group(1).strip() for m in _CAUSED_BY.finditer(trace)]
    meaningful = [c for c in causes if not any(n in c.split(":")[0] for n in _NOISE)]
    chosen = (meaningful or causes or [trace.strip().splitlines()[0] if trace.strip() else ""])[-1]
    return chosen[:500]


def failed_task(log_text: str) -> str | None:
    """The task (operator chain) whose failure ended the job, from a Flink log: the last one
    that switched to FAILED."""
    found = _FAILED_TASK.findall(log_text)
    return found[-1].rsplit("] - ", 1)[-1].strip() if found else None


def failure_message(job: str, task: str | None, cause: str, log: Path | None) -> str:
    """The one line a permanent job failure ends with."""
    where = f"in {task!r}" if task else "(failing operator not found in the log)"
    return f"job {job!r} failed for good {where}: {cause}; full log: {log or '(none found)'}"


def local_log() -> Path | None:
    """The newest log of a mini-cluster run (the pip distribution's ``log/``)."""
    from riskstream.infra.cluster import flink_home

    logs = sorted(
        (flink_home() / "log").glob("flink-*-python-*.log"), key=lambda p: p.stat().st_mtime
    )
    return logs[-1] if logs else None


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def reporting_failures(job: str, run: Callable[[], None]) -> None:
    """Run a mini-cluster job; a failure becomes one :class:`JobError` line naming the failing
    task, the root cause and the full log (instead of a raw Py4J traceback)."""
    try:
        run()
    except Exception as exc:
        if type(exc).__name__ != "Py4JJavaError":
            raise
        log = local_log()
        raise JobError(
            failure_message(job, failed_task(_read(log)), root_cause(str(exc)), log)
        ) from None


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
    preflight.check(settings, name, connect=True)
    if settings.flink.local_rest_port:
        process.require_free_port(
            LOOPBACK,
            settings.flink.local_rest_port,
            "the local job's REST API",
            "flink.local_rest_port",
        )
    jars.fetch_connector_jar(settings)  # the job's environment adds it (jobs.env.create_env)
    main = importlib.import_module(module).main
    reporting_failures(name, lambda: main(settings, bounded=bounded))


def submit_to_cluster(
    settings: Settings, name: str, bounded: bool = False, detached: bool = False
) -> str:
    """Submit a job to the local standalone cluster with ``flink run -py``; returns the client's
    output. Attached runs block until the job ends. Every client-side check runs first."""
    module_name = job_module(name)
    preflight.check(settings, name, connect=True)
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
    # The file holds the resolved settings (environment and --set included): the job must not
    # read this process's RISKSTREAM__* variables again over the flags.
    env = client_environment(cluster.environment())
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise JobError(_cluster_failure(cluster, name, output, done.returncode))
    return output


def _cluster_failure(cluster: LocalCluster, name: str, output: str, code: int) -> str:
    """One line for a failed ``flink run``: the failing task and root cause from the cluster's
    exception history when the job ran, else from the client output; the path of the full log."""
    from riskstream.infra.rest import FlinkRest

    submitted = _SUBMITTED.search(output)
    client_log = cluster.settings.paths.run / "submit" / f"{name}.client.log"
    client_log.write_text(output)
    if submitted is None:  # refused before it ran (client-side error)
        return failure_message(name, None, root_cause(output) or f"exit {code}", client_log)
    try:
        failures = FlinkRest(cluster.rest_url).failures(submitted.group(1))
    except JobError:
        failures = []
    logs = sorted(cluster.log_dir.glob("*taskexecutor*.log"))
    if not failures:
        return failure_message(name, failed_task(_read(logs[-1]) if logs else ""),
                               root_cause(output), client_log)  # fmt: skip
    last = failures[-1]
    return failure_message(
        name, last.task or None, root_cause(last.stacktrace), logs[-1] if logs else client_log
    )
