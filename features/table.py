"""The features table: enriched-features records as columns, written and read as Parquet.

One row per emitted feature record (a payment, or a re-sent duplicate of one): identifiers, event
time, feature-set name/version/hash, the flags, then one float64 column per feature of
:data:`schemas.feature_set.PAYMENT_FEATURES` in feature-set order. The backfill job writes it, the
parity check and the training-set builder read it. No pyflink here: ``training/`` imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import SchemaError
from features import output
from features.archive import read_archive
from features.events import TransactionLike
from features.files import PARQUET_SUFFIX, data_files
from schemas.feature_set import PAYMENT_FEATURES, FeatureValues

FEATURE_NAMES: tuple[str, ...] = PAYMENT_FEATURES.names
ID_COLUMNS = ("event_id", "event_time", "card_id", "terminal_id", "device_id")
META_COLUMNS = (
    "feature_set",
    "feature_set_version",
    "feature_set_hash",
    "duplicate",
    "late",
    "watermark_lag_ms",
    "computed_time",
)
HASH_METADATA_KEY = "riskstream.feature_set_hash"
"""Parquet key-value metadata of every features file: the spec hash that computed its rows."""
FILE_METADATA = {
    "riskstream.feature_set": PAYMENT_FEATURES.name,
    "riskstream.feature_set_version": str(PAYMENT_FEATURES.version),
    HASH_METADATA_KEY: PAYMENT_FEATURES.spec_hash(),
}
SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_time", pa.int64(), nullable=False),
        pa.field("card_id", pa.string(), nullable=False),
        pa.field("terminal_id", pa.string(), nullable=False),
        pa.field("device_id", pa.string()),
        pa.field("feature_set", pa.string(), nullable=False),
        pa.field("feature_set_version", pa.int64(), nullable=False),
        pa.field("feature_set_hash", pa.string(), nullable=False),
        pa.field("duplicate", pa.bool_(), nullable=False),
        pa.field("late", pa.bool_(), nullable=False),
        pa.field("watermark_lag_ms", pa.int64(), nullable=False),
        pa.field("computed_time", pa.int64(), nullable=False),
        *(pa.field(name, pa.float64(), nullable=False) for name in FEATURE_NAMES),
    ],
    metadata=FILE_METADATA,
)
BACKFILL_FEATURES_DIR = "features"
BACKFILL_SUMMARY_FILE = "_backfill.json"


def to_table(records: Sequence[output.EnrichedFeatures]) -> pa.Table:
    """Columns of ``records`` in :data:`SCHEMA` order."""
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    plain = ID_COLUMNS + META_COLUMNS
    for record in records:
        for name in plain:
            columns[name].append(getattr(record, name))
        values = record.features
        for name in FEATURE_NAMES:
            columns[name].append(values[name])
    return pa.table(columns, schema=SCHEMA)


def rows_table(
    rows: Sequence[tuple[TransactionLike, FeatureValues, bool, bool]],
    watermark_lag_ms: int,
    computed_time: int,
) -> pa.Table:
    """The table :func:`to_table` gives for the records :func:`features.output.build` makes of
    ``(payment, values, duplicate, late)`` rows with one lag and computed time, built column by
    column (no record, dict or per-cell append: the backfill's terminal pass emits it)."""
    n = len(rows)
    txs = [row[0] for row in rows]
    columns: dict[str, Any] = {
        "event_id": [tx.event_id for tx in txs],
        "event_time": [tx.event_time for tx in txs],
        "card_id": [tx.card_id for tx in txs],
        "terminal_id": [tx.terminal_id for tx in txs],
        "device_id": [tx.device_id for tx in txs],
        "feature_set": [PAYMENT_FEATURES.name] * n,
        "feature_set_version": [PAYMENT_FEATURES.version] * n,
        "feature_set_hash": [output.FEATURE_SET_HASH] * n,
        "duplicate": [row[2] for row in rows],
        "late": [row[3] for row in rows],
        "watermark_lag_ms": [watermark_lag_ms] * n,
        "computed_time": [computed_time] * n,
    }
    by_feature = zip(*(row[1].vector() for row in rows), strict=True) if n else ()
    for name, column in zip(FEATURE_NAMES, by_feature, strict=False):
        columns[name] = column
    for name in FEATURE_NAMES:
        columns.setdefault(name, [])
    return pa.table(columns, schema=SCHEMA)


def parse_json_records(lines: Iterable[bytes | str], origin: str) -> list[output.EnrichedFeatures]:
    """Decode enriched-features JSON documents; a bad one raises naming ``origin`` and the row."""
    records = []
    for row, line in enumerate(lines):
        try:
            records.append(output.decode(line))
        except Exception as exc:  # msgspec raises DecodeError/ValidationError
            raise SchemaError(
                f"{origin} row {row}: not an enriched-features record: {exc}"
            ) from exc
    return records


def _archive_values(path: Path) -> Iterator[str]:
    """Payloads of a topic archive file (:mod:`features.archive`), in file order."""
    for record in read_archive(path):
        if record.value is None:
            raise SchemaError(
                f"{path} row {record.row}: expected an archive line with a 'value' string"
            )
        yield record.value


def feature_files(path: str | Path) -> list[Path]:
    """The feature files :func:`read_features` reads at ``path``."""
    root = Path(path)
    if (root / BACKFILL_FEATURES_DIR).is_dir():
        root = root / BACKFILL_FEATURES_DIR  # a backfill output directory
    return data_files(root)


def file_hashes(path: str | Path) -> dict[Path, str | None]:
    """The feature-set hash in each Parquet file's metadata at ``path`` (None: not recorded, as
    in files written before the hash was recorded there; their rows still carry it)."""
    hashes: dict[Path, str | None] = {}
    for file in feature_files(path):
        if file.suffix != PARQUET_SUFFIX:
            continue
        try:
            metadata = pq.read_schema(file).metadata or {}
        except (pa.ArrowInvalid, OSError) as exc:
            raise SchemaError(f"{file}: cannot read Parquet features: {exc}") from exc
        value = metadata.get(HASH_METADATA_KEY.encode())
        hashes[file] = None if value is None else value.decode()
    return hashes


def read_features(path: str | Path) -> pd.DataFrame:
    """A features table from backfill Parquet output or from an archive of the features topic.

    ``path`` is a backfill output directory (its ``features/``), a Parquet file, a JSON Lines
    archive file, or a directory of either (found by :func:`features.files.data_files`).
    Columns follow :data:`SCHEMA`.
    """
    files = feature_files(path)
    if not files:
        raise SchemaError(f"{path}: no .parquet or .jsonl feature files found")
    tables = []
    for file in files:
        if file.suffix == PARQUET_SUFFIX:
            try:
                table = pq.read_table(file)
            except (pa.ArrowInvalid, OSError) as exc:
                raise SchemaError(f"{file}: cannot read Parquet features: {exc}") from exc
            missing = [n for n in SCHEMA.names if n not in table.schema.names]
            if missing:
                raise SchemaError(f"{file}: expected feature columns, missing {missing[:5]}")
            tables.append(table.select(SCHEMA.names).cast(SCHEMA))
        else:
            tables.append(to_table(parse_json_records(_archive_values(file), str(file))))
    frame: pd.DataFrame = pa.concat_tables(tables).to_pandas()
    return frame
