"""The local standalone Flink session cluster, started from the apache-flink pip distribution.

The cluster runs with the project's own config directory (``<run_dir>/flink/conf``), written from
the same job configuration the mini-cluster uses, with REST and RPC bound to 127.0.0.1. Pid files
live in ``<run_dir>/flink/pids`` so ``stop`` ends exactly the processes this project started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.config import Settings
from core.errors import JobError, ServiceError
from jobs.env import cluster_configuration, job_configuration, python_path
from riskstream.infra import process

LOOPBACK = "127.0.0.1"
DAEMON_MARKERS = {
    "standalonesession": "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
    "taskexecutor": "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
}
REST_TIMEOUT_S = 5.0
RESOURCE_ID_OPTION = "taskmanager.resource-id"
RESOURCE_ID_PREFIX = "riskstream-tm-"
ROLE_JOBMANAGER = "jobmanager"
ROLE_ACTIVE = "taskmanager"
ROLE_STANDBY = "standby taskmanager"
ROLE_STARTING = "taskmanager (starting)"
WORKER_EXIT_S = 15.0
# Thread-mode Python (pemja) loads libpython once per JVM. If each job's class loader brings its own
# copy of pemja (from the flink-python jar shipped with the job), the second job on a TaskManager
# fails on Java 17 with "NoSuchFieldException: loadedLibraryNames" (FLINK-37727). So the cluster
# puts flink-python on its own classpath and loads pemja parent-first: one copy for every job.
FLINK_PYTHON_JAR_GLOB = "flink-python-*.jar"
PARENT_FIRST_PATTERNS = "pemja."


def flink_home() -> Path:
    """The Flink distribution inside the installed ``pyflink`` package."""
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def _resource_id(pid: int) -> str:
    """The ``taskmanager.resource-id`` a TaskManager process was started with ("" if none)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return ""
    marker = f"{RESOURCE_ID_OPTION}="
    for arg in args:
        if marker in arg:
            return arg.split(marker, 1)[1]
    return ""


