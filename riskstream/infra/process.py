"""Process plumbing shared by the local broker and cluster: Java check, ports, pid files, stop.

A service we start records its pid in a pid file; ``stop`` signals only a pid that is recorded there
and whose command line still carries our marker, so a recycled pid is never killed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from core.errors import JavaError, PortInUseError, ServiceError

MIN_JAVA_MAJOR = 17
STOP_GRACE_S = 30.0
POLL_INTERVAL_S = 0.25
T = TypeVar("T")
GATEWAY_DISABLED_VAR = "PYFLINK_GATEWAY_DISABLED"
JAVA_HOME_VAR = "JAVA_HOME"
WORKER_ENVIRONMENT = (
    "FLINK_HOME",
    "FLINK_CONF_DIR",
    "FLINK_BIN_DIR",
    "FLINK_LIB_DIR",
    "FLINK_OPT_DIR",
    "FLINK_PLUGINS_DIR",
    "FLINK_LOG_DIR",
    "FLINK_PID_DIR",
    "FLINK_ENV_JAVA_OPTS",
    "FLINK_INHERITED_LOGS",
    "JAVA_RUN",
    "BOOT_LOG_DIR",
    "SEMI_PERSISTENT_DIRECTORY",
    "PYTHON_LOOPBACK_SERVER_ADDRESS",
    "_PYFLINK_CONN_INFO_PATH",
    "_PYTHON_WORKER_MEMORY_LIMIT",
)
"""Variables a PyFlink Python worker's environment brings (seen in a test process after a local
pandas-UDF run following a standalone-cluster session)."""
_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')


def drop_worker_environment(environ: MutableMapping[str, str]) -> None:
    """Remove what a PyFlink Python worker left in an environment this CLI inherited.

    A process that ran a Python UDF in loopback mode (a local job with a pandas UDF: tests, the
    demo) gets the worker's environment copied into its own (PyFlink's beam_worker_pool_service:
    ``os.environ.update``), marked by the gateway flag; every ``riskstream`` it starts inherits
    it. The flag made such a child refuse to start its own Flink gateway; the worker's
    ``JAVA_HOME=`` (empty) made PyFlink launch "bin/java"; its ``FLINK_CONF_DIR`` points at a
    TaskManager's configuration, and it names the loopback worker pool of that process
    (``PYTHON_LOOPBACK_SERVER_ADDRESS``), which a TaskManager started from it must not see.
    Neither the CLI nor a process it starts is a UDF worker, so they drop them all.
    """
    if environ.get(JAVA_HOME_VAR) == "":  # never useful: "not set" means java from PATH
        del environ[JAVA_HOME_VAR]
    if environ.pop(GATEWAY_DISABLED_VAR, None) is None:
        return
    for name in WORKER_ENVIRONMENT:
        environ.pop(name, None)


def clean_environment() -> dict[str, str]:
    """A copy of this process's environment for a child process, without a worker's variables."""
    env = dict(os.environ)
    drop_worker_environment(env)
    return env


def java_executable(environ: Mapping[str, str] | None = None) -> str:
    """The ``java`` to use: ``$JAVA_HOME/bin/java`` if set, else the one on PATH."""
    environ = os.environ if environ is None else environ
    home = environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if not candidate.is_file():
            raise JavaError(f"JAVA_HOME is {home} but {candidate} does not exist; fix or unset it")
        return str(candidate)
    found = shutil.which("java", path=environ.get("PATH", ""))
    if found is None:
        raise JavaError(
            f"Java not found: install a JDK >= {MIN_JAVA_MAJOR} (e.g. apt-get install "
            "openjdk-17-jdk-headless) and put `java` on PATH or set JAVA_HOME"
        )
    return found


def require_java(environ: Mapping[str, str] | None = None) -> int:
    """Check that Java >= 17 is available; returns its major version."""
    java = java_executable(environ)
    try:
        done = subprocess.run(
            [java, "-version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=dict(environ) if environ is not None else None,
        )
    except OSError as exc:
        raise JavaError(f"cannot run {java} -version: {exc}") from exc
    match = _VERSION_RE.search(done.stderr + done.stdout)
    if match is None:
        raise JavaError(f"cannot read the Java version from `{java} -version`: {done.stderr!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_x" style
        major = int(match.group(2))
    if major < MIN_JAVA_MAJOR:
        raise JavaError(
            f"Java {major} found at {java}, but Kafka 4 and Flink 2.2 need Java >= "
            f"{MIN_JAVA_MAJOR}; install a newer JDK and put it first on PATH or set JAVA_HOME"
        )
    return major


def require_free_port(host: str, port: int, what: str, setting: str) -> None:
    """Raise :class:`PortInUseError` if ``host:port`` cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUseError(
                f"{what} needs port {port} on {host}, but it is in use ({exc.strerror}); stop the "
                f"other process or choose another port with --set {setting}=<port>"
            ) from None


@dataclass(frozen=True)
class PidFile:
    """A pid file plus the marker that the process's command line must contain to be ours."""

    path: Path
    marker: str

    def read(self) -> int | None:
        """The recorded pid if that process is alive and still ours, else None."""
        try:
            pid = int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if process_matches(pid, self.marker) else None

    def write(self, pid: int) -> None:
        """Record ``pid``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n")

    def clear(self) -> None:
        """Forget the recorded pid."""
        self.path.unlink(missing_ok=True)


def process_matches(pid: int, marker: str) -> bool:
    """Whether ``pid`` is alive and its command line contains ``marker``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z" and marker in cmdline


def descendants(pid: int) -> list[int]:
    """Pids of every live process below ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def terminate(pid: int, marker: str, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM ``pid`` (only if it is still ours), then SIGKILL after ``grace_s``."""
    if not process_matches(pid, marker):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not process_matches(pid, marker):
            return
        time.sleep(POLL_INTERVAL_S)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not process_matches(pid, marker), 10.0, f"process {pid} to exit")


def wait_until(
    check: Callable[[], T | None], timeout_s: float, what: str, poll_s: float = POLL_INTERVAL_S
) -> T:
    """Poll ``check`` until it returns something truthy and return that (``None`` and falsy
    values mean "not yet"); raise :class:`ServiceError` naming ``what`` after ``timeout_s``.

    The one wait helper of the project (services, tests and benchmarks)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise ServiceError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
