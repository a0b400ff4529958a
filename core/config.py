"""Settings: one frozen dataclass tree, loaded from the documented YAML defaults and overrides.

The defaults live in ``core/resources/riskstream.yaml`` (the documented file). A user file,
``RISKSTREAM__SECTION__KEY`` environment variables and ``--set section.key=value`` CLI overrides are
applied in that order. Unknown keys are refused so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError

ENV_PREFIX = "RISKSTREAM__"
ENV_CONFIG_FILE = "RISKSTREAM_CONFIG"
ENV_SASL_USERNAME = "RISKSTREAM_KAFKA_SASL_USERNAME"
ENV_SASL_PASSWORD = "RISKSTREAM_KAFKA_SASL_PASSWORD"
LOCAL_CONFIG_FILE = "riskstream.yaml"


@dataclass(frozen=True)
class PathSettings:
    """Where riskstream keeps downloads and runtime files."""

    cache_dir: str = "~/.cache/riskstream"
    run_dir: str = ".riskstream"
    jar_dir: str = ""

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


@dataclass(frozen=True)
class TopicSettings:
    """One Kafka topic the project uses."""

    name: str
    partitions: int = 0


@dataclass(frozen=True)
class KafkaSettings:
    """The local broker and how clients reach Kafka."""

    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    data_dir: str = ""
    heap: str = "1G"
    start_timeout_s: float = 90.0
    bootstrap_servers: str = ""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    default_partitions: int = 2
    topics: dict[str, TopicSettings] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers clients use: the configured cluster, else the local broker."""
        return self.bootstrap_servers or f"{self.host}:{self.port}"

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
        """confluent-kafka client settings, with SASL credentials taken from the environment."""
        conf = {"bootstrap.servers": self.bootstrap, "security.protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL"):
            user, password = os.environ.get(ENV_SASL_USERNAME), os.environ.get(ENV_SASL_PASSWORD)
            if not user or not password:
                raise ConfigError(
                    f"kafka.security_protocol is {self.security_protocol} but "
                    f"{ENV_SASL_USERNAME} / {ENV_SASL_PASSWORD} are not both set"
                )
            conf |= {"sasl.mechanism": self.sasl_mechanism, "sasl.username": user}
            conf["sasl.password"] = password
        return conf


@dataclass(frozen=True)
class FlinkSettings:
    """The local standalone cluster and the execution settings every job inherits."""

    rpc_port: int = 6123
    rest_port: int = 8081
    local_rest_port: int = 8082
    taskmanager_slots: int = 2
    jobmanager_memory: str = "1600m"
    taskmanager_memory: str = "2048m"
    parallelism: int = 1
    execution_mode: str = "thread"
    bundle_size: int = 1000
    bundle_time_ms: int = 5
    arrow_batch_size: int = 1000
    start_timeout_s: float = 90.0


@dataclass(frozen=True)
class CheckpointSettings:
    """Checkpointing and recovery; applied identically on the mini-cluster and the cluster."""

    interval_ms: int = 10_000
    mode: str = "EXACTLY_ONCE"
    state_backend: str = "rocksdb"
    incremental: bool = True
    dir: str = ""
    restart_attempts: int = 10
    restart_delay_ms: int = 1000
    restore_from: str = ""
    allow_non_restored_state: bool = False


@dataclass(frozen=True)
class SkeletonSettings:
    """The walking-skeleton job: a per-key counter from one topic to another."""

    input_topic: str = "skeleton-in"
    output_topic: str = "skeleton-out"
    key_field: str = "id"
    group_id: str = "riskstream-skeleton"


