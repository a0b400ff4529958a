"""The local single-node Kafka 4 broker (KRaft), started from the pinned jars.

``start`` formats storage on first use, launches the broker bound to 127.0.0.1, waits until it
answers and creates the project's topics. ``stop`` ends only the process recorded in our pid file.

With ``kafka.security_protocol: SASL_PLAINTEXT`` (and ``kafka.sasl_mechanism: PLAIN``) the client
listener on ``kafka.port`` requires SASL/PLAIN with the one user given by
``RISKSTREAM_KAFKA_SASL_USERNAME`` / ``RISKSTREAM_KAFKA_SASL_PASSWORD`` (the broker talks to itself
as that user too), so the jobs and tools can be tried against a secured broker locally. The
password is then written into ``server.properties`` (mode 0600) under the run directory.
"""

from __future__ import annotations

import base64
import logging
import re
import socket
import subprocess
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from core.config import ENV_SASL_USERNAME, Settings, jaas_quote
from core.errors import ConfigError, ServiceError
from core.jars import KAFKA_BROKER_SET
from riskstream.infra import jars, process

BROKER_MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"
NODE_ID = 1
ADMIN_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0
FORMAT_TIMEOUT_S = 120
METADATA_FILE = "meta.properties"
REPLICATION_FACTOR = 1
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
LOCAL_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT")
USER_NAME = re.compile(r"[A-Za-z0-9._-]+")

_QUIET_LOGGER = logging.getLogger("riskstream.kafka.admin")
_QUIET_LOGGER.addHandler(logging.NullHandler())
_QUIET_LOGGER.propagate = False

LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
"""


def new_cluster_id() -> str:
    """A random KRaft cluster id in Kafka's own format (URL-safe base64 of a UUID, no padding).

    Like Kafka's ``Uuid.randomUuid`` it never starts with ``-``: the storage tool's argument parser
    would read such an id as an option and refuse to format (one in 64 ids did).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class BrokerStatus:
    """What ``kafka status`` reports."""

    running: bool
    pid: int | None
    bootstrap: str
    topics: tuple[str, ...]


