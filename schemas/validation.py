"""Decode and validate event records from JSON bytes, with errors that name the field.

The hot path is a pre-built ``msgspec.json.Decoder`` per contract; only a failing record pays for
building the message (``transaction: $.amount: expected >= 0.0, found -3``), which re-reads the raw
document to quote the offending value.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec

from core.errors import SchemaError
from schemas.records import (
    DeadLetter,
    Decision,
    GuardrailAlert,
    Label,
    PredictionLog,
    Transaction,
    WindowAnalytics,
)

RecordT = TypeVar("RecordT", bound=msgspec.Struct)

RECORD_TYPES: Final[dict[str, type[msgspec.Struct]]] = {
    "transaction": Transaction,
    "label": Label,
    "decision": Decision,
    "prediction_log": PredictionLog,
    "dead_letter": DeadLetter,
    "window_analytics": WindowAnalytics,
    "guardrail_alert": GuardrailAlert,
}
SCHEMA_DIR = "json"
ROOT_PATH = "$"
MAX_QUOTED_CHARS = 80
_UNREADABLE: Final = object()  # the raw document could not be re-read to quote the value

_AT_PATH = re.compile(r"^(?P<reason>.*) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_OWN_RULE = re.compile(r"^(?P<path>\$[^:]*): (?P<reason>.*)$", re.DOTALL)
_GOT = re.compile(r", got `(?P<found>[^`]*)`$")


class RecordSchemaError(SchemaError):
    """A record failed its contract; ``record_type``, ``path`` and ``reason`` say where and why."""

    def __init__(self, record_type: str, path: str | None, reason: str) -> None:
        where = f"{path}: " if path else ""
        super().__init__(f"{record_type}: {where}{reason}")
        self.record_type = record_type
        self.path = path
        self.reason = reason


@cache
def _decoder(record_type: str) -> msgspec.json.Decoder[Any]:
    try:
        return msgspec.json.Decoder(RECORD_TYPES[record_type])
    except KeyError:
        known = ", ".join(sorted(RECORD_TYPES))
        raise SchemaError(f"unknown record type {record_type!r}; known: {known}") from None


_TRANSACTION_DECODER: Final = msgspec.json.Decoder(Transaction)


def decode_transaction(data: bytes | str) -> Transaction:
    """Decode one transaction; the fastest path, used by the stream's source stage."""
    try:
        return _TRANSACTION_DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise _explain("transaction", data, exc) from exc
    except msgspec.DecodeError as exc:
        raise RecordSchemaError("transaction", None, f"not valid JSON: {exc}") from exc


def decode(record_type: str, data: bytes | str) -> Any:
    """Decode one record of ``record_type`` (a key of ``RECORD_TYPES``) or raise a schema error."""
    decoder = _decoder(record_type)
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise _explain(record_type, data, exc) from exc
    except msgspec.DecodeError as exc:
        raise RecordSchemaError(record_type, None, f"not valid JSON: {exc}") from exc


def _explain(
    record_type: str, data: bytes | str, exc: msgspec.ValidationError
) -> RecordSchemaError:
    """Rewrite a msgspec message into ``<path>: expected ..., found ...``."""
    message = str(exc)
    path, reason = ROOT_PATH, message
    if match := _AT_PATH.match(message):
        path, reason = match["path"], match["reason"]
    if match := _MISSING.match(reason):
        return RecordSchemaError(record_type, f"{path}.{match['field']}", "required field missing")
    if match := _UNKNOWN.match(reason):
        return RecordSchemaError(record_type, f"{path}.{match['field']}", "unknown field")
    if path == ROOT_PATH and (match := _OWN_RULE.match(reason)):
        return RecordSchemaError(record_type, match["path"], match["reason"])
    reason = reason[0].lower() + reason[1:] if reason else "invalid"
    if got := _GOT.search(reason):
        reason = reason[: got.start()] + f", found {got['found']}"
    elif (found := _value_at(data, path)) is not _UNREADABLE:
        reason = f"{reason}, found {_quote(found)}"
    return RecordSchemaError(record_type, path, reason)


def _value_at(data: bytes | str, path: str) -> Any:
    """The raw value at a msgspec path like ``$.decisions.block`` (``_UNREADABLE`` if absent)."""
    try:
        node: Any = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return _UNREADABLE
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path[len(ROOT_PATH) :]):
        key, index = part
        try:
            node = node[key] if key else node[int(index)]
        except (KeyError, IndexError, TypeError):
            return _UNREADABLE
    return node


def _quote(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= MAX_QUOTED_CHARS else text[:MAX_QUOTED_CHARS] + "..."


@cache
def json_schema(record_type: str) -> dict[str, Any]:
    """The JSON Schema document (draft 2020-12) of ``record_type``, loaded from package data."""
    if record_type not in RECORD_TYPES:
        raise SchemaError(f"unknown record type {record_type!r}; known: {sorted(RECORD_TYPES)}")
    name = f"{record_type}.v1.json"
    text = (Path(__file__).parent / SCHEMA_DIR / name).read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document
