"""Point-in-time training sets: backfilled features joined with the labels known by a cutoff.

API (stable; the training pipeline builds on it)::

    features = load_features("backfill-out/")      # backfill Parquet or a features-topic archive
    labels = load_labels("sim/labels/")            # simulator files or a labels-topic archive
    train = build_training_set(features, labels, cutoff_ms=1_530_000_000_000)

``build_training_set`` returns one row per payment whose ``event_time`` is before ``cutoff_ms``
(payments after the cutoff did not exist yet), with the columns, in this order:

- ``event_id`` (str), ``event_time`` (int64 epoch ms), ``card_id`` (str), ``terminal_id`` (str);
- every feature of ``schemas.feature_set.PAYMENT_FEATURES.names``, in that order (float64);
- ``label`` (int64): 1 if a fraud label of the payment arrived before the cutoff, else 0
  (unlabelled payments count as legitimate *as of the cutoff*, which is what a model trained at
  that moment could know);
- ``label_time`` (nullable Int64 epoch ms): arrival time of the label that decided ``label``
  (the earliest fraud label, else the earliest legit confirmation), null when none had arrived.

Leakage rule: a label is used only if its ``event_time`` (when it became known) is strictly before
``cutoff_ms``; a fraud label arriving at or after the cutoff leaves the payment at 0. Re-sent
duplicates (``duplicate`` true) are dropped, so each payment appears once, with the features of its
first arrival. Features themselves are point-in-time by construction: the feature job only uses
events and labels that arrived before each payment, with event time before it.

No pyflink here: this module runs in plain Python (pandas / pyarrow).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import SchemaError
from features.archive import is_archive_file, read_archive
from features.files import PARQUET_SUFFIX, data_files
from features.table import read_features
from schemas.feature_set import PAYMENT_FEATURES
from schemas.validation import RecordSchemaError, decode

FEATURE_NAMES: tuple[str, ...] = PAYMENT_FEATURES.names
KEY_COLUMNS = ("event_id", "event_time", "card_id", "terminal_id")
LABEL_COLUMNS = ("label", "label_time")
OUTPUT_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, *FEATURE_NAMES, *LABEL_COLUMNS)
LABEL_FIELDS = ("event_id", "event_time", "transaction_id", "transaction_time", "label")
FRAUD = "fraud"
LEGIT = "legit"


def load_features(path: str | Path) -> pd.DataFrame:
    """Backfilled features (Parquet from ``riskstream backfill``) or a features-topic archive."""
    return read_features(path)


def _label_lines(file: Path) -> Iterator[tuple[int, str]]:
    """(row, label JSON) of a label file: the payloads of a labels-topic archive, else its lines."""
    if is_archive_file(file):
        for record in read_archive(file):
            if record.value is None:
                raise SchemaError(f"{file} row {record.row}: archive line without a 'value' string")
            yield record.row, record.value
        return
    with file.open("r", encoding="utf-8") as handle:
        for row, line in enumerate(handle):
            if line.strip():
                yield row, line


def _label_rows_jsonl(file: Path) -> list[dict[str, Any]]:
    rows = []
    for row, text in _label_lines(file):
        try:
            label = decode("label", text)
        except RecordSchemaError as exc:
            raise SchemaError(f"{file} row {row}: {exc}") from exc
        rows.append({name: getattr(label, name) for name in LABEL_FIELDS})
    return rows


def load_labels(path: str | Path) -> pd.DataFrame:
    """Labels from simulator files (``labels/day=*/part-0.{jsonl,parquet}``), a labels-topic
    archive, or a directory holding ``labels/``. Columns: ``event_id, event_time,
    transaction_id, transaction_time, label`` (``label`` is ``"fraud"`` or ``"legit"``)."""
    root = Path(path)
    if root.is_dir() and (root / "labels").is_dir():
        root = root / "labels"
    files = data_files(root)
    if not files:
        raise SchemaError(f"{root}: no .parquet or .jsonl label files found")
    frames = []
    for file in files:
        if file.suffix == PARQUET_SUFFIX:
            try:
                table = pq.read_table(file)
            except (pa.ArrowInvalid, OSError) as exc:
                raise SchemaError(f"{file}: cannot read Parquet labels: {exc}") from exc
            missing = [n for n in LABEL_FIELDS if n not in table.schema.names]
            if missing:
                raise SchemaError(
                    f"{file}: expected label columns {LABEL_FIELDS}, missing {missing}"
                )
            frames.append(table.select(list(LABEL_FIELDS)).to_pandas())
        else:
            frames.append(pd.DataFrame(_label_rows_jsonl(file), columns=list(LABEL_FIELDS)))
    labels = pd.concat(frames, ignore_index=True)
    return labels.astype({"event_time": "int64", "transaction_time": "int64"})


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{what}: expected columns {list(columns)}, missing {missing}")


def labels_as_of(labels: pd.DataFrame, cutoff_ms: int) -> pd.DataFrame:
    """Per transaction, the label known strictly before ``cutoff_ms``: columns
    ``transaction_id, label (0/1), label_time``. Fraud wins over legit; earliest arrival decides.

    >>> frame = pd.DataFrame({"transaction_id": ["a", "a", "b"], "event_time": [5, 20, 7],
    ...                       "label": ["legit", "fraud", "fraud"]})
    >>> labels_as_of(frame, 10).to_dict("records")
    [{'transaction_id': 'a', 'label': 0, 'label_time': 5}, {'transaction_id': 'b', 'label': 1, \
'label_time': 7}]
    """
    _require(labels, ("transaction_id", "event_time", "label"), "labels")
    known = labels.loc[labels["event_time"] < cutoff_ms, ["transaction_id", "event_time", "label"]]
    known = known.assign(fraud=(known["label"] == FRAUD).astype("int64"))
    known = known.sort_values(
        ["transaction_id", "fraud", "event_time"], ascending=[True, False, True]
    )
    first = known.drop_duplicates("transaction_id", keep="first")
    return pd.DataFrame(
        {
            "transaction_id": first["transaction_id"].to_numpy(),
            "label": first["fraud"].to_numpy(dtype="int64"),
            "label_time": first["event_time"].to_numpy(dtype="int64"),
        }
    )


def build_training_set(
    features: pd.DataFrame, labels: pd.DataFrame, cutoff_ms: int
) -> pd.DataFrame:
    """Payments before ``cutoff_ms`` with their features and the label known by then.

    See the module docstring for the columns and the leakage rule.
    """
    _require(features, (*KEY_COLUMNS, *FEATURE_NAMES), "features")
    rows = features.loc[features["event_time"] < cutoff_ms]
    if "duplicate" in rows.columns:
        rows = rows.loc[~rows["duplicate"].astype(bool)]
    rows = rows.drop_duplicates("event_id", keep="first")
    known = labels_as_of(labels, cutoff_ms)
    joined = rows.loc[:, list(KEY_COLUMNS + FEATURE_NAMES)].merge(
        known, how="left", left_on="event_id", right_on="transaction_id"
    )
    joined["label"] = joined["label"].fillna(0).astype("int64")
    joined["label_time"] = joined["label_time"].astype("Int64")
    joined["event_time"] = joined["event_time"].astype("int64")
    result = joined.loc[:, list(OUTPUT_COLUMNS)].sort_values(["event_time", "event_id"])
    return result.reset_index(drop=True)