class LocalKafka:
    """Start, stop and inspect the local broker described by ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = settings.kafka
        self.home = settings.paths.run / "kafka"
        self.data_dir = settings.kafka_data_dir
        self.properties = self.home / "server.properties"
        self.log_file = self.home / "logs" / "server.log"
        self.stdout_file = self.home / "logs" / "stdout.log"
        self.pid_file = process.PidFile(self.home / "broker.pid", marker=str(self.properties))

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the local broker."""
        return f"{self.kafka.host}:{self.kafka.port}"

    def running_pid(self) -> int | None:
        """Pid of our broker if it is running."""
        return self.pid_file.read()

    def start(self) -> int:
        """Start the broker and create the topics; returns its pid.

        Raises :class:`ServiceError` if our broker is already running (nothing is started twice),
        :class:`PortInUseError` if a port is taken, :class:`JavaError` if Java is unusable.
        """
        pid = self.running_pid()
        if pid is not None:
            raise ServiceError(
                f"Kafka is already running (pid {pid}) at {self.bootstrap}; "
                "`riskstream kafka stop` stops it"
            )
        java = process.java_executable()
        process.require_java()
        process.require_free_port(self.kafka.host, self.kafka.port, "Kafka", "kafka.port")
        process.require_free_port(
            self.kafka.host,
            self.kafka.controller_port,
            "the Kafka controller",
            "kafka.controller_port",
        )
        classpath = ":".join(str(p) for p in jars.classpath(self.settings, KAFKA_BROKER_SET))
        self._write_config()
        self._format_storage(java, classpath)
        self.stdout_file.parent.mkdir(parents=True, exist_ok=True)
        with self.stdout_file.open("ab") as out:
            proc = subprocess.Popen(
                [
                    java,
                    f"-Xmx{self.kafka.heap}",
                    f"-Xms{self.kafka.heap}",
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                    "-cp",
                    classpath,
                    BROKER_MAIN_CLASS,
                    str(self.properties),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write(proc.pid)
        try:
            process.wait_until(
                lambda: proc.poll() is not None or self._answers(),
                self.kafka.start_timeout_s,
                f"Kafka to answer at {self.bootstrap}",
            )
        except ServiceError:
            self.stop()
            raise ServiceError(
                f"Kafka did not answer at {self.bootstrap} "
                f"within {self.kafka.start_timeout_s:.0f} s; "
                f"last log lines of {self.log_file}:\n{process.tail(self.log_file)}"
            ) from None
        if proc.poll() is not None:
            self.pid_file.clear()
            raise ServiceError(
                f"Kafka exited with status {proc.returncode} during start; see {self.stdout_file} "
                f"and {self.log_file}:\n{process.tail(self.stdout_file)}\n"
                f"{process.tail(self.log_file)}"
            )
        self.create_topics()
        return proc.pid

    def stop(self) -> bool:
        """Stop our broker; returns False if it was not running."""
        pid = self.running_pid()
        self.pid_file.clear()
        if pid is None:
            return False
        process.terminate(pid, self.pid_file.marker)
        return True

    def status(self) -> BrokerStatus:
        """Whether our broker runs, and which topics it has."""
        pid = self.running_pid()
        topics: tuple[str, ...] = ()
        if pid is not None and self._answers():
            topics = tuple(
                sorted(t for t in self.admin().list_topics(timeout=ADMIN_TIMEOUT_S).topics)
            )
        return BrokerStatus(pid is not None, pid, self.bootstrap, topics)

    def admin(self) -> AdminClient:
        """An admin client for the local broker (librdkafka's connection noise silenced)."""
        conf: dict[str, Any] = {**self.kafka.client_config(), "bootstrap.servers": self.bootstrap}
        conf["logger"] = _QUIET_LOGGER
        return AdminClient(conf)

    def create_topics(self) -> list[str]:
        """Create the configured project topics that do not exist yet; returns those created."""
        return create_project_topics(self.settings, self.admin())

    def _answers(self) -> bool:
        """Whether the broker accepts connections and serves metadata."""
        try:
            with socket.create_connection((self.kafka.host, self.kafka.port), timeout=1.0):
                pass
            self.admin().list_topics(timeout=PROBE_TIMEOUT_S)
        except (OSError, KafkaException):
            return False
        return True

    def _write_config(self) -> None:
        host, port, cport = self.kafka.host, self.kafka.port, self.kafka.controller_port
        protocol = self.kafka.security_protocol
        if protocol not in LOCAL_PROTOCOLS or (
            protocol != "PLAINTEXT" and self.kafka.sasl_mechanism != "PLAIN"
        ):
            raise ConfigError(
                f"kafka.security_protocol {protocol} with kafka.sasl_mechanism "
                f"{self.kafka.sasl_mechanism}: the local broker supports PLAINTEXT, or "
                "SASL_PLAINTEXT with PLAIN; use kafka.bootstrap_servers for another cluster"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j2.properties").write_text(LOG4J2_PROPERTIES.format(log=self.log_file))
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.bootstrap.servers": f"{host}:{cport}",
            "listeners": f"{protocol}://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"{protocol}://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": protocol,
            "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{protocol}:{protocol}",
            "message.max.bytes": str(self.kafka.max_message_bytes),
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.kafka.default_partitions),
            "offsets.topic.replication.factor": str(REPLICATION_FACTOR),
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": str(REPLICATION_FACTOR),
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": str(REPLICATION_FACTOR),
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "-1",
        }
        if protocol == "SASL_PLAINTEXT":
            lines |= self._sasl_lines()
        self.properties.touch(mode=0o600)
        self.properties.chmod(0o600)
        self.properties.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))

    def _sasl_lines(self) -> dict[str, str]:
        """SASL/PLAIN on the client listener with one user (the configured one), which the
        broker also uses to reach itself."""
        conf = self.kafka.client_config()  # raises ConfigError naming unset credentials
        name, secret = conf["sasl.username"], jaas_quote(conf["sasl.password"])
        if not USER_NAME.fullmatch(name):
            raise ConfigError(
                f"{ENV_SASL_USERNAME}: the local broker expects a user name of letters, digits, "
                "'.', '_' or '-'"
            )
        return {
            "sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                f'{PLAIN_MODULE} required username="{name}" password="{secret}" '
                f'user_{name}="{secret}";'
            ),
        }

    def _format_storage(self, java: str, classpath: str) -> None:
        if (self.data_dir / METADATA_FILE).is_file():
            return
        cluster_id = new_cluster_id()
        cmd = [
            java,
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            classpath,
            STORAGE_TOOL_CLASS,
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(self.properties),
        ]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise ServiceError(
                f"formatting Kafka storage in {self.data_dir} failed (exit {done.returncode}): "
                f"{(done.stdout + done.stderr).strip()[-2000:]}"
            )


def cluster_admin(settings: Settings) -> AdminClient:
    """An admin client for the configured Kafka (``kafka.bootstrap_servers``, else the local
    broker), with the configured security."""
    conf: dict[str, Any] = {**settings.kafka.client_config(), "logger": _QUIET_LOGGER}
    return AdminClient(conf)


def create_project_topics(settings: Settings, admin: AdminClient | None = None) -> list[str]:
    """Create the project topics of ``settings`` missing on the cluster ``admin`` reaches
    (default :func:`cluster_admin`), with their partition counts and replication factor 1 (a
    single-node cluster such as the compose file's; pre-create them on a larger cluster).
    Returns the names created."""
    admin = admin or cluster_admin(settings)
    kafka = settings.kafka
    try:
        existing = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    except KafkaException as exc:
        raise ServiceError(f"cannot list the topics of Kafka at {kafka.bootstrap}: {exc}") from exc
    new = [
        NewTopic(spec.name, num_partitions=kafka.partitions(role), replication_factor=1)
        for role, spec in kafka.topics.items()
        if spec.name not in existing
    ]
    if not new:
        return []
    for name, future in admin.create_topics(new).items():
        try:
            future.result(timeout=ADMIN_TIMEOUT_S * 3)
        except KafkaException as exc:
            raise ServiceError(f"could not create topic {name!r}: {exc}") from exc
    return [t.topic for t in new]
