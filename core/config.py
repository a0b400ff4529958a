"""Loading settings: precedence, the environment, secrets, and errors that name the key.

Precedence, later wins: the model's defaults (:mod:`core.settings_model`) < a config file
(``--config FILE``, else ``$RISKSTREAM_CONFIG``, else ``./riskstream.yaml`` if present) <
environment variables ``RISKSTREAM__<SECTION>__<KEY>`` (nested with ``__``, read by
pydantic-settings) < CLI overrides (``--set section.key=value`` and each command's flags). Kafka
SASL credentials are :class:`~pydantic.SecretStr` values read only from
``RISKSTREAM_KAFKA_SASL_USERNAME`` / ``RISKSTREAM_KAFKA_SASL_PASSWORD``; a file, ``--set`` or
``RISKSTREAM__KAFKA__SASL_*`` may not set them. Unknown keys are refused with their path (and the
nearest valid key); every error is a :class:`~core.errors.ConfigError` naming the key, what was
expected and what was found.

Everything of the model is re-exported here (``from core.config import Settings, ...``). Checks
that need more than the settings run on the client before a job is submitted: :func:`check_job`
here, the registry part in ``riskstream.preflight``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import EnvSettingsSource
from pydantic_settings.exceptions import SettingsError
from pydantic_settings.sources.utils import parse_env_vars

from core.errors import ConfigError
from core.settings_model import (
    ENV_CONFIG_FILE,
    ENV_DELIMITER,
    ENV_PREFIX,
    ENV_SASL_PASSWORD,
    ENV_SASL_USERNAME,
    LOCAL_CONFIG_FILE,
    MASK,
    RECORD_OVERHEAD_BYTES,
    SECRET_ENV,
    AnalyticsSettings,
    BackfillSettings,
    CheckpointMode,
    CheckpointSettings,
    ExecutionMode,
    FeatureJobSettings,
    FileFormat,
    FlinkSettings,
    Guarantee,
    GuardrailSettings,
    IngestSettings,
    Job,
    KafkaSettings,
    KnownCompromised,
    MetricsSettings,
    ModelName,
    PathSettings,
    Profile,
    RuleOp,
    RuleSettings,
    SaslMechanism,
    ScoringSettings,
    Section,
    SecurityProtocol,
    Settings,
    SimulatorSettings,
    SkeletonSettings,
    StateBackend,
    TopicSettings,
    TrainingSettings,
    jaas_quote,
)

__all__ = [
    "ENV_CONFIG_FILE",
    "ENV_DELIMITER",
    "ENV_PREFIX",
    "ENV_SASL_PASSWORD",
    "ENV_SASL_USERNAME",
    "LOCAL_CONFIG_FILE",
    "MASK",
    "RECORD_OVERHEAD_BYTES",
    "SECRET_ENV",
    "AnalyticsSettings",
    "BackfillSettings",
    "CheckpointMode",
    "CheckpointSettings",
    "ExecutionMode",
    "FeatureJobSettings",
    "FileFormat",
    "FlinkSettings",
    "Guarantee",
    "GuardrailSettings",
    "IngestSettings",
    "Job",
    "KafkaSettings",
    "KnownCompromised",
    "MetricsSettings",
    "ModelName",
    "PathSettings",
    "Profile",
    "RuleOp",
    "RuleSettings",
    "SaslMechanism",
    "ScoringSettings",
    "Section",
    "SecurityProtocol",
    "Settings",
    "SimulatorSettings",
    "SkeletonSettings",
    "StateBackend",
    "TopicSettings",
    "TrainingSettings",
    "check_job",
    "config_file_path",
    "deep_merge",
    "defaults_document",
    "describe_errors",
    "field_type",
    "iter_fields",
    "jaas_quote",
    "job_guarantees",
    "load_settings",
    "parse_assignments",
    "read_config_file",
    "replace",
    "secrets_only",
    "to_document",
    "validate",
    "with_overrides",
]

_S = TypeVar("_S", bound=BaseModel)

# ---------------------------------------------------------------------------------------------
# Errors: a pydantic ValidationError -> one ConfigError line per problem, with the key's path.


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` -> X; ``X | None`` -> X."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is not None and type(None) in get_args(annotation):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation


def _node(root: type[BaseModel], loc: Sequence[str | int]) -> Any:
    """The annotation found at ``loc`` below ``root`` (``None`` if the path leaves the model)."""
    node: Any = root
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            if field is None:
                return None
            node = field.annotation
        elif get_origin(node) is dict:
            node = get_args(node)[1]
        elif get_origin(node) is tuple:
            node = get_args(node)[0]
        else:
            return None
    return _unwrap(node)


def _expected(annotation: Any) -> str | None:
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(annotation))
    if annotation in (int, float, bool, str):
        return str(annotation.__name__)
    return None


TYPE_ERRORS = {"int_parsing", "int_type", "int_from_float", "float_parsing", "float_type"}
TYPE_ERRORS |= {"bool_parsing", "bool_type", "string_type", "literal_error"}


def _one_error(error: Mapping[str, Any], root: type[BaseModel], prefix: str) -> str:
    loc = [p for p in error["loc"] if p != "function-after"]
    path = prefix + ".".join(str(p) for p in loc)
    found = error.get("input")
    if error["type"] == "extra_forbidden":
        parent = _node(root, loc[:-1])
        is_model = isinstance(parent, type) and issubclass(parent, BaseModel)
        known = list(parent.model_fields) if is_model else []
        if issubclass(root, Settings) and loc and loc[0] == "kafka" and loc[-1] in SECRET_ENV:
            return f"{path}: secret; expected only in ${SECRET_ENV[str(loc[-1])]}"
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; valid keys: {', '.join(known)}"
        return f"{path}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{path}: expected a value (required), found none"
    annotation = _node(root, loc)
    expected = _expected(annotation) if error["type"] in TYPE_ERRORS else None
    if expected is None:
        message = _SHOULD.sub("", str(error["msg"]).removeprefix("Value error, "))
        for words, symbol in _COMPARISONS:
            message = message.replace(words, symbol)
        expected = message[0].lower() + message[1:] if message else "a valid value"
    if isinstance(found, SecretStr) or (loc and loc[-1] in SECRET_ENV):
        found = MASK
    if error["type"] == "value_error":
        named = _NAMED.match(expected)
        if named:
            path = f"{path.rstrip('.')}.{named[1]}" if path.rstrip(".") else f"{path}{named[1]}"
            expected = named[2]
        if ", found " in expected:
            return f"{path or 'settings'}: expected {expected}"
    return f"{path or 'settings'}: expected {expected}, found {found!r}"


_COMPARISONS = (
    ("greater than or equal to ", ">= "),
    ("less than or equal to ", "<= "),
    ("greater than ", "> "),
    ("less than ", "< "),
)
_SHOULD = re.compile(r"^\w+ should (be|have) ")
_NAMED = re.compile(r"^(\w+): expected (.*)$", re.DOTALL)


def describe_errors(
    exc: ValidationError,
    root: type[BaseModel] | None = None,
    prefix: str = "",
    layers: Sequence[Layer] = (),
) -> str:
    """One line per validation problem: ``path: expected ..., found ...`` (secrets masked),
    followed by where the value came from when ``layers`` say so."""
    model: type[BaseModel] = root or Settings
    if root is not None and root is not Settings and not prefix:
        prefix = _section_prefix(root) or f"{root.__name__}: "
    lines = []
    for error in exc.errors(include_url=False):
        line = _one_error(error, model, prefix)
        origin = _origin(layers, [p for p in error["loc"] if p != "function-after"])
        lines.append(f"{line} (from {origin})" if origin else line)
    return "; ".join(dict.fromkeys(lines))


def _section_prefix(section: type[BaseModel]) -> str:
    for name, field in Settings.model_fields.items():
        if field.annotation is section:
            return f"{name}."
    return ""


# ---------------------------------------------------------------------------------------------
# Sources: file, environment (pydantic-settings), secrets from their own variables, overrides.


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' env source over a given mapping (``os.environ`` by default)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _env_document(environ: Mapping[str, str]) -> dict[str, Any]:
    sections = set(Settings.model_fields)
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        first = name[len(ENV_PREFIX) :].split(ENV_DELIMITER)[0].lower()
        if first not in sections:
            close = difflib.get_close_matches(first, sorted(sections), n=1)
            hint = f"did you mean {ENV_PREFIX}{close[0].upper()}?" if close else "no such section"
            raise ConfigError(f"{name}: unknown section {first!r}; {hint}")
    try:
        document: dict[str, Any] = _EnvSource(environ)()
    except SettingsError as exc:
        raise ConfigError(f"environment {ENV_PREFIX}*: {exc}") from exc
    return document


def _secrets_document(environ: Mapping[str, str]) -> dict[str, Any]:
    found = {key: environ[var] for key, var in SECRET_ENV.items() if environ.get(var)}
    return {"kafka": found} if found else {}


def _refuse_secrets(document: Mapping[str, Any], origin: str) -> None:
    kafka = document.get("kafka")
    if isinstance(kafka, Mapping):
        for key, var in SECRET_ENV.items():
            if key in kafka:
                raise ConfigError(
                    f"kafka.{key} ({origin}): secret; expected only in the environment "
                    f"variable {var}, never in a file, a flag or {ENV_PREFIX}KAFKA__*"
                )


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, mapping by mapping (override wins)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set_path(target: dict[str, Any], path: list[str], value: Any, origin: str) -> None:
    if not path or not all(path):
        raise ConfigError(f"{origin}: expected section.key, found an empty name")
    node = target
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{origin}: expected {part} to be a section, found a value")
    node[path[-1]] = value


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """Turn ``section.key=value`` strings (CLI ``--set``) into a nested override mapping."""
    overrides: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: expected a YAML value, found {raw!r}") from exc
        _set_path(overrides, key.strip().split("."), value, origin=f"--set {item}")
    return overrides


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A user config file as a mapping; raises naming the file."""
    try:
        user = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: expected valid YAML, found: {exc}") from exc
    if not isinstance(user, Mapping):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    return dict(user)


