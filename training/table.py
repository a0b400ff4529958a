"""``riskstream train --table FILE``: the same model family on any tabular set (CSV or Parquet).

The features are the table's numeric columns (or ``--features``), renamed to snake_case
(``V1`` -> ``v1``, ``Amount`` -> ``amount``) and declared as a feature set ``table_<file stem>``
of event features, so the export, the model card and the registry work as for the payment
model. Such a model is registered as **not servable** by the payment job (the card's
``servable: false``) unless its columns are exactly the payment feature set, in order.

Time split: rows are ordered by the time column; the latest ``test_share`` of them (by time) are
the test set, the rest the training set (no label delay: a table has no label times). The
ensemble's folds and the boosting validation split follow :data:`PERIODS` blocks of consecutive
times with equal row counts (a table may span only days, like the ULB set's two). Each row is its
own card, so CP@100 is the precision of each test day's 100 highest-scored rows. The rule model
has no rules (its hand-set thresholds are for the payment features); its constant score stays in
the stack so the family is the one the scoring job serves.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.config import TrainingSettings, replace
from core.errors import ConfigError, SchemaError
from schemas.feature_set import PAYMENT_FEATURES, Dtype, Feature, FeatureSet, Key
from training import models, split, train

PERIODS = 12
"""Time blocks of a table's rows: the unit of the ensemble's folds and the boosting validation."""
TEST_SHARE = 0.25
TIME_UNITS = {"s": 1_000.0, "ms": 1.0}
_SNAKE = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class TableData:
    """A table prepared for :func:`training.train.run` and what the card records about it."""

    frame: pd.DataFrame
    feature_set: FeatureSet
    split: split.TimeSplit
    entry: dict[str, Any]


def snake(name: str) -> str:
    """A column name as a feature name.

    >>> [snake(n) for n in ("V1", "Amount", "tx count", "3ds")]
    ['v1', 'amount', 'tx_count', 'c_3ds']
    """
    text = _SNAKE.sub("_", name.strip().lower()).strip("_")
    return text if text and text[0].isalpha() else f"c_{text}"


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a frame (by its suffix)."""
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        if path.suffix.lower() in (".parquet", ".pq"):
            frame: pd.DataFrame = pq.read_table(path).to_pandas()
            return frame
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise SchemaError(f"{path}: cannot read the table: {exc}") from exc
    raise ConfigError(f"--table {path}: expected a .csv or .parquet file")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare(
    path: Path,
    label: str,
    time: str,
    *,
    features: Sequence[str] | None = None,
    time_unit: str = "s",
    test_share: float = TEST_SHARE,
) -> TableData:
    """Validate the table and build the training frame, feature set and time split."""
    raw = read_table(path)
    for role, column in (("--label", label), ("--time", time)):
        if column not in raw.columns:
            raise ConfigError(f"{role} {column!r}: not a column of {path} ({list(raw.columns)})")
    if time_unit not in TIME_UNITS:
        raise ConfigError(f"--time-unit: expected one of {list(TIME_UNITS)}, found {time_unit!r}")
    if not 0.0 < test_share < 1.0:
        raise ConfigError(f"--test-share: expected a share in (0, 1), found {test_share}")
    chosen = list(features) if features else [c for c in raw.columns if c not in (label, time)]
    unknown = [c for c in chosen if c not in raw.columns]
    if unknown:
        raise ConfigError(f"--features: {unknown} are not columns of {path}")
    numeric = [c for c in chosen if pd.api.types.is_numeric_dtype(raw[c])]
    if len(numeric) != len(chosen):
        raise SchemaError(
            f"{path}: feature columns must be numeric; found "
            f"{[c for c in chosen if c not in numeric]} (drop them with --features)"
        )
    names = [snake(c) for c in chosen]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ConfigError(f"{path}: columns map to the same feature name {clashes}; rename them")
    y = raw[label]
    values = set(pd.unique(y.dropna()))
    if not values <= {0, 1} or len(values) < 2:
        raise SchemaError(f"{path}: --label {label!r} must hold 0 and 1, found {sorted(values)}")
    if y.isna().any() or raw[chosen].isna().any().any():
        raise SchemaError(f"{path}: the label and feature columns must have no missing values")
    if pd.api.types.is_datetime64_any_dtype(raw[time]):
        event_time = raw[time].astype("int64") // 1_000_000
    elif pd.api.types.is_numeric_dtype(raw[time]):
        event_time = (raw[time].astype("float64") * TIME_UNITS[time_unit]).round().astype("int64")
    else:
        raise SchemaError(f"{path}: --time {time!r} must be numeric or a timestamp")
    frame = pd.DataFrame(
        {
            "event_id": [f"row-{i}" for i in range(len(raw))],
            "event_time": event_time.to_numpy(dtype=np.int64),
        }
    )
    frame["card_id"] = frame["event_id"]
    frame["terminal_id"] = ""
    for column, name in zip(chosen, names, strict=True):
        frame[name] = raw[column].to_numpy(dtype=np.float64)
    frame["label"] = y.astype("int64").to_numpy()
    frame["label_time"] = pd.array([None] * len(frame), dtype="Int64")
    frame = frame.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)
    frame["period"] = models.time_periods(frame["event_time"].to_numpy(), PERIODS)
    times = frame["event_time"].to_numpy()
    cut = int(times[min(len(times) - 1, int(len(times) * (1.0 - test_share)))])
    the_split = split.TimeSplit(int(times[0]), cut, cut, int(times[-1]) + 1)
    servable = tuple(names) == PAYMENT_FEATURES.names
    feature_set = (
        PAYMENT_FEATURES
        if servable
        else FeatureSet(
            name=f"table_{snake(path.stem)}",
            version=1,
            features=tuple(
                Feature(n, Dtype.FLOAT, Key.EVENT, f"column {c!r} of {path.name}")
                for n, c in zip(names, chosen, strict=True)
            ),
        )
    )
    entry = {
        "path": str(path),
        "sha256": _sha256(path),
        "rows": len(frame),
        "label": label,
        "time": time,
        "time_unit": time_unit,
        "test_share": test_share,
        "columns": dict(zip(names, chosen, strict=True)),
        "servable": servable,
    }
    return TableData(frame, feature_set, the_split, entry)


def table_settings(settings: TrainingSettings) -> TrainingSettings:
    """The training settings a table run uses: no rules, all labels known, no label-time removal."""
    return replace(
        settings, rules={}, only_known_labels=False, known_compromised=split.LABEL_TIME_RULE
    )


def train_table(
    data: TableData, settings: TrainingSettings, quiet: bool = False
) -> train.TrainingRun:
    """Train, evaluate and export the model family on a prepared table."""
    return train.run(
        data.frame,
        data.split.train_start_ms,
        data.split.test_end_ms,
        table_settings(settings),
        data.feature_set,
        quiet=quiet,
        the_split=data.split,
    )
