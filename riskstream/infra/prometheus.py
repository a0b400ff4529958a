"""The local Prometheus server that scrapes the jobs' Flink Prometheus reporters.

The program is Debian's ``prometheus`` package at the version and sha256 pinned in
``core/resources/tools.toml``: fetched once with the machine's own ``apt-get download`` into
``<paths.cache_dir>/tools``, verified, and unpacked with ``dpkg-deb -x`` (nothing is installed
system-wide). ``start`` writes a scrape config for the local cluster's reporter ports and the
mini-cluster's port, launches it bound to 127.0.0.1 and waits until it is ready; ``stop`` ends only
the process recorded in our pid file. :meth:`LocalPrometheus.query` asks its HTTP API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from core.config import Settings
from core.errors import ServiceError, ToolError
from core.jars import sha256_of
from riskstream.infra import process

LOOPBACK = "127.0.0.1"
TOOLS_RESOURCE = "tools.toml"
TOOL = "prometheus"
CLUSTER_JOB = "riskstream-cluster"
LOCAL_JOB = "riskstream-local"
APT_TIMEOUT_S = 600
HTTP_TIMEOUT_S = 5.0
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class DebianTool:
    """A Debian package pinned in ``tools.toml``: version, architecture, sha256, its program."""

    package: str
    version: str
    architecture: str
    sha256: str
    binary: str

    @property
    def deb_name(self) -> str:
        """The file name ``apt-get download`` gives the package (``:`` of an epoch as ``%3a``)."""
        version = self.version.replace(":", "%3a")
        return f"{self.package}_{version}_{self.architecture}.deb"


def pinned_tool(name: str = TOOL) -> DebianTool:
    """The pinned entry ``name`` of ``core/resources/tools.toml``."""
    path = Path(str(resources.files("core.resources").joinpath(TOOLS_RESOURCE)))
    try:
        entry = tomllib.loads(path.read_text("utf-8"))[name]
        tool = DebianTool(**{k: str(entry[k]) for k in DebianTool.__dataclass_fields__})
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ToolError(f"{path}: expected a [{name}] entry with package, version, "
                        f"architecture, sha256 and binary; {exc!r}") from exc  # fmt: skip
    if len(tool.sha256) != 64:
        raise ToolError(f"{path}: [{name}] sha256 must be 64 hex digits, found {tool.sha256!r}")
    return tool


def run_step(cmd: list[str], cwd: Path, what: str) -> str:
    """Run one fetch step (``apt-get``, ``dpkg-deb``); its stdout, or ToolError naming the step."""
    try:
        done = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{what}: `{' '.join(cmd)}` could not run: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        raise ToolError(f"{what}: `{' '.join(cmd)}` failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def fetch_tool(settings: Settings, tool: DebianTool | None = None) -> Path:
    """The verified, unpacked program of ``tool`` (Prometheus by default), fetched on first use.

    The ``.deb`` is kept in the cache and re-verified on every call, so a corrupted or swapped
    file is refused, never used."""
    tool = tool or pinned_tool()
    home = settings.paths.cache / "tools" / f"{tool.package}-{tool.version}"
    deb = home / tool.deb_name
    program = home / "root" / tool.binary
    if not deb.is_file():
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise ToolError(
                f"fetching {tool.package} {tool.version} needs apt-get and dpkg-deb (a Debian "
                f"machine); or put the verified {tool.deb_name} into {home}"
            )
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="riskstream-apt-", dir=home) as tmp:
            run_step(
                ["apt-get", "download", f"{tool.package}={tool.version}"],
                Path(tmp),
                f"downloading {tool.package} {tool.version} (if apt-get cannot locate it, run "
                "`apt-get update` once)",
            )
            fetched = Path(tmp) / tool.deb_name
            if not fetched.is_file():
                raise ToolError(f"apt-get download did not produce {tool.deb_name} in {tmp}")
            verify_deb(tool, fetched)
            fetched.replace(deb)
    verify_deb(tool, deb)
    if not program.is_file():
        staging = home / "root.partial"
        shutil.rmtree(staging, ignore_errors=True)
        run_step(["dpkg-deb", "-x", str(deb), str(staging)], home, f"unpacking {deb}")
        shutil.rmtree(home / "root", ignore_errors=True)
        staging.replace(home / "root")
        if not program.is_file():
            raise ToolError(f"{deb} holds no {tool.binary}; check [{tool.package}] in tools.toml")
    return program


def verify_deb(tool: DebianTool, path: Path) -> None:
    """Refuse a ``.deb`` whose sha256 is not the pinned one."""
    found = sha256_of(path)
    if found != tool.sha256:
        raise ToolError(
            f"checksum mismatch for {tool.package} {tool.version} at {path}: expected sha256 "
            f"{tool.sha256} (core/resources/tools.toml), found {found}; delete the file to "
            "fetch it again"
        )


def scrape_config(settings: Settings) -> dict[str, Any]:
    """Prometheus configuration: the cluster's reporter ports and the mini-cluster's port."""
    metrics = settings.metrics
    interval = f"{metrics.scrape_interval_s}s"

    def job(name: str, ports: range) -> dict[str, Any]:
        return {
            "job_name": name,
            "metrics_path": METRICS_PATH,
            "static_configs": [{"targets": [f"{LOOPBACK}:{port}" for port in ports]}],
        }

    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            job(CLUSTER_JOB, metrics.cluster_ports),
            job(LOCAL_JOB, range(metrics.local_port, metrics.local_port + 1)),
        ],
    }


@dataclass(frozen=True)
class PrometheusStatus:
    """What ``observe status`` reports."""

    running: bool
    pid: int | None
    url: str
    targets_up: tuple[str, ...]
    targets_down: tuple[str, ...]


class LocalPrometheus:
    """Start, stop, inspect and query the local Prometheus described by ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.paths.run / "prometheus"
        self.config_file = self.home / "prometheus.yml"
        self.data_dir = self.home / "data"
        self.log_file = self.home / "prometheus.log"
        self.pid_file = process.PidFile(self.home / "prometheus.pid", marker=str(self.config_file))

    @property
    def url(self) -> str:
        """Base URL of the HTTP API and UI."""
        return f"http://{LOOPBACK}:{self.settings.metrics.prometheus_port}"

    def running_pid(self) -> int | None:
        """Pid of our Prometheus if it runs."""
        return self.pid_file.read()

    def write_config(self) -> Path:
        """Write ``<run_dir>/prometheus/prometheus.yml``."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(scrape_config(self.settings), sort_keys=False))
        return self.config_file

    def start(self) -> int:
        """Fetch (once), configure and start Prometheus; returns its pid once it is ready."""
        pid = self.running_pid()
        if pid is not None:
            raise ServiceError(
                f"Prometheus is already running (pid {pid}) at {self.url}; "
                "`riskstream observe stop` stops it"
            )
        metrics = self.settings.metrics
        process.require_free_port(
            LOOPBACK, metrics.prometheus_port, "Prometheus", "metrics.prometheus_port"
        )
        program = fetch_tool(self.settings)
        self.write_config()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            proc = subprocess.Popen(
                [
                    str(program),
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.data_dir}",
                    f"--storage.tsdb.retention.time={metrics.retention}",
                    f"--web.listen-address={LOOPBACK}:{metrics.prometheus_port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write(proc.pid)
        try:
            process.wait_until(
                lambda: proc.poll() is not None or self.ready(),
                metrics.start_timeout_s,
                f"Prometheus to answer at {self.url}",
            )
        except ServiceError:
            self.stop()
            raise ServiceError(
                f"Prometheus did not answer at {self.url} within {metrics.start_timeout_s:.0f} s; "
                f"last lines of {self.log_file}:\n{process.tail(self.log_file)}"
            ) from None
        if proc.poll() is not None:
            self.pid_file.clear()
            raise ServiceError(
                f"Prometheus exited with status {proc.returncode} during start; "
                f"{self.log_file}:\n{process.tail(self.log_file)}"
            )
        return proc.pid

    def stop(self) -> bool:
        """Stop our Prometheus; returns False if it was not running."""
        pid = self.running_pid()
        self.pid_file.clear()
        if pid is None:
            return False
        process.terminate(pid, self.pid_file.marker)
        return True

    def ready(self) -> bool:
        """Whether the server answers its readiness endpoint."""
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=HTTP_TIMEOUT_S) as answer:
                return int(answer.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def status(self) -> PrometheusStatus:
        """Whether it runs, and which scrape targets are up."""
        pid = self.running_pid()
        up: list[str] = []
        down: list[str] = []
        if pid is not None:
            answer = self._get("/api/v1/targets", {"state": "active"})
            for target in (answer or {}).get("activeTargets", []):
                label = f"{target['labels'].get('job')}@{target['scrapeUrl']}"
                (up if target.get("health") == "up" else down).append(label)
        return PrometheusStatus(pid is not None, pid, self.url, tuple(up), tuple(down))

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant-query result vector of ``expression`` (``[]`` if nothing matches)."""
        answer = self._get("/api/v1/query", {"query": expression})
        if answer is None:
            raise ServiceError(f"Prometheus at {self.url} did not answer the query {expression!r}")
        result: list[dict[str, Any]] = answer.get("result", [])
        return result

    def metric_names(self) -> set[str]:
        """Every metric name Prometheus has stored."""
        answer = self._get("/api/v1/label/__name__/values", {})
        return set(answer or [])

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as answer:
                body = json.loads(answer.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None
        if body.get("status") != "success":
            raise ServiceError(f"Prometheus refused {path} {params}: {body.get('error')}")
        return body.get("data")
