"""The settings model: one frozen pydantic tree, the single place of every default.

Each section is a :class:`Section` (frozen, unknown keys refused); each field has a docstring that
becomes its description, from which ``core/resources/riskstream.yaml`` and the reference in
``docs/configuration.md`` are generated (:mod:`core.config_doc`). Loading, precedence and error
messages are in :mod:`core.config`, which re-exports everything here: import from there.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.errors import ConfigError

ENV_PREFIX = "RISKSTREAM__"
ENV_DELIMITER = "__"
ENV_CONFIG_FILE = "RISKSTREAM_CONFIG"
ENV_SASL_USERNAME = "RISKSTREAM_KAFKA_SASL_USERNAME"
ENV_SASL_PASSWORD = "RISKSTREAM_KAFKA_SASL_PASSWORD"
SECRET_ENV = {"sasl_username": ENV_SASL_USERNAME, "sasl_password": ENV_SASL_PASSWORD}
SHADED_KAFKA_PREFIX = "org.apache.flink.kafka.shaded."
"""The Flink Kafka connector jar shades kafka-clients: JAAS login modules carry this prefix."""
LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
"""The kafka-clients JAAS login module of each SASL mechanism."""
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
"""Kafka's default producer max.request.size (the broker's message.max.bytes is 1048588)."""
RECORD_OVERHEAD_BYTES = 1_024
"""Room left in a Kafka message for the record batch header around one dead letter."""
MIN_DEAD_LETTER_BYTES = 16_384
"""Smallest dead-letter cap: the reason (1024 chars), field path and metadata, JSON-escaped."""
"""Secret fields of ``kafka`` and the only environment variables that set them."""
LOCAL_CONFIG_FILE = "riskstream.yaml"
MASK = "**********"

Guarantee = Literal["EXACTLY_ONCE", "AT_LEAST_ONCE"]
"""Delivery guarantee of a Kafka sink (Flink's ``DeliveryGuarantee`` names)."""
CheckpointMode = Literal["EXACTLY_ONCE", "AT_LEAST_ONCE"]
ExecutionMode = Literal["thread", "process"]
StateBackend = Literal["rocksdb", "hashmap"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Profile = Literal["handbook", "realistic"]
FileFormat = Literal["jsonl", "parquet"]
RuleOp = Literal[">=", ">", "<=", "<"]
KnownCompromised = Literal["label_time", "handbook", "fixed"]
"""Rules that mark test rows of known-compromised cards (``training.split``)."""
ModelName = Literal["logistic_regression", "gradient_boosting", "mlp"]
"""Learned models of a registry version (``scoring.stacking.LEARNED``; a unit test keeps them
equal)."""
Job = Literal["skeleton", "features", "scoring", "analytics", "backfill"]

Port = Annotated[int, Field(ge=0, le=65535)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
Millis = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
DATE_FORMAT = "%Y-%m-%d"


def _split_list(value: Any) -> Any:
    """Accept a list, or a comma-separated string (environment variables, ``--set a,b``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return yaml.safe_load(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _check_date(value: str, allow_empty: bool) -> str:
    if allow_empty and not value:
        return value
    try:
        datetime.strptime(value, DATE_FORMAT)  # noqa: DTZ007 (a calendar day, no time)
    except ValueError:
        raise ValueError(f"a date YYYY-MM-DD, found {value!r}") from None
    return value


class Section(BaseModel):
    """Base of every settings section: frozen, unknown keys refused, field docstrings kept as
    descriptions (the documented YAML and docs/configuration.md are generated from them).

    Every way of building one raises :class:`ConfigError` with the key's path: constructing it
    (``TrainingSettings(stack_folds=1)``), :func:`core.config.replace`, ``with_overrides`` and
    ``load_settings``.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", use_attribute_docstrings=True, validate_default=True
    )

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            from core.config import describe_errors

            raise ConfigError(describe_errors(exc, type(self))) from exc

    # Marked as pydantic's own __init__, so validating a nested section (a dict inside Settings)
    # does not call it and its errors keep their full path in the enclosing ValidationError.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class PathSettings(Section):
    """Where riskstream keeps downloads and runtime files."""

    cache_dir: str = "~/.cache/riskstream"
    """Downloaded jars (Kafka broker, Flink connectors). Shared by every clone; safe to delete."""
    run_dir: str = ".riskstream"
    """Runtime files of the local services: broker data and logs, Flink config copy, logs and pid
    files, checkpoints. Relative paths are taken from the current directory."""
    jar_dir: str = ""
    """Directory of the pinned jars; empty means <cache_dir>/jars. Images that ship the jars (e.g.
    /opt/flink/lib in docker/Dockerfile) point it there; the checksums are still verified."""

    @property
    def cache(self) -> Path:
        """The jar cache, expanded and absolute."""
        return Path(self.cache_dir).expanduser().resolve()

    @property
    def jars(self) -> Path:
        """Where pinned jars are kept: ``jar_dir`` if set, else ``<cache_dir>/jars``."""
        return Path(self.jar_dir).expanduser().resolve() if self.jar_dir else self.cache / "jars"

    @property
    def run(self) -> Path:
        """The runtime directory, expanded and absolute."""
        return Path(self.run_dir).expanduser().resolve()


class TopicSettings(Section):
    """One Kafka topic the project uses."""

    name: str = Field(min_length=1)
    """Topic name."""
    partitions: Annotated[int, Field(ge=0)] = 0
    """Partitions `kafka start` creates it with; 0 = kafka.default_partitions."""


_TOPICS = (  # role, topic name, partitions
    ("transactions", "transactions", 2),
    ("labels", "labels", 2),
    ("dead_letter", "dead-letter", 1),
    ("features", "features", 2),
    ("decisions", "decisions", 2),
    ("predictions", "prediction-log", 2),
    ("alerts", "alerts", 1),
    ("guardrail_alerts", "guardrail-alerts", 1),
    ("analytics", "analytics", 1),
    ("late_events", "late-events", 1),
    ("skeleton_in", "skeleton-in", 2),
    ("skeleton_out", "skeleton-out", 1),
)


def _default_topics() -> dict[str, TopicSettings]:
    return {role: TopicSettings(name=name, partitions=n) for role, name, n in _TOPICS}


class KafkaSettings(Section):
    """The local broker and how clients reach Kafka."""

    host: str = "127.0.0.1"
    """Address of the local single-node KRaft broker (always bound to 127.0.0.1 when we start
    it)."""
    port: Port = 9092
    """Client port of the local broker."""
    controller_port: Port = 9093
    """KRaft controller port of the local broker."""
    data_dir: str = ""
    """Broker data directory; empty means <run_dir>/kafka/data."""
    heap: str = "1G"
    """JVM heap of the local broker."""
    start_timeout_s: float = Field(default=90.0, gt=0)
    """Seconds to wait for the broker to answer after start."""
    bootstrap_servers: Annotated[tuple[str, ...], NoDecode] = ()
    """Use an existing cluster instead of the local broker: a list of host:port (a
    comma-separated string is accepted too); empty = the local broker."""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL. SASL credentials come from the environment
    only."""
    sasl_mechanism: SaslMechanism = "PLAIN"
    """SASL mechanism when security_protocol is SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."""
    default_partitions: Positive = 2
    """Partitions of every project topic created by `riskstream kafka start` (a topic's own entry
    wins)."""
    topics: dict[str, TopicSettings] = Field(default_factory=_default_topics)
    """Project topics by role, and their partition counts; `kafka start` creates the missing
    ones."""
    max_message_bytes: Annotated[int, Field(ge=MIN_DEAD_LETTER_BYTES + RECORD_OVERHEAD_BYTES)] = (
        KAFKA_DEFAULT_MAX_MESSAGE_BYTES
    )
    """Largest Kafka message the jobs' producers send (their max.request.size); `kafka start`
    gives the local broker the same message.max.bytes. Match it to the broker's (or the topic's
    max.message.bytes) when you use another cluster: the preflight check compares it with the
    dead-letter topic's limit."""
    sasl_username: SecretStr | None = None
    """SASL user name: only from the environment variable RISKSTREAM_KAFKA_SASL_USERNAME."""
    sasl_password: SecretStr | None = None
    """SASL password: only from the environment variable RISKSTREAM_KAFKA_SASL_PASSWORD."""

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _split_list(value)

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers clients use: the configured cluster, else the local broker."""
        return ",".join(self.bootstrap_servers) or f"{self.host}:{self.port}"

    def topic(self, role: str) -> str:
        """The topic name for a role such as ``transactions``; raises if the role is unknown."""
        try:
            return self.topics[role].name
        except KeyError:
            known = ", ".join(sorted(self.topics))
            raise ConfigError(f"no topic configured for role {role!r}; known: {known}") from None

    def partitions(self, role: str) -> int:
        """Partition count of a role's topic (the topic's own count, else the default)."""
        return self.topics[role].partitions or self.default_partitions

    def client_config(self) -> dict[str, str]:
        """confluent-kafka client settings; SASL credentials as loaded from the environment."""
        conf = {"bootstrap.servers": self.bootstrap, "security.protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            if self.sasl_username is None or self.sasl_password is None:
                raise ConfigError(
                    f"kafka.security_protocol is {self.security_protocol}: expected "
                    f"{ENV_SASL_USERNAME} and {ENV_SASL_PASSWORD} in the environment, "
                    "found them not both set"
                )
            conf |= {"sasl.mechanism": self.sasl_mechanism}
            conf["sasl.username"] = self.sasl_username.get_secret_value()
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        return conf

    def java_client_config(self) -> dict[str, str]:
        """The same security for the Flink Kafka connector's Java clients (source and sink):
        security.protocol, and for SASL the mechanism and a JAAS config naming the connector's
        shaded login module. Holds the secret: pass it to the connector, never log it."""
        conf = self.client_config()
        java = {"security.protocol": conf["security.protocol"]}
        if "sasl.mechanism" in conf:
            module = SHADED_KAFKA_PREFIX + LOGIN_MODULES[self.sasl_mechanism]
            user, password = jaas_quote(conf["sasl.username"]), jaas_quote(conf["sasl.password"])
            java["sasl.mechanism"] = self.sasl_mechanism
            java["sasl.jaas.config"] = f'{module} required username="{user}" password="{password}";'
        return java


def jaas_quote(value: str) -> str:
    r"""A value for a double-quoted JAAS option (backslash and quote escaped): the Java client
    and the local broker's login modules read it back unchanged.

    >>> jaas_quote('a"b\\c')
    'a\\"b\\\\c'
    """
    return value.replace("\\", "\\\\").replace('"', '\\"')


class FlinkSettings(Section):
    """The local standalone cluster and the execution settings every job inherits."""

    rpc_port: Port = 6123
    """JobManager RPC port of the local standalone cluster."""
    rest_port: Port = 8081
    """REST / web UI port of the local standalone cluster (bound to 127.0.0.1)."""
    local_rest_port: Port = 8082
    """REST port of a job run on the mini-cluster by `riskstream run` (so `riskstream stop` and
    the web UI reach it); 0 picks a free port (then `stop` cannot find the job by port)."""
    taskmanager_slots: Positive = 2
    """Task slots of the one local TaskManager."""
    jobmanager_memory: str = "1600m"
    """Memory of the JobManager process."""
    taskmanager_memory: str = "2048m"
    """Memory of the TaskManager process."""
    parallelism: Positive = 1
    """Default parallelism of jobs."""
    execution_mode: ExecutionMode = "thread"
    """Python execution mode of DataStream functions: thread (fast, embedded) or process."""
    bundle_size: Positive = 1000
    """Python bundles: a Python stage flushes after this many records..."""
    bundle_time_ms: Positive = 5
    """... or after this many ms."""
    arrow_batch_size: Positive = 1000
    """Rows per Arrow batch handed to vectorized (pandas) UDFs."""
    start_timeout_s: float = Field(default=90.0, gt=0)
    """Seconds to wait for the cluster's REST endpoint after start."""
    heartbeat_interval_ms: Positive = 1_000
    """How often the JobManager and TaskManagers exchange heartbeats (Flink's default is 10 s). A
    TaskManager killed without a goodbye is noticed after heartbeat_rpc_failures failed heartbeat
    RPCs in a row, so this sets the recovery time after a lost machine (docs/operations.md)."""
    heartbeat_timeout_ms: Positive = 10_000
    """A TaskManager that answers no heartbeat for this long is declared lost (default 50 s)."""
    heartbeat_rpc_failures: Positive = 2
    """Failed heartbeat RPCs in a row (connection refused: the process is gone) after which a
    TaskManager is declared lost without waiting for heartbeat_timeout_ms."""
    local_recovery: bool = True
    """Keep a local copy of each checkpoint on the TaskManager, so a job restarted on a
    TaskManager that survived restores its state from local disk instead of the checkpoint
    directory."""