@dataclass(frozen=True)
class FeatureJobSettings:
    """The streaming feature job (``riskstream run --job features``); durations: event-time ms."""

    group_id: str = "riskstream-features"
    source: str = "riskstream-features"
    out_of_orderness_ms: int = 5_000
    idleness_ms: int = 30_000
    allowed_lateness_ms: int = 3_600_000
    max_future_skew_ms: int = 300_000
    dedup_horizon_ms: int = 86_400_000
    profile_retention_ms: int = 7_776_000_000
    buffer_timeout_ms: int = 5
    start_timestamp_ms: int = 0
    """Kafka sources start at each partition's first record with a timestamp >= this (epoch ms);
    0: the earliest offsets. Set by ``riskstream replay``."""
    stop_timestamp_ms: int = 0
    """Bounded runs stop before each partition's first record with a timestamp >= this (epoch
    ms); 0: at the end offsets when the job starts."""


@dataclass(frozen=True)
class SimulatorSettings:
    """The payment-stream simulator (``riskstream simulate``); its CLI flags override these.

    Rates of fraud scenarios are shares of all transactions (realistic profile); delivery shares are
    shares of the original transactions; durations are in the unit their name says.
    """

    profile: str = "realistic"
    seed: int = 42
    start_date: str = "2018-04-01"
    days: int = 183
    source: str = "simulator"
    customers: int = 5_000
    terminals: int = 10_000
    cards: int = 5_000
    merchants: int = 2_000
    card_testing_rate: float = 0.001
    impossible_travel_rate: float = 0.0005
    account_takeover_rate: float = 0.001
    fraud_ring_rate: float = 0.001
    compromised_merchant_rate: float = 0.002
    amount_spike_rate: float = 0.0005
    out_of_order_share: float = 0.02
    late_share: float = 0.005
    late_max_s: float = 21_600.0
    duplicate_share: float = 0.005
    malformed_share: float = 0.001
    chargeback_delay_days: float = 7.0
    legit_label_share: float = 0.05
    legit_label_delay_days: float = 2.0
    format: str = "jsonl"
    rate: float = 5_000.0


@dataclass(frozen=True)
class RuleSettings:
    """One readable rule of the rule model: it fires when ``feature op threshold`` holds."""

    feature: str = ""
    op: str = ">="
    threshold: float = 0.0
    weight: float = 0.5
    """Risk in (0, 1) the rule adds when it fires; fired rules combine as a noisy OR."""


@dataclass(frozen=True)
class TrainingSettings:
    """Training (``riskstream train``): time split, decision rates, rules and the registry."""

    registry_dir: str = "registry"
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7
    test_start: str = ""
    """First test day (YYYY-MM-DD); empty: the last ``test_days`` full days of the data."""
    only_known_labels: bool = True
    """Train on the fraud labels known when the test period starts (else on all labels)."""
    known_compromised: str = "label_time"
    """Per-test-day removal of known-compromised cards: label_time, handbook or fixed."""
    block_rate: float = 0.002
    step_up_rate: float = 0.01
    stack_folds: int = 3
    seed: int = 7
    min_block_tail: int = 100
    """Fewest out-of-fold training scores at or above the block threshold for a stable one."""
    rules: dict[str, RuleSettings] = field(default_factory=dict)


@dataclass(frozen=True)
class BackfillSettings:
    """The backfill job (``riskstream backfill``): replay of historical files through the feature
    job's graph into Parquet."""

    rows_per_file: int = 50_000
    progress_interval_s: float = 5.0
    max_reported_dead_letters: int = 20


@dataclass(frozen=True)
class AnalyticsSettings:
    """Windowed analytics (``riskstream run --job analytics``); durations are event-time ms."""

    allowed_lateness_ms: int = 600_000
    """A window accepts updates until the watermark passes its end by this much."""
    merchant_window_ms: int = 60_000
    mcc_window_ms: int = 3_600_000
    global_window_ms: int = 60_000
    group_id: str = "riskstream-analytics"
    source: str = "riskstream-analytics"
    guarantee: str = "EXACTLY_ONCE"
    """Delivery of the standalone job's analytics and late-events topics."""
    transactional_id_prefix: str = "riskstream-analytics"
    transaction_timeout_ms: int = 600_000


