"""Corruptions that turn a valid transaction line into a malformed record, deterministically.

Each kind breaks the contract in one way the validator must catch: bad JSON, a missing required
field, a wrong type, a value out of range. ``variant`` picks which field and how.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from schemas.records import Transaction
from training.simulator.columns import MALFORMED_KINDS

REQUIRED_FIELDS: Final = tuple(f for f in Transaction.__struct_fields__ if f != "country")
WRONG_TYPES: Final[tuple[tuple[str, Any], ...]] = (
    ("amount", "12.50"),
    ("event_time", "2018-04-01T10:00:00Z"),
    ("card_id", 12345),
    ("channel", 1),
    ("latitude", "north"),
    ("schema_version", "1"),
    ("device_id", False),
    ("mcc", 5411),
)
OUT_OF_RANGE: Final[tuple[tuple[str, Any], ...]] = (
    ("amount", -12.5),
    ("amount", 2.5e7),
    ("latitude", 91.5),
    ("longitude", -180.5),
    ("mcc", "54111"),
    ("currency", "eur"),
    ("event_time", -1),
    ("channel", "atm"),
)


def corrupt(line: bytes, kind: int, variant: int) -> bytes:
    """``line`` broken in the way ``MALFORMED_KINDS[kind]`` names, picked by ``variant``."""
    name = MALFORMED_KINDS[kind]
    if name == "bad_json":
        return line[: 1 + variant % (len(line) - 1)]  # a proper prefix of an object never parses
    document: dict[str, Any] = msgspec.json.decode(line)
    if name == "missing_field":
        del document[REQUIRED_FIELDS[variant % len(REQUIRED_FIELDS)]]
    else:
        table = WRONG_TYPES if name == "wrong_type" else OUT_OF_RANGE
        field, value = table[variant % len(table)]
        document[field] = value
    return msgspec.json.encode(document)