class CheckpointSettings(Section):
    """Checkpointing and recovery; applied identically on the mini-cluster and the cluster."""

    interval_ms: Millis = 10_000
    """Checkpoint interval in ms; 0 disables checkpointing (then no EXACTLY_ONCE sink)."""
    mode: CheckpointMode = "EXACTLY_ONCE"
    """EXACTLY_ONCE or AT_LEAST_ONCE."""
    state_backend: StateBackend = "rocksdb"
    """State backend: rocksdb or hashmap."""
    incremental: bool = True
    """Incremental RocksDB checkpoints."""
    dir: str = ""
    """Checkpoint directory; empty means <run_dir>/checkpoints."""
    restart_attempts: Annotated[int, Field(ge=0)] = 30
    """Restart attempts after a failure (30 x restart_delay_ms = 15 s: a replacement TaskManager
    registers within that when no standby has free slots)..."""
    restart_delay_ms: Millis = 500
    """... and the delay between them. A restart while no slot is free (a lost TaskManager's
    replacement still starting) fails at once and uses up an attempt, so attempts x delay should
    outlast a TaskManager start; `riskstream cluster add-taskmanager` keeps a standby with free
    slots so the first attempt finds one."""
    restore_from: str = ""
    """Savepoint or retained checkpoint (a savepoint-... or chk-N directory) to start the job
    from; empty starts fresh. Usually given as `riskstream run --from-savepoint PATH`."""
    allow_non_restored_state: bool = False
    """Start even if some state of the savepoint belongs to no operator of the new job."""


