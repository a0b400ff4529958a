"""Reason codes of a whole batch, vectorized: the fired rules, the features that raised the
fraud log-odds most, and the batch's degraded-mode codes, joined into one string per row.

Each distinct combination of fired rules and top features in a batch is formatted once and
the rows take their string by index (``numpy.unique`` + fancy indexing): no Python loop per row.
The strings equal the former per-row formatting: ``rule:<name>`` for each fired rule in rule
order, then ``feature:<name>`` for each top feature by decreasing contribution, then the batch's
extra codes, joined by :data:`scoring.fields.REASON_SEPARATOR`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring.fields import REASON_SEPARATOR

NONE = -1
"""No feature in this top-k slot (fewer than k positive contributions)."""


def top_indices(contributions: npt.NDArray[np.floating[Any]], k: int) -> npt.NDArray[np.intp]:
    """Per row, the column indices of the ``k`` largest positive contributions, largest first;
    :data:`NONE` where fewer than ``k`` are positive (NaN is never chosen). Ties go to the lower
    column index. ``k`` passes of ``argmax`` instead of a full sort of every row.

    >>> top_indices(np.array([[0.5, 2.0, -1.0], [-1.0, 0.0, 3.0]]), 2).tolist()
    [[1, 0], [2, -1]]
    """
    rows = len(contributions)
    work = np.where(np.isnan(contributions), -np.inf, contributions).astype(np.float64)
    out = np.full((rows, k), NONE, dtype=np.intp)
    if rows == 0 or work.shape[1] == 0:
        return out
    every = np.arange(rows)
    for slot in range(min(k, work.shape[1])):
        best = np.argmax(work, axis=1)
        positive = work[every, best] > 0.0
        out[positive, slot] = best[positive]
        work[every, best] = -np.inf
    return out


def reason_strings(
    fired: npt.NDArray[np.bool_],
    rule_names: Sequence[str],
    top: npt.NDArray[np.intp] | None,
    feature_names: Sequence[str],
    extra: Sequence[str] = (),
) -> npt.NDArray[np.object_]:
    """One joined reason string per row (object array).

    ``fired``: rows x rules; ``top``: rows x k feature indices (:func:`top_indices`) or None;
    ``extra``: codes appended to every row (the batch's degraded mode, failed models).

    >>> fired, top = np.array([[True, False], [False, False]]), np.array([[1, -1], [-1, -1]])
    >>> reason_strings(fired, ["big", "night"], top, ["amount", "hour"], ["degraded:shed"]).tolist()
    ['rule:big;feature:hour;degraded:shed', 'degraded:shed']
    """
    rows = len(fired)
    rules = fired.shape[1]
    slots = 0 if top is None else top.shape[1]
    if rows == 0 or rules + slots == 0:
        return np.full(rows, REASON_SEPARATOR.join(extra), dtype=object)
    distinct, inverse = _distinct_rows(fired, top, len(feature_names))
    texts = np.empty(len(distinct), dtype=object)
    for u, (mask, features) in enumerate(distinct):
        codes = [f"rule:{rule_names[j]}" for j in range(rules) if mask >> j & 1]
        codes += [f"feature:{feature_names[j]}" for j in features if j != NONE]
        texts[u] = REASON_SEPARATOR.join([*codes, *extra])
    out: npt.NDArray[np.object_] = texts[inverse]
    return out


_KEY_BITS = 62


def _distinct_rows(
    fired: npt.NDArray[np.bool_], top: npt.NDArray[np.intp] | None, features: int
) -> tuple[list[tuple[int, tuple[int, ...]]], npt.NDArray[np.intp]]:
    """The distinct (fired-rule mask, top features) pairs of the rows and each row's index among
    them: one int64 key per row and a 1-D ``numpy.unique`` (a row-wise unique over a matrix is
    fifty times slower), or the row-wise unique when the key would not fit in 62 bits."""
    rules = fired.shape[1]
    slots = 0 if top is None else top.shape[1]
    radix = features + 1  # a slot holds NONE (-1) .. features - 1
    columns = [] if top is None else [top[:, slot].astype(np.int64) for slot in range(slots)]
    if rules + slots * max(radix - 1, 1).bit_length() <= _KEY_BITS:
        key = np.zeros(len(fired), dtype=np.int64)
        if rules:
            key = fired.astype(np.int64) @ (np.int64(1) << np.arange(rules, dtype=np.int64))
        for column in columns:
            key = key * radix + (column + 1)
        values, inverse = np.unique(key, return_inverse=True)
        decoded = []
        for value in values.tolist():
            rest, digits = value, []
            for _ in range(slots):
                rest, digit = divmod(rest, radix)
                digits.append(digit - 1)
            decoded.append((rest, tuple(reversed(digits))))
        return decoded, np.asarray(inverse, dtype=np.intp).reshape(-1)
    parts = [np.packbits(fired, axis=1, bitorder="little").astype(np.int64)] if rules else []
    parts += [column.reshape(-1, 1) for column in columns]
    rows, inverse = np.unique(np.column_stack(parts), axis=0, return_inverse=True)
    width = (rules + 7) // 8 if rules else 0
    decoded = [
        (
            int.from_bytes(bytes(row[:width].astype(np.uint8).tolist()), "little"),
            tuple(int(j) for j in row[width:]),
        )
        for row in rows
    ]
    return decoded, np.asarray(inverse, dtype=np.intp).reshape(-1)