@dataclass(frozen=True)
class ScoringSettings:
    """The scoring job (``riskstream run --job scoring``): models, degraded modes, outputs."""

    registry_dir: str = ""
    profile: str = "realistic"
    """Generator profile of the traffic this deployment scores; promotion refuses other models."""
    latency_budget_ms: int = 100
    recover_ratio: float = 0.5
    fast_models: str = "logistic_regression"
    breaker_failures: int = 3
    breaker_cooldown_ms: int = 30_000
    fallback_step_up: float = 0.4
    fallback_block: float = 0.7
    group_id: str = "riskstream-scoring"
    source_name: str = "riskstream-scoring"
    decisions_guarantee: str = "AT_LEAST_ONCE"
    prediction_log_guarantee: str = "EXACTLY_ONCE"
    analytics_guarantee: str = "EXACTLY_ONCE"
    transactional_id_prefix: str = "riskstream-scoring"
    transaction_timeout_ms: int = 600_000
    write_features: bool = False
    linger_ms: int = 0
    bundle_time_ms: int = 10
    analytics: bool = True


@dataclass(frozen=True)
class Settings:
    """Everything riskstream reads from configuration."""

    paths: PathSettings = field(default_factory=PathSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    flink: FlinkSettings = field(default_factory=FlinkSettings)
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    skeleton: SkeletonSettings = field(default_factory=SkeletonSettings)
    features: FeatureJobSettings = field(default_factory=FeatureJobSettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    backfill: BackfillSettings = field(default_factory=BackfillSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)

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


def _defaults_document() -> dict[str, Any]:
    text = resources.files("core.resources").joinpath("riskstream.yaml").read_text("utf-8")
    loaded = yaml.safe_load(text)
    return dict(loaded)


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any], where: str) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value, f"{where}{key}.")
        else:
            merged[key] = value
    return merged


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Convert a YAML/env value to the annotated type, or raise naming the key."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, found {value!r}")
        return _build(hint, value, where + ".")
    if origin is dict:
        _, value_type = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, found {value!r}")
        return {str(k): _coerce(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], where)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"true", "1", "yes", "on"}:
                return True
            if text in {"false", "0", "no", "off"}:
                return False
            raise ValueError(value)
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if hint in (int, float, str):
            return hint(value if value is not None else "")
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {hint.__name__}, found {value!r}") from None
    raise ConfigError(f"{where}: unsupported setting type {hint!r}")


def _build(cls: type[Any], data: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(prefix + u for u in unknown)}; "
            f"valid keys under {prefix or 'the top level'}: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        _set_path(overrides, path, value, origin=name)
    return overrides


def _set_path(target: dict[str, Any], path: list[str], value: Any, origin: str) -> None:
    if not path:
        raise ConfigError(f"{origin}: empty setting name")
    node = target
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{origin}: {part} is not a section")
    node[path[-1]] = value


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """Turn ``section.key=value`` strings (CLI ``--set``) into a nested override mapping."""
    overrides: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        _set_path(overrides, key.strip().split("."), yaml.safe_load(raw), origin=f"--set {item}")
    return overrides


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load settings: defaults, then a config file, then env variables, then ``overrides``."""
    environ = os.environ if environ is None else environ
    document = _defaults_document()
    path = config_file or environ.get(ENV_CONFIG_FILE)
    if path is None and Path(LOCAL_CONFIG_FILE).is_file():
        path = LOCAL_CONFIG_FILE
    if path is not None:
        try:
            user = yaml.safe_load(Path(path).read_text("utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(user, Mapping):
            raise ConfigError(f"config file {path}: expected a mapping at the top level")
        document = _deep_merge(document, user, "")
    document = _deep_merge(document, _env_overrides(environ), "")
    document = _deep_merge(document, overrides or {}, "")
    settings: Settings = _build(Settings, document, "")
    return settings


def with_overrides(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """A copy of ``settings`` with some keys of some sections replaced (for flags and tests)."""
    changed: dict[str, Any] = {}
    for section, values in sections.items():
        current = getattr(settings, section)
        changed[section] = dataclasses.replace(current, **values)
    return dataclasses.replace(settings, **changed)