class MetricsSettings(Section):
    """Flink's Prometheus reporter in every job, and the local Prometheus server of
    `riskstream observe` that scrapes it (metric names: docs/observability.md)."""

    reporter: bool = True
    """Expose each job's metrics with Flink's Prometheus reporter (the metrics-prometheus plugin of
    the Flink distribution). The reporter listens on every interface of the machine."""
    port: Port = 9249
    """First reporter port of the local cluster: the JobManager and each TaskManager take the
    first free port of port .. port + port_count - 1 (container images use 9249 in each
    container)."""
    port_count: Positive = 4
    """How many reporter ports the cluster's processes may take (JobManager, TaskManager and
    standby TaskManagers)."""
    local_port: Port = 9259
    """Reporter port of a job on the mini-cluster (`riskstream run`, the demo)."""
    prometheus_port: Port = 9090
    """Port of the local Prometheus server (`riskstream observe start`, bound to 127.0.0.1)."""
    scrape_interval_s: Positive = 5
    """How often Prometheus scrapes the reporters."""
    retention: str = "2d"
    """How long the local Prometheus keeps samples (its --storage.tsdb.retention.time)."""
    start_timeout_s: float = Field(default=30.0, gt=0)
    """Seconds to wait for the local Prometheus to answer after start."""

    @property
    def cluster_ports(self) -> range:
        """The reporter ports of the local cluster's processes."""
        return range(self.port, self.port + self.port_count)


