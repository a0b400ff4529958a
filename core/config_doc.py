"""The documented YAML and the configuration reference, generated from the settings model.

``core/resources/riskstream.yaml`` (every key with its default and a comment) and the reference
section of ``docs/configuration.md`` are both rendered here from :class:`core.config.Settings`, so
a default or a description exists in one place only. ``make config-docs`` (``python -m
core.config_doc --write``) rewrites both; a unit test fails when either is stale.
``riskstream config show`` renders effective settings with the same layout (secrets masked).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from core.config import (
    ENV_CONFIG_FILE,
    ENV_DELIMITER,
    ENV_PREFIX,
    LOCAL_CONFIG_FILE,
    SECRET_ENV,
    Settings,
    field_type,
    to_document,
)

WIDTH = 100
RESOURCE = "riskstream.yaml"
DOCS_FILE = Path("docs") / "configuration.md"
BEGIN = "<!-- BEGIN generated reference: make config-docs -->"
END = "<!-- END generated reference -->"

_EXAMPLE = f"{ENV_PREFIX}KAFKA{ENV_DELIMITER}PORT"
HEADER = f"""\
# riskstream configuration: every key, its default, and what it means.
# Generated from the settings model (core/settings_model.py) by `make config-docs`: edit the model,
# not this file (a unit test fails when they differ). `riskstream config show` prints the
# effective settings; docs/configuration.md explains them.
#
# Precedence (later wins): these defaults < a config file (--config FILE, or the
# {ENV_CONFIG_FILE} environment variable, or ./{LOCAL_CONFIG_FILE} if present) < environment
# variables {ENV_PREFIX}<SECTION>{ENV_DELIMITER}<KEY> (e.g. {_EXAMPLE}=19092)
# < CLI flags (--set kafka.port=19092 and the command's own flags). Unknown keys are refused.
# Secrets never live here: Kafka SASL credentials come only from the environment variables
# {" / ".join(SECRET_ENV.values())}.
"""


def _text(info: FieldInfo | None, fallback: str | None = None) -> str:
    raw = (info.description if info is not None else None) or fallback or ""
    return " ".join(raw.split())


def _comment(text: str, indent: str) -> list[str]:
    if not text:
        return []
    width = WIDTH - len(indent) - 2
    return [f"{indent}# {line}" for line in textwrap.wrap(text, width)]


def _flow(value: Any) -> str:
    """One YAML value on one line (flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _sections() -> list[tuple[str, type[BaseModel]]]:
    found = []
    for name in Settings.model_fields:
        section = field_type(Settings, name)
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            raise TypeError(f"settings section {name}: expected a model, found {section!r}")
        found.append((name, section))
    return found


def _secret_line(name: str, value: Any, effective: bool) -> str:
    var = SECRET_ENV[name]
    if not effective:
        return f"  # {name}: only from ${var}, never in a file"
    state = "set (hidden)" if isinstance(value, SecretStr) else "not set"
    return f"  # {name}: {state}; only from ${var}"


def render_yaml(settings: Settings | None = None, comments: bool = True) -> str:
    """Settings as YAML in the documented layout; ``None`` renders the defaults.

    Secrets are never values: a comment says whether one is set. The output loads back through
    ``--config`` to the same settings.
    """
    effective = settings is not None
    current = settings if settings is not None else Settings.model_validate({})
    data = to_document(current)
    lines = HEADER.splitlines() if comments else []
    for section_name, section in _sections():
        if lines:
            lines.append("")
        if comments:
            lines += _comment(_text(None, section.__doc__), "")
        lines.append(f"{section_name}:")
        for name, info in section.model_fields.items():
            if comments:
                lines += _comment(_text(info), "  ")
            if section is type(current.kafka) and name in SECRET_ENV:
                lines.append(_secret_line(name, getattr(current.kafka, name), effective))
                continue
            value = data[section_name][name]
            if isinstance(value, dict) and value:
                lines.append(f"  {name}:")
                lines += [f"    {key}: {_flow(entry)}" for key, entry in value.items()]
            else:
                lines.append(f"  {name}: {_flow(value)}")
    return "\n".join(lines) + "\n"


def _constraints(info: FieldInfo) -> list[str]:
    symbols = {
        annotated_types.Ge: (">=", "ge"),
        annotated_types.Gt: (">", "gt"),
        annotated_types.Le: ("<=", "le"),
        annotated_types.Lt: ("<", "lt"),
    }
    found = []
    for item in info.metadata:
        for kind, (symbol, attr) in symbols.items():
            if isinstance(item, kind):
                found.append(f"{symbol} {getattr(item, attr)}")
        if isinstance(item, annotated_types.MinLen):
            found.append("not empty")
    return found


def type_name(kind: Any) -> str:
    """A short human name of a settings type (``int``, ``list of str``, ``one of a, b``)."""
    origin = get_origin(kind)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in get_args(kind))
    if origin is tuple:
        return "list of " + type_name(get_args(kind)[0])
    if origin is dict:
        entry = get_args(kind)[1]
        fields = ", ".join(entry.model_fields) if issubclass(entry, BaseModel) else "value"
        return f"map of name -> {{{fields}}}"
    if kind is SecretStr:
        return "secret"
    return str(getattr(kind, "__name__", kind))