def _set_flat(document: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested config document, replacing any flat duplicate."""
    document.pop(dotted, None)
    node = document
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


@dataclass(frozen=True)
class ClusterProcess:
    """One process of our cluster and its role: the JobManager, a TaskManager running tasks, or a
    standby TaskManager (every slot free, ready to take over a lost one's tasks)."""

    role: str
    pid: int
    resource_id: str = ""
    slots_total: int = 0
    slots_free: int = 0


@dataclass(frozen=True)
class ClusterStatus:
    """What ``cluster status`` reports."""

    running: bool
    pids: dict[str, int]
    rest_url: str
    taskmanagers: int
    slots_total: int
    slots_available: int
    jobs_running: int
    processes: tuple[ClusterProcess, ...] = ()


class LocalCluster:
    """Start, stop and inspect the local session cluster described by ``settings``."""

    def __init__(self, settings: Settings, extra_config: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        self.extra_config = dict(extra_config or {})
        """Flink options written into ``config.yaml`` over ours (e.g. heartbeat timing)."""
        self.home = settings.paths.run / "flink"
        self.conf_dir = self.home / "conf"
        self.log_dir = self.home / "log"
        self.pid_dir = self.home / "pids"
        self.lib_dir = self.home / "lib"

    @property
    def rest_url(self) -> str:
        """Base URL of the REST API."""
        return f"http://{LOOPBACK}:{self.settings.flink.rest_port}"

    @property
    def address(self) -> str:
        """``host:port`` for ``flink run -m``."""
        return f"{LOOPBACK}:{self.settings.flink.rest_port}"

    def environment(self) -> dict[str, str]:
        """Environment for Flink's scripts: our conf, log and pid dirs and the Python path."""
        env = process.clean_environment()
        env.update(
            FLINK_CONF_DIR=str(self.conf_dir),
            FLINK_LOG_DIR=str(self.log_dir),
            FLINK_PID_DIR=str(self.pid_dir),
            FLINK_LIB_DIR=str(self.lib_dir),
            PYTHONPATH=python_path(),
        )
        return env

    def running_pids(self) -> dict[str, int]:
        """Role -> pid of our cluster processes that are alive.

        Flink's daemon script names pid files ``flink-$USER-<role>.pid``; a pid counts only if its
        command line names our config directory and the role's main class.
        """
        return dict(self.all_pids())

    def all_pids(self) -> list[tuple[str, int]]:
        """(role, pid) of every live process of our cluster, in start order (a replacement
        TaskManager comes after the one it replaced)."""
        found: list[tuple[str, int]] = []
        for role, main_class in DAEMON_MARKERS.items():
            for pid_file in self.pid_dir.glob(f"*-{role}.pid"):
                for raw in pid_file.read_text().split():
                    pid = int(raw) if raw.isdigit() else -1
                    if process.process_matches(pid, main_class) and process.process_matches(
                        pid, self.conf_dir.as_posix()
                    ):
                        found.append((role, pid))
        return found

    def write_config(self) -> Path:
        """Write ``<run_dir>/flink/conf`` from the pip distribution's defaults and our settings."""
        source = flink_home() / "conf"
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for item in source.iterdir():
            if item.is_file() and item.name != "config.yaml":
                shutil.copy2(item, self.conf_dir / item.name)
        document: dict[str, Any] = yaml.safe_load((source / "config.yaml").read_text()) or {}
        flink = self.settings.flink
        values: dict[str, Any] = {
            "jobmanager.bind-host": LOOPBACK,
            "jobmanager.rpc.address": LOOPBACK,
            "jobmanager.rpc.port": flink.rpc_port,
            "jobmanager.memory.process.size": flink.jobmanager_memory,
            "taskmanager.bind-host": LOOPBACK,
            "taskmanager.host": LOOPBACK,
            "taskmanager.numberOfTaskSlots": flink.taskmanager_slots,
            "taskmanager.memory.process.size": flink.taskmanager_memory,
            "rest.address": LOOPBACK,
            "rest.bind-address": LOOPBACK,
            "rest.port": flink.rest_port,
            "io.tmp.dirs": str(self.home / "tmp"),
            "web.tmpdir": str(self.home / "web"),
            "classloader.parent-first-patterns.additional": PARENT_FIRST_PATTERNS,
            **job_configuration(self.settings),
            **cluster_configuration(self.settings),
            **self.extra_config,
        }
        for key, value in values.items():
            _set_flat(document, key, value)
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        self._write_lib_dir()
        target = self.conf_dir / "config.yaml"
        target.write_text(yaml.safe_dump(document, sort_keys=False))
        (self.conf_dir / "masters").write_text(f"{LOOPBACK}:{flink.rest_port}\n")
        (self.conf_dir / "workers").write_text(f"{LOOPBACK}\n")
        return target

    def _write_lib_dir(self) -> None:
        """``<run_dir>/flink/lib``: links to the distribution's lib jars plus flink-python."""
        if self.lib_dir.exists():
            shutil.rmtree(self.lib_dir)
        self.lib_dir.mkdir(parents=True)
        home = flink_home()
        jars = [*sorted((home / "lib").glob("*.jar")), *(home / "opt").glob(FLINK_PYTHON_JAR_GLOB)]
        for jar in jars:
            (self.lib_dir / jar.name).symlink_to(jar)

    def start(self) -> dict[str, int]:
        """Start JobManager and TaskManager and wait until a slot is registered."""
        pids = self.running_pids()
        if pids:
            raise ServiceError(
                f"the Flink cluster is already running (pids {sorted(pids.values())}) at "
                f"{self.rest_url}; `riskstream cluster stop` stops it"
            )
        process.require_java()
        flink = self.settings.flink
        process.require_free_port(
            LOOPBACK, flink.rest_port, "the Flink REST API", "flink.rest_port"
        )
        process.require_free_port(
            LOOPBACK, flink.rpc_port, "the Flink JobManager", "flink.rpc_port"
        )
        self.write_config()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for script in ("jobmanager.sh", "taskmanager.sh"):
            failure = self._start_daemon(script, *self._taskmanager_args(script))
            if failure:
                self.stop()
                raise ServiceError(failure)
        try:
            process.wait_until(
                lambda: self._slots()[0] >= 1, flink.start_timeout_s, f"Flink at {self.rest_url}"
            )
        except ServiceError:
            logs = "\n".join(process.tail(p, 10) for p in sorted(self.log_dir.glob("*.log")))
            self.stop()
            raise ServiceError(
                f"the Flink cluster did not register a TaskManager at {self.rest_url} within "
                f"{flink.start_timeout_s:.0f} s; logs in {self.log_dir}:\n{logs}"
            ) from None
        return self.running_pids()

    @staticmethod
    def _taskmanager_args(script: str) -> list[str]:
        """A TaskManager gets a resource id we choose, so its pid maps to its REST entry."""
        if script != "taskmanager.sh":
            return []
        return [f"-D{RESOURCE_ID_OPTION}={RESOURCE_ID_PREFIX}{uuid.uuid4().hex[:8]}"]

    def _start_daemon(self, script: str, *args: str) -> str:
        """Run ``<script> start`` with our config; returns an error message, empty on success."""
        done = subprocess.run(
            ["bash", str(flink_home() / "bin" / script), "start", *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            return f"{script} start failed: {(done.stdout + done.stderr)[-2000:]}"
        return ""

    def taskmanager_ids(self, with_slots: bool = False) -> set[str]:
        """Ids of the TaskManagers registered with the JobManager (a killed one stays listed
        until its heartbeats fail); ``with_slots``: only those that have reported their slots
        (a TaskManager is listed with 0 slots between its registration and its slot report)."""
        answer = self._get("/taskmanagers") or {}
        return {
            str(tm["id"])
            for tm in answer.get("taskmanagers", [])
            if not with_slots or int(tm.get("slotsNumber", 0)) > 0
        }

    def start_taskmanager(self) -> int:
        """Start one more TaskManager with the cluster's config (e.g. to replace a lost one) and
        wait until it has registered and reported its slots; returns its pid. The JobManager
        must be running."""
        if "standalonesession" not in self.running_pids():
            raise ServiceError(
                f"no JobManager of our cluster runs at {self.rest_url}; start the whole cluster "
                "with `riskstream cluster start`"
            )
        before = self.taskmanager_ids()
        failure = self._start_daemon("taskmanager.sh", *self._taskmanager_args("taskmanager.sh"))
        if failure:
            raise ServiceError(failure)
        timeout_s = self.settings.flink.start_timeout_s
        try:
            process.wait_until(
                lambda: bool(self.taskmanager_ids(with_slots=True) - before),
                timeout_s,
                "the new TaskManager",
            )
        except ServiceError:
            logs = "\n".join(
                process.tail(p, 10) for p in sorted(self.log_dir.glob("*taskexecutor*.log"))
            )
            raise ServiceError(
                f"a new TaskManager did not register at {self.rest_url} within {timeout_s:.0f} s; "
                f"logs in {self.log_dir}:\n{logs}"
            ) from None
        return self.running_pids()["taskexecutor"]

    def processes(self) -> list[ClusterProcess]:
        """Every live process of our cluster with its role, JobManager first."""
        registered = {
            str(tm["id"]): (int(tm.get("slotsNumber", 0)), int(tm.get("freeSlots", 0)))
            for tm in (self._get("/taskmanagers") or {}).get("taskmanagers", [])
        }
        found: list[ClusterProcess] = []
        for role, pid in self.all_pids():
            if role == "standalonesession":
                found.append(ClusterProcess(ROLE_JOBMANAGER, pid))
                continue
            resource = _resource_id(pid)
            if resource not in registered:
                found.append(ClusterProcess(ROLE_STARTING, pid, resource))
                continue
            total, free = registered[resource]
            if not total:  # registered, its slot report not in yet
                found.append(ClusterProcess(ROLE_STARTING, pid, resource))
                continue
            role_name = ROLE_STANDBY if free == total else ROLE_ACTIVE
            found.append(ClusterProcess(role_name, pid, resource, total, free))
        return found

    def kill_taskmanager(self, pid: int | None = None) -> int:
        """SIGKILL one of our TaskManagers, as a lost machine or an OOM kill would; returns its
        pid. By default the newest one running tasks (else the newest). Its process-mode Python
        workers go with it (any that linger are killed too)."""
        if pid is None:
            taskmanagers = [p for p in self.processes() if p.role != ROLE_JOBMANAGER]
            busy = [p for p in taskmanagers if p.role == ROLE_ACTIVE]
            chosen = (busy or taskmanagers)[-1:] if taskmanagers else []
            pid = chosen[0].pid if chosen else None
        if pid is None:
            raise ServiceError(f"no TaskManager of our cluster runs at {self.rest_url}")
        workers = process.descendants(pid)
        os.kill(pid, signal.SIGKILL)
        marker = self.conf_dir.as_posix()
        process.wait_until(lambda: not process.process_matches(pid, marker), 10, f"TM {pid} to die")
        deadline = time.monotonic() + WORKER_EXIT_S
        for worker in workers:
            while process.process_matches(worker, "") and time.monotonic() < deadline:
                time.sleep(process.POLL_INTERVAL_S)
            if process.process_matches(worker, ""):
                os.kill(worker, signal.SIGKILL)
        return pid

    def stop(self) -> bool:
        """Stop our JobManager and TaskManager(s); returns False if none was running."""
        pids = self.all_pids()
        for _role, pid in pids:
            process.terminate(pid, self.conf_dir.as_posix())
        for pid_file in self.pid_dir.glob("*.pid"):
            pid_file.unlink(missing_ok=True)
        return bool(pids)

    def status(self) -> ClusterStatus:
        """Processes and what the REST API says about slots and jobs."""
        pids = self.running_pids()
        total, available, taskmanagers, jobs = 0, 0, 0, 0
        if pids:
            overview = self._get("/overview")
            if overview:
                total = int(overview.get("slots-total", 0))
                available = int(overview.get("slots-available", 0))
                taskmanagers = int(overview.get("taskmanagers", 0))
                jobs = int(overview.get("jobs-running", 0))
        return ClusterStatus(
            bool(pids),
            pids,
            self.rest_url,
            taskmanagers,
            total,
            available,
            jobs,
            tuple(self.processes()) if pids else (),
        )

    def job_states(self) -> dict[str, str]:
        """Job id -> state, from the REST API."""
        answer = self._get("/jobs") or {}
        return {job["id"]: job["status"] for job in answer.get("jobs", [])}

    def _slots(self) -> tuple[int, int]:
        overview = self._get("/overview") or {}
        return int(overview.get("slots-total", 0)), int(overview.get("slots-available", 0))

    def _get(self, path: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.rest_url + path, timeout=REST_TIMEOUT_S) as answer:
                loaded: dict[str, Any] = json.loads(answer.read())
                return loaded
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def flink_command(self) -> list[str]:
        """The distribution's ``flink`` client, run with bash."""
        return ["bash", str(flink_home() / "bin" / "flink")]

    def require_running(self) -> None:
        """Raise :class:`JobError` unless our cluster is up."""
        if not self.running_pids():
            raise JobError(
                f"no local Flink cluster is running at {self.rest_url}; start it with "
                "`riskstream cluster start`"
            )
