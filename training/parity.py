"""Training/serving parity: the live job's features against a backfill's, row by row.

Rows are matched by ``(event_id, duplicate)``: a re-sent payment has a second row flagged
duplicate, and the live features topic (several partitions, no key) does not keep the order of two
rows of one event. Rows sharing a match key are paired in sorted order. Compared per row:

- exactly: ``event_time``, ``card_id``, ``terminal_id``, ``device_id``, ``feature_set``,
  ``feature_set_version``, ``feature_set_hash``;
- every feature of the feature set, to :data:`FLOAT_RTOL` relative (exactly equal also passes,
  so 0 == 0 and -1 == -1).

Not compared, and why: ``computed_time`` and ``watermark_lag_ms`` are wall-clock readings of the
run; ``late`` depends on when the periodic watermark (every 200 ms of processing time) reached the
operator, which differs between any two runs that read at different speeds. Their disagreements
are counted in the summary as information. Rows present on one side only are mismatches. Rows
identical in every column (including ``computed_time``) are one record delivered twice by an
at-least-once sink: one copy is kept and the copies are counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.table import FEATURE_NAMES, read_features

FLOAT_RTOL = 1e-9
MATCH_KEY = ("event_id", "duplicate")
EXACT_COLUMNS = (
    "event_time",
    "card_id",
    "terminal_id",
    "device_id",
    "feature_set",
    "feature_set_version",
    "feature_set_hash",
)
INFO_COLUMNS = ("late",)


@dataclass(frozen=True)
class Mismatch:
    """One disagreement: the row, the column and both values (``None``: row missing there)."""

    event_id: str
    duplicate: bool
    column: str
    live: Any
    backfill: Any


@dataclass(frozen=True)
class ParityReport:
    """The outcome of a comparison."""

    live_rows: int
    backfill_rows: int
    matched_rows: int
    mismatches: tuple[Mismatch, ...]
    info_differences: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No mismatch and the same rows on both sides."""
        return not self.mismatches


def load_side(path: Path) -> pd.DataFrame:
    """Features of one side: a backfill output dir, Parquet files or a features-topic archive."""
    return read_features(path)


def floats_equal(a: float, b: float, rtol: float = FLOAT_RTOL) -> bool:
    """Equal to ``rtol`` relative (NaN equals NaN).

    >>> floats_equal(1.0, 1.0 + 1e-12), floats_equal(1.0, 1.0001), floats_equal(0.0, 0.0)
    (True, False, True)
    """
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=rtol, abs_tol=0.0)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None or (isinstance(a, float) and isinstance(b, float)):
        if isinstance(a, float) and isinstance(b, float):
            return floats_equal(a, b)
        return _is_null(a) and _is_null(b)
    return bool(a == b)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _keyed(frame: pd.DataFrame) -> dict[tuple[str, bool], list[dict[str, Any]]]:
    groups: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for row in frame.to_dict("records"):
        groups.setdefault((str(row["event_id"]), bool(row["duplicate"])), []).append(row)
    for rows in groups.values():
        rows.sort(key=lambda r: tuple(r[name] for name in FEATURE_NAMES))
    return groups


def compare(live: pd.DataFrame, backfill: pd.DataFrame) -> ParityReport:
    """Compare two feature tables row by row (see the module docstring for the rules)."""
    info = dict.fromkeys(INFO_COLUMNS, 0)
    unique_live, unique_backfill = live.drop_duplicates(), backfill.drop_duplicates()
    info["identical_copies_dropped_live"] = len(live) - len(unique_live)
    info["identical_copies_dropped_backfill"] = len(backfill) - len(unique_backfill)
    live_groups, backfill_groups = _keyed(unique_live), _keyed(unique_backfill)
    mismatches: list[Mismatch] = []
    matched = 0
    for key in sorted(live_groups.keys() | backfill_groups.keys()):
        left, right = live_groups.get(key, []), backfill_groups.get(key, [])
        for i in range(max(len(left), len(right))):
            if i >= len(left) or i >= len(right):
                mismatches.append(
                    Mismatch(
                        key[0],
                        key[1],
                        "<row>",
                        "present" if i < len(left) else None,
                        "present" if i < len(right) else None,
                    )
                )
                continue
            a, b = left[i], right[i]
            matched += 1
            for column in (*EXACT_COLUMNS, *FEATURE_NAMES):
                if not _same(_plain(a[column]), _plain(b[column])):
                    mismatches.append(Mismatch(key[0], key[1], column, a[column], b[column]))
            for column in INFO_COLUMNS:
                if bool(a[column]) != bool(b[column]):
                    info[column] += 1
    return ParityReport(len(live), len(backfill), matched, tuple(mismatches), info)


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so ints compare as ints and floats as floats."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def render(report: ParityReport) -> str:
    """The printed report: a summary, then every mismatch."""
    lines = [
        f"live rows:     {report.live_rows}",
        f"backfill rows: {report.backfill_rows}",
        f"matched rows:  {report.matched_rows}",
        f"mismatches:    {len(report.mismatches)}",
        *(f"not compared, differing {k}: {v}" for k, v in report.info_differences.items()),
    ]
    for m in report.mismatches:
        lines.append(
            f"MISMATCH event_id={m.event_id} duplicate={m.duplicate} {m.column}: "
            f"live={m.live!r} backfill={m.backfill!r}"
        )
    lines.append("PARITY OK" if report.ok else "PARITY FAILED")
    return "\n".join(lines) + "\n"