class SkeletonSettings(Section):
    """Walking-skeleton job: counts events per key from one topic to another."""

    input_topic: str = "skeleton-in"
    """Topic the skeleton reads."""
    output_topic: str = "skeleton-out"
    """Topic the skeleton writes its counts to."""
    key_field: str = "id"
    """JSON field that keys the count."""
    group_id: str = "riskstream-skeleton"
    """Consumer group of the job's Kafka source."""


class FeatureJobSettings(Section):
    """Streaming feature job (riskstream run --job features). Durations are ms of event time."""

    group_id: str = "riskstream-features"
    """Consumer group of its Kafka sources."""
    source: str = "riskstream-features"
    """The `source` stamped on dead-letter records."""
    out_of_orderness_ms: Millis = 5_000
    """Watermarks per Kafka partition: bounded out-of-orderness..."""
    idleness_ms: Millis = 30_000
    """... and how long a partition may be silent before it stops holding the watermark back."""
    allowed_lateness_ms: Millis = 3_600_000
    """Events behind the watermark by more than this are still scored but flagged late (and
    counted); windowed history is kept this much longer than the longest window."""
    max_future_skew_ms: Millis = 300_000
    """Events whose time is further than this ahead of the wall clock go to the dead-letter
    topic, and Kafka record timestamps further than this ahead of the time the source reads them
    are left out of the watermark (the record itself is still validated and scored), so one
    producer with a wrong clock cannot make everyone else's payments late (docs/ingestion.md)."""
    dedup_horizon_ms: Millis = 86_400_000
    """A repeated event_id within this horizon (per card) is a duplicate: flagged, never counted
    twice."""
    profile_retention_ms: Millis = 7_776_000_000
    """A card/device/terminal unseen for this long (event time) is forgotten (90 days)."""
    buffer_timeout_ms: Millis = 5
    """Flush Flink network buffers between the keyed stages after at most this many ms (Flink's
    default, 100 ms per exchange, would dominate the latency at low rates)."""
    start_timestamp_ms: Millis = 0
    """Kafka sources of the feature graph (features, scoring, analytics jobs) start at each
    partition's first record with a record timestamp (= the event time producers stamp) >= this
    (epoch ms); 0 = the earliest offsets. `riskstream replay` sets it from --from-timestamp."""
    stop_timestamp_ms: Millis = 0
    """Bounded runs stop before each partition's first record with a timestamp >= this (epoch
    ms); 0 = at the end offsets when the job starts. `riskstream replay` sets it from
    --to-timestamp."""


class IngestSettings(Section):
    """What the Kafka sources accept (docs/ingestion.md): raw bytes in, either a valid record or
    a dead letter out, whatever a producer sends."""

    dead_letter_max_bytes: Annotated[int, Field(ge=MIN_DEAD_LETTER_BYTES)] = 262_144
    """Largest dead-letter record (its JSON, bytes). A rejected payload that does not fit is
    truncated to the longest prefix that does (payload_truncated); the letter always carries the
    payload's full size, its SHA-256 and its topic, partition and offset, so the original can be
    found and checked. At most kafka.max_message_bytes - 1024."""
    min_event_time_ms: Millis = 946_684_800_000
    """Payments and labels with an event_time before this (epoch ms; default 2000-01-01) are
    dead-lettered: 0, or seconds mistaken for milliseconds, is a producer bug."""
    retention_horizon_ms: Millis = 0
    """With a value > 0, records read from Kafka whose event_time is older than
    features.allowed_lateness_ms + this before the time the job reads them are dead-lettered
    (set it to the input topics' retention, e.g. 7 days). 0 = no such bound: the project's
    simulated history (2018 by default) is replayed through Kafka. File backfills never apply
    it."""


