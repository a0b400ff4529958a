"""Packed state blobs: int64/float64 columns as raw bytes inside msgpack, with a layout version.

A keyed stage's state is decoded and encoded once per event, so its blob layout is on the hot
path. Numbers kept as msgpack arrays cost a Python object each to decode (~12 ns per epoch-ms
int); the same column as the raw bytes of an :class:`array.array` is one ``memcpy`` either way
and is searched and summed in place (``bisect`` and ``sum`` accept arrays). A versioned blob is
:data:`MARK`, a layout version byte, then the msgpack body; ``0xC1`` is the one byte msgpack never
uses, so such a blob can never be mistaken for the unversioned msgpack of earlier releases
(:data:`LEGACY_LAYOUT`), which every stage still reads.

Columns are stored little-endian; on a big-endian machine they are byte-swapped on the way in and
out, so a blob moves between machines unchanged.

>>> ints = int64s([3, 1_700_000_000_000])
>>> int64s(column(ints)) == ints, layout(versioned(2, b"\\x90")), layout(b"\\x90")
(True, 2, 1)
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterable
from functools import partial
from typing import cast

MARK = 0xC1
"""First byte of a versioned blob (msgpack's never-used byte)."""
LEGACY_LAYOUT = 1
"""The unversioned msgpack layout of riskstream before issue 16 (lists of numbers)."""
BIG_ENDIAN = sys.byteorder != "little"


def versioned(version: int, body: bytes) -> bytes:
    """A blob of layout ``version`` around a msgpack ``body``."""
    return bytes((MARK, version)) + body


def layout(blob: bytes) -> int:
    """The layout version of a stored blob (:data:`LEGACY_LAYOUT` for unversioned msgpack)."""
    return blob[1] if len(blob) > 1 and blob[0] == MARK else LEGACY_LAYOUT


def body(blob: bytes) -> memoryview:
    """The msgpack body of a versioned blob (no copy)."""
    return memoryview(blob)[2:]


def _swapped(typecode: str, values: Iterable[float] | bytes = b"") -> array:  # type: ignore[type-arg]
    out = array(typecode, values)
    if isinstance(values, bytes):
        out.byteswap()
    return out


def _column_swapped(values: array) -> bytes:  # type: ignore[type-arg]
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped.tobytes()


int64s: Callable[..., array[int]]
"""``int64s(numbers or stored bytes)``: an int64 column (``array("q")``)."""
float64s: Callable[..., array[float]]
"""``float64s(numbers or stored bytes)``: a float64 column (``array("d")``)."""
column: Callable[[array[int] | array[float]], bytes]
"""The stored (little-endian) bytes of a column."""
if BIG_ENDIAN:  # pragma: no cover - every machine riskstream runs on is little-endian
    int64s, float64s, column = partial(_swapped, "q"), partial(_swapped, "d"), _column_swapped
else:
    int64s = cast("Callable[..., array[int]]", partial(array, "q"))
    float64s = cast("Callable[..., array[float]]", partial(array, "d"))
    column = cast("Callable[[array[int] | array[float]], bytes]", array.tobytes)
