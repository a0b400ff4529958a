"""Walking-skeleton functions: parse a JSON event and count events per key in keyed state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

COUNT_STATE = "count"


def key_of(raw: bytes | str, key_field: str) -> str:
    """The key of one JSON event: the string value of ``key_field`` (empty if absent or if the
    value is not JSON in UTF-8)."""
    try:
        document = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return ""
    return str(document.get(key_field, "")) if isinstance(document, dict) else ""


class KeyCounter(KeyedProcessFunction):  # type: ignore[misc]
    """Emits ``{"key": k, "count": n}`` for the n-th event of key k (a ValueState counter)."""

    def __init__(self) -> None:
        self._count: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        """Create the state handle once per worker."""
        self._count = runtime_context.get_state(ValueStateDescriptor(COUNT_STATE, Types.LONG()))

    def process_element(
        self, value: bytes | str, ctx: KeyedProcessFunction.Context
    ) -> Iterator[str]:
        """Increment the key's counter and emit it."""
        count = (self._count.value() or 0) + 1
        self._count.update(count)
        yield json.dumps({"key": ctx.get_current_key(), "count": count}, separators=(",", ":"))