def _cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped; angle brackets escaped outside `code`."""
    parts = text.replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def render_reference() -> str:
    """The Markdown reference of every key: type, default, meaning (docs/configuration.md)."""
    defaults = to_document(Settings.model_validate({}))
    out = []
    for section_name, section in _sections():
        out += ["", f"### `{section_name}`", "", _cell(_text(None, section.__doc__)), ""]
        out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for name, info in section.model_fields.items():
            kind = type_name(field_type(section, name))
            limits = _constraints(info)
            kind += f" ({', '.join(limits)})" if limits else ""
            if section_name == "kafka" and name in SECRET_ENV:
                default = f"env `{SECRET_ENV[name]}` only"
            else:
                value = defaults[section_name][name]
                default = f"{len(value)} entries, below" if isinstance(value, dict) else ""
                default = default or f"`{_flow(value)}`"
            key = f"`{section_name}.{name}`"
            out.append(f"| {key} | {_cell(kind)} | {default} | {_cell(_text(info))} |")
        for name, value in defaults[section_name].items():
            if isinstance(value, dict) and value:
                entry_type = get_args(field_type(section, name))[1]
                out += ["", f"Each entry of `{section_name}.{name}`:", ""]
                for key, info in entry_type.model_fields.items():
                    kind = type_name(field_type(entry_type, key))
                    limits = _constraints(info)
                    kind += f" ({', '.join(limits)})" if limits else ""
                    out.append(f"- `{key}` ({_cell(kind)}): {_cell(_text(info))}")
                out += ["", f"Default entries of `{section_name}.{name}`:", ""]
                out += [f"- `{key}`: `{_flow(entry)}`" for key, entry in value.items()]
    return "\n".join(out).lstrip("\n") + "\n"


def shipped_yaml() -> str:
    """The documented YAML as shipped in the package."""
    return resources.files("core.resources").joinpath(RESOURCE).read_text("utf-8")


def resource_path() -> Path:
    """The shipped YAML in the source tree (what ``--write`` rewrites)."""
    return Path(__file__).resolve().parent / "resources" / RESOURCE


def with_reference(document: str) -> str:
    """``document`` (docs/configuration.md) with its generated section replaced."""
    head, begin, rest = document.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"{DOCS_FILE}: expected the markers {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n\n{render_reference()}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m core.config_doc [--write]``: print the documented YAML, or rewrite the shipped
    YAML and the reference in docs/configuration.md (run from the repository root)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite both generated files")
    args = parser.parse_args(argv)
    if not args.write:
        sys.stdout.write(render_yaml())
        return 0
    resource_path().write_text(render_yaml(), "utf-8")
    docs = Path(__file__).resolve().parent.parent / DOCS_FILE
    docs.write_text(with_reference(docs.read_text("utf-8")), "utf-8")
    print(f"wrote {resource_path()} and {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