class SimulatorSettings(Section):
    """Payment-stream simulator (`riskstream simulate`); its flags override these. Deterministic
    per seed."""

    profile: Profile = "realistic"
    """handbook (Fraud Detection Handbook design, card-present only) or realistic."""
    seed: int = 42
    """Seed of the numpy Generator: same seed and settings give the same bytes."""
    start_date: str = "2018-04-01"
    """First simulated day (UTC), YYYY-MM-DD."""
    days: Positive = 183
    """Number of simulated days."""
    source: str = "simulator"
    """The `source` field of every simulated event."""
    customers: Positive = 5_000
    """Handbook profile: customers (one card each)."""
    terminals: Positive = 10_000
    """Handbook profile: terminals (one merchant each)."""
    cards: Positive = 5_000
    """Realistic profile: cards."""
    merchants: Positive = 2_000
    """Realistic profile: merchants."""
    card_testing_rate: Share = 0.001
    """Realistic fraud scenario: card testing, as a share of all transactions."""
    impossible_travel_rate: Share = 0.0005
    """Realistic fraud scenario: impossible travel, as a share of all transactions."""
    account_takeover_rate: Share = 0.001
    """Realistic fraud scenario: account takeover, as a share of all transactions."""
    fraud_ring_rate: Share = 0.001
    """Realistic fraud scenario: fraud ring, as a share of all transactions."""
    compromised_merchant_rate: Share = 0.002
    """Realistic fraud scenario: compromised merchant, as a share of all transactions."""
    amount_spike_rate: Share = 0.0005
    """Realistic fraud scenario: amount spike, as a share of all transactions."""
    out_of_order_share: Share = 0.02
    """Share of transactions arriving after events with a later event time."""
    late_share: Share = 0.005
    """Share of transactions arriving 1 min..late_max_s late."""
    late_max_s: float = Field(default=21_600.0, ge=0)
    """Longest lateness of a late transaction, in seconds."""
    duplicate_share: Share = 0.005
    """Share of transactions re-sent (same event_id)."""
    malformed_share: Share = 0.001
    """Share of malformed records."""
    chargeback_delay_days: float = Field(default=7.0, ge=0)
    """Mean delay of a chargeback (fraud label), in days."""
    legit_label_share: Share = 0.05
    """Share of legit transactions later confirmed legitimate (the handbook profile labels every
    transaction)."""
    legit_label_delay_days: float = Field(default=2.0, ge=0)
    """Mean delay of those confirmations, in days."""
    format: FileFormat = "jsonl"
    """File format of --out: jsonl or parquet."""
    rate: float = Field(default=5_000.0, ge=0)
    """Events per second of --to-kafka (0 = as fast as possible)."""

    @field_validator("start_date")
    @classmethod
    def _date(cls, value: str) -> str:
        return _check_date(value, allow_empty=False)


class RuleSettings(Section):
    """One readable rule of the rule model: it fires when ``feature op threshold`` holds."""

    feature: str = Field(min_length=1)
    """A feature name of the feature set (schemas/feature_set.py)."""
    op: RuleOp = ">="
    """Comparison: >=, >, <= or <."""
    threshold: float = 0.0
    """The value the feature is compared with."""
    weight: float = Field(default=0.5, gt=0.0, lt=1.0)
    """Risk in (0, 1) the rule adds when it fires; fired rules combine as a noisy OR."""


def _default_rules() -> dict[str, RuleSettings]:
    rules = (
        ("large_amount", "amount", 220.0, 0.6),
        ("amount_spike", "amount_ratio_by_card_30d", 4.0, 0.5),
        ("risky_terminal_7d", "fraud_rate_by_terminal_7d_delay7d", 0.2, 0.6),
        ("risky_terminal_30d", "fraud_rate_by_terminal_30d_delay7d", 0.1, 0.4),
        ("card_testing_burst", "tx_count_by_card_1h", 5.0, 0.5),
        ("impossible_travel", "kmh_from_prev_cp_by_card", 900.0, 0.7),
        ("shared_device", "distinct_cards_by_device_1d", 3.0, 0.6),
        ("device_seen_fraud", "fraud_seen_by_device", 1.0, 0.5),
    )
    return {
        name: RuleSettings(feature=feature, op=">=", threshold=threshold, weight=weight)
        for name, feature, threshold, weight in rules
    }


class TrainingSettings(Section):
    """Model training (`riskstream train`) and the model registry (`riskstream models ...`)."""

    registry_dir: str = "registry"
    """Registry directory: one folder per model version (ONNX files, sha256, model card)."""
    train_days: Positive = 7
    """Time split, in whole UTC days: train on train_days..."""
    delay_days: Annotated[int, Field(ge=0)] = 7
    """... skip delay_days (labels not yet known)..."""
    test_days: Positive = 7
    """... test on test_days."""
    test_start: str = ""
    """First test day (YYYY-MM-DD); empty = the last test_days full days of the data."""
    only_known_labels: bool = True
    """Train on the fraud labels already known when the test period starts (true), or on every
    label (false: the Handbook's protocol, which assumes all training labels are known after the
    delay)."""
    known_compromised: KnownCompromised = "label_time"
    """Which test rows belong to cards already known compromised (removed from the test set, per
    test day D): label_time = a fraud since the training start whose label arrived before D;
    handbook = the Handbook's rule, a fraud on a day in [train start, D - delay_days) (labels
    assumed to arrive exactly delay_days later; `train --profile handbook` uses it); fixed = the
    former rule, one set as of the test start (kept for comparison). docs/training.md."""
    block_rate: Share = 0.002
    """Decision thresholds come from target shares of traffic: the highest-scored block_rate of
    payments are blocked..."""
    step_up_rate: Share = 0.01
    """... the next step_up_rate get a step-up challenge, the rest are approved."""
    stack_folds: Annotated[int, Field(ge=2)] = 3
    """Folds (whole days) for the out-of-fold scores the ensemble is fitted on."""
    seed: int = 7
    """Random seed of the models."""
    min_block_tail: Positive = 100
    """Stable thresholds: the block threshold is a quantile of the training (out-of-fold) ensemble
    scores, so it must rest on at least this many scores at or above it (the fraud side), i.e. at
    least min_block_tail / block_rate training rows (50,000 at the defaults). Fewer: `train` warns
    and records thresholds as unstable in the model card, and `--promote` refuses."""
    rules: dict[str, RuleSettings] = Field(default_factory=_default_rules)
    """The rule model: each rule fires when `feature op threshold`, adding `weight` as risk;
    fired rules combine as a noisy OR, score = 1 - prod(1 - weight). The scoring job evaluates
    the same rules with the same code (scoring/rules.py)."""

    @field_validator("test_start")
    @classmethod
    def _date(cls, value: str) -> str:
        return _check_date(value, allow_empty=True)

    @model_validator(mode="after")
    def _rates(self) -> TrainingSettings:
        if self.block_rate + self.step_up_rate >= 1.0:
            raise ValueError(
                "block_rate: expected block_rate + step_up_rate below 1, found "
                f"{self.block_rate} + {self.step_up_rate}"
            )
        return self