def defaults_document() -> dict[str, Any]:
    """The model's defaults as plain data (the base every source is merged into)."""
    return Settings.model_validate({}).model_dump(exclude=_SECRET_FIELDS)


_SECRET_FIELDS: Any = {"kafka": set(SECRET_ENV)}


def config_file_path(
    config_file: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> str | os.PathLike[str] | None:
    """Which config file applies: the argument, else ``$RISKSTREAM_CONFIG``, else
    ``./riskstream.yaml`` if it exists, else none."""
    path = config_file or environ.get(ENV_CONFIG_FILE)
    if path is None and Path(LOCAL_CONFIG_FILE).is_file():
        path = LOCAL_CONFIG_FILE
    return path


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load settings: defaults, then a config file, then env variables, then ``overrides``."""
    environ = os.environ if environ is None else environ
    document = defaults_document()
    path = config_file_path(config_file, environ)
    layers: list[Layer] = []
    if path is not None:
        layers.append((f"config file {path}", read_config_file(path)))
    layers.append((ENV_ORIGIN, _env_document(environ)))
    layers.append(("--set", overrides or {}))
    for origin, layer in layers:
        _refuse_secrets(layer, origin)
        document = deep_merge(document, layer)
    document = deep_merge(document, _secrets_document(environ))
    return validate(document, layers)


Layer = tuple[str, Mapping[str, Any]]
"""A source of settings (its name, its nested values), in precedence order."""
ENV_ORIGIN = "environment"


def _origin(layers: Sequence[Layer], loc: Sequence[str | int]) -> str | None:
    """Which layer gave the value at ``loc`` (the last one that has it), for error messages."""
    for name, layer in reversed(layers):
        node: Any = layer
        for part in loc:
            if not isinstance(node, Mapping) or str(part) not in node:
                break
            node = node[str(part)]
        else:
            if name == ENV_ORIGIN:
                return "environment " + ENV_PREFIX + ENV_DELIMITER.join(map(str, loc)).upper()
            return name
    return None


def validate(document: Mapping[str, Any], layers: Sequence[Layer] = ()) -> Settings:
    """Settings from a complete or partial document; :class:`ConfigError` lists every problem
    (each with the layer that gave the bad value, when ``layers`` are known)."""
    try:
        return Settings.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, layers=layers)) from exc


def replace(section: _S, **changes: Any) -> _S:
    """A validated copy of a settings section (or of the whole :class:`Settings`) with some
    fields changed: ``replace(settings.simulator, days=3)``."""
    try:
        return type(section).model_validate({**dict(section), **changes})
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, type(section))) from exc


def with_overrides(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """A validated copy of ``settings`` with some keys of some sections replaced (for flags and
    tests): ``with_overrides(s, kafka={"port": 19092})``."""
    unknown = sorted(set(sections) - set(Settings.model_fields))
    if unknown:
        valid = ", ".join(Settings.model_fields)
        raise ConfigError(f"{unknown[0]}: unknown section; valid: {valid}")
    changed = {name: replace(getattr(settings, name), **vals) for name, vals in sections.items()}
    return Settings.model_validate({**dict(settings), **changed})


def to_document(
    settings: BaseModel, secrets: Literal["exclude", "mask"] = "exclude"
) -> dict[str, Any]:
    """Settings as plain YAML/JSON data; secrets left out (``exclude``) or shown as ``MASK``."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    if isinstance(settings, Settings):
        kafka = data["kafka"]
        for key in SECRET_ENV:
            value = kafka.pop(key)
            if secrets == "mask" and value is not None:
                kafka[key] = MASK
    return data


def iter_fields(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf setting as (dotted path, FieldInfo), sections expanded; dict-valued fields
    (topics, rules) are leaves."""
    for name, field in model.model_fields.items():
        annotation = _unwrap(field.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from iter_fields(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


# ---------------------------------------------------------------------------------------------
# Checks that depend on which job runs: done on the client before submission (and by the jobs).

EXACTLY_ONCE: Guarantee = "EXACTLY_ONCE"


def job_guarantees(settings: Settings, job: str) -> dict[str, Guarantee]:
    """The delivery guarantee of each Kafka sink ``job`` writes, by setting name."""
    s, a = settings.scoring, settings.analytics
    if job == "scoring":
        found: dict[str, Guarantee] = {
            "scoring.decisions_guarantee": s.decisions_guarantee,
            "scoring.prediction_log_guarantee": s.prediction_log_guarantee,
        }
        if s.analytics:
            found["scoring.analytics_guarantee"] = s.analytics_guarantee
        return found
    if job == "analytics":
        return {"analytics.guarantee": a.guarantee}
    return {}


def check_job(settings: Settings, job: str) -> None:
    """Cross-field checks of the settings ``job`` uses; raises :class:`ConfigError`.

    An EXACTLY_ONCE sink commits Kafka transactions on checkpoints, so it needs
    ``checkpoint.interval_ms > 0``.
    """
    exactly_once = [k for k, g in job_guarantees(settings, job).items() if g == EXACTLY_ONCE]
    if exactly_once and settings.checkpoint.interval_ms <= 0:
        raise ConfigError(
            f"{job}: {', '.join(exactly_once)} EXACTLY_ONCE needs checkpointing: expected "
            "checkpoint.interval_ms > 0 (its output becomes visible when a checkpoint completes), "
            f"found {settings.checkpoint.interval_ms}; or set "
            + ", ".join(f"{k}=AT_LEAST_ONCE" for k in exactly_once)
        )


def field_type(model: type[BaseModel], name: str) -> Any:
    """The type of a field without ``Annotated`` / ``Optional`` wrappers (for CLI flags)."""
    return _unwrap(model.model_fields[name].annotation)


def secrets_only(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The secret variables of ``environ`` (default ``os.environ``) and nothing else: what a job
    reads besides its resolved settings file, which never holds secrets."""
    environ = os.environ if environ is None else environ
    return {var: environ[var] for var in SECRET_ENV.values() if var in environ}
