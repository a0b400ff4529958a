"""One place that turns settings into Flink configuration, for the mini-cluster and the cluster.

Every job gets its ``StreamExecutionEnvironment`` from :func:`create_env`, and the standalone
cluster's ``config.yaml`` is written from :func:`job_configuration` too, so a job behaves the same
wherever it runs: thread-mode Python, the venv's interpreter, RocksDB state, the same checkpoint and
restart settings, and the pinned connector jars.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from core import jars
from core.config import Settings
from core.errors import ConfigError

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment

PROMETHEUS_REPORTER = "prom"
PROMETHEUS_FACTORY = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
# Set by Flink's CLI when it runs a Python program (`flink run -py`): the job goes to a cluster.
SUBMITTED_ENV_VAR = "PYFLINK_GATEWAY_PORT"
LOOPBACK = "127.0.0.1"


def project_root() -> Path:
    """The directory holding the top-level packages (``jobs``, ``udfs``, ...)."""
    return Path(__file__).resolve().parent.parent


def python_path_entries() -> list[str]:
    """What Python workers need on ``PYTHONPATH``.

    Thread mode embeds CPython in the TaskManager JVM (pemja), which does not know the venv: it
    needs the venv's site-packages, and the project root because an editable install's ``.pth``
    hook is not processed for ``PYTHONPATH`` entries.
    """
    entries = [sysconfig.get_paths()["purelib"], *site.getsitepackages(), str(project_root())]
    seen: list[str] = []
    for entry in entries:
        if entry not in seen:
            seen.append(entry)
    return seen


def python_path() -> str:
    """``PYTHONPATH`` value for Flink processes: ours first, then whatever was set before."""
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys([*python_path_entries(), *existing]))


def restore_path(path: str) -> str:
    """A savepoint/checkpoint location as Flink wants it: a URI; local paths must exist.

    Accepts plain paths and the ``file:/...`` form Flink's REST API reports.
    """
    if path.startswith("file:"):
        path = urllib.parse.urlparse(path).path
    elif "://" in path:
        return path
    local = Path(path).expanduser().resolve()
    if not local.exists():
        raise ConfigError(
            f"checkpoint.restore_from: no savepoint or checkpoint at {local}; give the "
            "savepoint-... or chk-N directory printed by `riskstream stop --savepoint`"
        )
    return local.as_uri()


def job_configuration(settings: Settings) -> dict[str, str]:
    """Flink options every job runs with (execution mode, Python, state, checkpoints, restarts)."""
    flink, ckpt = settings.flink, settings.checkpoint
    conf = {
        # Modes, backends and guarantees are Literal types of the settings model: checked at load.
        "python.execution-mode": flink.execution_mode,
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.fn-execution.bundle.size": str(flink.bundle_size),
        "python.fn-execution.bundle.time": str(flink.bundle_time_ms),
        "python.fn-execution.arrow.batch.size": str(flink.arrow_batch_size),
        "parallelism.default": str(flink.parallelism),
        "state.backend.type": ckpt.state_backend,
        "execution.checkpointing.dir": settings.checkpoint_dir.as_uri(),
        "execution.checkpointing.incremental": str(ckpt.incremental).lower(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(ckpt.restart_attempts),
        "restart-strategy.fixed-delay.delay": f"{ckpt.restart_delay_ms} ms",
    }
    if ckpt.interval_ms > 0 and flink.local_recovery:
        conf["execution.checkpointing.local-backup.enabled"] = "true"
    if ckpt.restore_from:
        conf["execution.state-recovery.path"] = restore_path(ckpt.restore_from)
        conf["execution.state-recovery.ignore-unclaimed-state"] = str(
            ckpt.allow_non_restored_state
        ).lower()
    if ckpt.interval_ms > 0:
        conf["execution.checkpointing.interval"] = f"{ckpt.interval_ms} ms"
        conf["execution.checkpointing.mode"] = ckpt.mode
    return conf


def prometheus_reporter_jar() -> Path | None:
    """The Prometheus reporter jar of the pip distribution's ``plugins/metrics-prometheus``."""
    import pyflink

    plugin = Path(pyflink.__file__).resolve().parent / "plugins" / "metrics-prometheus"
    return next(iter(sorted(plugin.glob("flink-metrics-prometheus-*.jar"))), None)


def reporter_configuration(settings: Settings, ports: str) -> dict[str, str]:
    """Flink's Prometheus reporter (the distribution's metrics-prometheus plugin) on ``ports``
    (one port or a range ``a-b``: each process takes the first free one); empty if disabled."""
    if not settings.metrics.reporter:
        return {}
    prefix = f"metrics.reporter.{PROMETHEUS_REPORTER}"
    return {f"{prefix}.factory.class": PROMETHEUS_FACTORY, f"{prefix}.port": ports}


def cluster_configuration(settings: Settings) -> dict[str, str]:
    """Options of the standalone cluster's processes: failure detection and the reporter ports."""
    flink = settings.flink
    ports = settings.metrics.cluster_ports
    return {
        "heartbeat.interval": str(flink.heartbeat_interval_ms),
        "heartbeat.timeout": str(flink.heartbeat_timeout_ms),
        "heartbeat.rpc-failure-threshold": str(flink.heartbeat_rpc_failures),
        **reporter_configuration(settings, f"{ports.start}-{ports.stop - 1}"),
    }


def submitted_to_cluster() -> bool:
    """Whether this program runs under ``flink run`` (else it runs on a local mini-cluster)."""
    return SUBMITTED_ENV_VAR in os.environ


def local_configuration(settings: Settings) -> dict[str, str]:
    """Options only a mini-cluster run needs: its REST endpoint, for ``riskstream stop``, and
    its Prometheus reporter on ``metrics.local_port``."""
    return {
        "rest.address": LOOPBACK,
        "rest.bind-address": LOOPBACK,
        "rest.port": str(settings.flink.local_rest_port),
        **reporter_configuration(settings, str(settings.metrics.local_port)),
    }


def create_env(
    settings: Settings,
    extra: dict[str, str] | None = None,
    connectors: bool = True,
) -> StreamExecutionEnvironment:
    """A configured ``StreamExecutionEnvironment`` (mini-cluster locally, the cluster under
    ``flink run``), with the pinned Kafka connector added to the job and the client JVM."""
    os.environ["PYTHONPATH"] = python_path()
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    options = job_configuration(settings)
    if not submitted_to_cluster():
        options |= local_configuration(settings)
    config = Configuration()
    for key, value in (options | (extra or {})).items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    reporter = prometheus_reporter_jar()
    if settings.metrics.reporter and not submitted_to_cluster() and reporter is not None:
        # The mini-cluster finds reporters on the classpath only (it has no plugin manager;
        # "Available factories: []" in its log otherwise); a cluster loads the plugin directory.
        env.add_jars(reporter.as_uri())
    if connectors:
        env.add_jars(jars.connector_jar(settings).as_uri())
    return env