class BackfillSettings(Section):
    """Backfill job (`riskstream backfill`): historical files -> the feature job's graph ->
    Parquet."""

    rows_per_file: Positive = 50_000
    """Feature rows per Parquet file (a writer buffers this many records in memory)."""
    progress_interval_s: float = Field(default=5.0, gt=0)
    """Seconds between progress updates while the job runs."""
    max_reported_dead_letters: Annotated[int, Field(ge=0)] = 20
    """Dead letters printed with their file and row at the end (all are in
    <output>/dead_letters)."""


class AnalyticsSettings(Section):
    """Windowed analytics (riskstream run --job analytics, and attached to the scoring job):
    tumbling event-time windows per merchant, per merchant category (MCC) and over everything.
    Durations are ms of event time; watermarks come from the `features` section. A window fires
    when the watermark passes its end (revision 1); a late event that still fits fires it again
    with revision + 1."""

    allowed_lateness_ms: Millis = 600_000
    """Once the watermark is this far past the end of an event's minute window the event is too
    late: it goes to the late-events topic instead."""
    merchant_window_ms: Positive = 60_000
    """Window size of the merchant view (at most the mcc and global window sizes)."""
    mcc_window_ms: Positive = 3_600_000
    """Window size of the merchant-category view."""
    global_window_ms: Positive = 60_000
    """Window size of the global view."""
    shards: Positive = 2
    """Keys the per-payment stage is spread over (merchants hashed into shards; each shard keeps
    its merchants' windows and partial MCC and global totals, summed downstream). Use a multiple
    of the parallelism you run at; each MCC or global window gets up to this many partials. Fixed
    for the life of the job's state: changing it needs a fresh start (no savepoint)."""
    watermark_interval_ms: Positive = 200
    """How often the standalone job's source emits watermarks (Flink's
    pipeline.auto-watermark-interval). In a catch-up the watermark moves in steps of whatever was
    read in between: a shorter interval fires windows (and updates them with late events) closer
    to arrival order, at the cost of more watermark traffic."""
    group_id: str = "riskstream-analytics"
    """Consumer group of the standalone job's transactions source."""
    source: str = "riskstream-analytics"
    """The `source` of the standalone job's records."""
    guarantee: Guarantee = "EXACTLY_ONCE"
    """Delivery of the standalone job's analytics and late-events topics: EXACTLY_ONCE (Kafka
    transactions committed on checkpoints; read them with isolation.level=read_committed) or
    AT_LEAST_ONCE."""
    transactional_id_prefix: str = Field(default="riskstream-analytics", min_length=1)
    """Transactional id prefix of the exactly-once sinks (unique per job, stable across
    restarts)."""
    transaction_timeout_ms: Positive = 600_000
    """Kafka transaction timeout: at most the broker's transaction.max.timeout.ms (15 min)."""

    @model_validator(mode="after")
    def _windows(self) -> AnalyticsSettings:
        shortest = min(self.mcc_window_ms, self.global_window_ms)
        if self.merchant_window_ms > shortest:
            # The merchant stage decides "too late" for every view; a view with shorter windows
            # than the merchant's could close before it and count an event only partly.
            raise ValueError(
                "merchant_window_ms: expected at most the mcc and global window sizes, found "
                f"{self.merchant_window_ms} > {shortest}"
            )
        return self


class ScoringSettings(Section):
    """Scoring job (`riskstream run --job scoring`): features -> ONNX models in a vectorized
    (pandas) UDF -> decisions, prediction log and alerts."""

    registry_dir: str = ""
    """Registry to serve the champion from; empty = training.registry_dir."""
    profile: Profile = "realistic"
    """Generator profile of the traffic this deployment scores (realistic or handbook). `riskstream
    train --promote` and `riskstream models promote` refuse a model trained on another profile, on
    data whose profile is not recorded, or with an unstable block threshold
    (training.min_block_tail), unless --force (docs/training.md)."""
    latency_budget_ms: Positive = 250
    """Processing lag (wall clock minus the time the job read the payment: its ingestion stamp,
    so the queues in front of the feature stages count) above which the job sheds load: only the
    rules and fast_models run, decisions are marked degraded. The recovery level
    (recover_ratio x this) must sit above the job's normal latency or shedding never ends: at 200
    payments/s the lag from ingestion is 50-90 ms at the median on the shared 2-core machine, and
    the former 100 ms (when the lag started after the features) shed 26-44% of the decisions
    there (bench/latency.py, docs/benchmarks.md)."""
    recover_ratio: float = Field(default=0.5, gt=0.0, le=1.0)
    """Full scoring resumes once the lag is below recover_ratio x latency_budget_ms."""
    fast_models: Annotated[tuple[ModelName, ...], NoDecode] = ("logistic_regression",)
    """Models still run while shedding (cheap ones): a list of logistic_regression,
    gradient_boosting, mlp (a comma-separated string is accepted too)."""
    breaker_failures: Positive = 3
    """Circuit breaker: a model that raises or returns NaN makes its batch decide by the rules
    alone (degraded); after breaker_failures failing batches in a row it is skipped..."""
    breaker_cooldown_ms: Millis = 30_000
    """... for breaker_cooldown_ms, then tried again."""
    replay_memory_records: Annotated[int, Field(ge=0)] = 50_000
    """Replay memory: when the scoring UDF opens (start, restart after a failure, restore), it
    reads back the last replay_memory_records decisions of each decisions-topic partition, and a
    replayed payment is scored in the mode (full or shed) of its published decision, so it gets
    the same score and decision as the first time (docs/scoring.md). It must cover the decisions
    written between two checkpoints (rate x checkpoint.interval_ms); 0 turns it off."""
    fallback_step_up: Share = 0.4
    """Rules-only decisions: step up when the rules' noisy-OR score reaches this..."""
    fallback_block: Share = 0.7
    """... and block when it reaches this (at least fallback_step_up)."""
    group_id: str = "riskstream-scoring"
    """Consumer group of the job's Kafka sources."""
    source_name: str = "riskstream-scoring"
    """The `source` field of its output events."""
    decisions_guarantee: Guarantee = "AT_LEAST_ONCE"
    """Decisions (and alerts) go out at once, at least once (consumers drop duplicates by
    decision_id)."""
    prediction_log_guarantee: Guarantee = "EXACTLY_ONCE"
    """The prediction log, exactly once: visible to read_committed consumers when a checkpoint
    completes (so its latency is at least checkpoint.interval_ms)."""
    analytics_guarantee: Guarantee = "EXACTLY_ONCE"
    """The windowed analytics of the decided payments (analytics and late-events topics):
    exactly once by default, like the prediction log."""
    transactional_id_prefix: str = Field(default="riskstream-scoring", min_length=1)
    """Transactional id prefix of the exactly-once sinks (each sink adds its role, e.g.
    <prefix>-predictions, <prefix>-analytics): unique per job, stable across restarts."""
    transaction_timeout_ms: Positive = 600_000
    """Kafka transaction timeout; must not exceed the broker's transaction.max.timeout.ms
    (15 min)."""
    write_features: bool = False
    """Also write the enriched features to the features topic (the prediction log has them
    anyway)."""
    linger_ms: Millis = 0
    """Producer linger.ms of the low-latency sinks (decisions, alerts): 0 sends at once."""
    bundle_time_ms: Positive = 10
    """The scoring UDF receives a batch after at most this many ms (or flink.arrow_batch_size
    rows). A call costs about 2 ms whatever its size, so one-row batches spent the CPU on call
    overhead and saturated the job at 200 payments/s; at 10 ms the same run had p50 129 ms
    (bench/latency.py)."""
    analytics: bool = True
    """Also aggregate the decided payments into the windowed analytics (per merchant-minute,
    MCC-hour, global minute: decisions by class and mean score; see the `analytics` section)."""

    @field_validator("fast_models", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("fast_models")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"model names without repeats, found {list(value)}")
        return value

    @model_validator(mode="after")
    def _fallbacks(self) -> ScoringSettings:
        if self.fallback_step_up > self.fallback_block:
            raise ValueError(
                "fallback_step_up: expected at most fallback_block, found "
                f"{self.fallback_step_up} > {self.fallback_block}"
            )
        return self


class GuardrailSettings(Section):
    """Guardrails of the scoring job (docs/scoring.md, "Guardrails"): per window of event time,
    the share of blocked, stepped-up and out-of-training-range payments against the champion's
    model card. A block share above trip_multiple x the card's expected share for trip_ms switches
    the job to a safe mode (step up instead of block, marked degraded) and writes an alert to the
    guardrail_alerts topic. Windows are kept per parallel instance, in operator memory."""

    enabled: bool = True
    """Measure the shares, mark out-of-range features on each decision, raise alerts and switch
    to the safe mode; false: decisions carry no out_of_range_features and nothing is measured."""
    window_ms: Positive = 60_000
    """Length of a measurement window, in ms of event time (tumbling; the window clock is the
    latest event time the decision step has seen)."""
    min_rows: Positive = 200
    """A window with fewer decisions is reported (gauges) but not judged: it neither trips nor
    clears the safe mode."""
    trip_multiple: float = Field(default=5.0, gt=1.0)
    """The safe mode trips when the model's block share exceeds trip_multiple x the block share
    the model card expects ..."""
    trip_ms: Millis = 120_000
    """... in consecutive judged windows covering at least this many ms of event time (0: the
    first such window trips it)."""
    recover_multiple: float = Field(default=2.0, gt=0.0)
    """The safe mode ends when the model's block share stays at or below recover_multiple x the
    expected share for trip_ms (hysteresis: below trip_multiple)."""
    out_of_range_share: Share = 0.25
    """An out_of_range alert (no change to the decisions) is written when more than this share of
    a window's decisions have a feature outside its training range for trip_ms."""

    @model_validator(mode="after")
    def _hysteresis(self) -> GuardrailSettings:
        if self.recover_multiple >= self.trip_multiple:
            raise ValueError(
                "recover_multiple: expected below trip_multiple, found "
                f"{self.recover_multiple} >= {self.trip_multiple}"
            )
        return self


class DemoSettings(Section):
    """`riskstream demo` (`make demo`): a warm start of simulated history at full speed, then live
    payments paced at a rate, with a summary (docs/demo.md); its flags override these."""

    seconds: float = Field(default=60.0, gt=0)
    """Seconds of live traffic after the warm start."""
    rate: float = Field(default=200.0, gt=0)
    """Payment records per second of wall time in the live part. Event times are the
    generator's, so the rate sets how fast simulated time runs (200/s in the demo's world of
    1,500 cards is about one simulated day every 15 s), never how close one card's payments are."""
    interval_s: float = Field(default=5.0, gt=0)
    """Seconds between summary lines."""
    catch_up_timeout_s: float = Field(default=900.0, gt=0)
    """The warm start fails if the job has not decided every history payment this many seconds
    after the job started."""
    drain_s: float = Field(default=20.0, ge=0)
    """After the live part is sent, wait at most this long for the decisions still on their
    way."""
    cards: Positive = 1_500
    """Cards of the demo's world (realistic profile; the other generator settings come from the
    simulator section). The champion is trained on the same world: a champion trained on
    another size is replaced."""
    merchants: Positive = 200
    """Merchants of the demo's world."""
    report: bool = True
    """End by writing the HTML run report of the demo's topics (docs/report.md) to
    <run_dir>/demo/<topic prefix>/report.html and printing its path (--no-report skips it)."""


class Settings(BaseSettings):
    """Everything riskstream reads from configuration."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        case_sensitive=False,
    )

    paths: PathSettings = PathSettings()
    kafka: KafkaSettings = KafkaSettings()
    flink: FlinkSettings = FlinkSettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    metrics: MetricsSettings = MetricsSettings()
    skeleton: SkeletonSettings = SkeletonSettings()
    features: FeatureJobSettings = FeatureJobSettings()
    ingest: IngestSettings = IngestSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    training: TrainingSettings = TrainingSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    backfill: BackfillSettings = BackfillSettings()
    scoring: ScoringSettings = ScoringSettings()
    guardrails: GuardrailSettings = GuardrailSettings()
    demo: DemoSettings = DemoSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: :func:`core.config.load_settings` composes the sources itself
        (file < pydantic-settings' env source over a given mapping < --set, then the secrets), so a
        copy or re-validation never reads ``os.environ`` behind the caller's back."""
        return (init_settings,)

    @model_validator(mode="after")
    def _dead_letters_fit(self) -> Settings:
        room = self.kafka.max_message_bytes - RECORD_OVERHEAD_BYTES
        if self.ingest.dead_letter_max_bytes > room:
            raise ValueError(
                "ingest.dead_letter_max_bytes at most kafka.max_message_bytes - "
                f"{RECORD_OVERHEAD_BYTES} = {room}, found {self.ingest.dead_letter_max_bytes}"
            )
        return self

    @property
    def kafka_data_dir(self) -> Path:
        """Broker data directory (``kafka.data_dir`` or ``<run_dir>/kafka/data``)."""
        return (
            Path(self.kafka.data_dir).expanduser().resolve()
            if self.kafka.data_dir
            else (self.paths.run / "kafka" / "data")
        )

    @property
    def registry(self) -> Path:
        """The model registry the scoring job serves from (``scoring.registry_dir``, else
        ``training.registry_dir``)."""
        return Path(self.scoring.registry_dir or self.training.registry_dir).expanduser().resolve()

    @property
    def checkpoint_dir(self) -> Path:
        """Checkpoint directory (``checkpoint.dir`` or ``<run_dir>/checkpoints``)."""
        if self.checkpoint.dir:
            return Path(self.checkpoint.dir).expanduser().resolve()
        return self.paths.run / "checkpoints"
