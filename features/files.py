"""Finding history files: the one discovery rule every reader of inputs uses.

Inputs are simulator output (``day=YYYY-MM-DD/part-0.{jsonl,parquet}``), topic archives
(``partition=<p>/part-<n>.jsonl``) and backfill output (``features/part-*.parquet``). Names that
start with ``_`` or ``.`` *below* the given path are skipped: archive manifests
(``_archive.json``), the backfill's ``_progress/``, hidden and temporary files. The folders above
the path are never looked at, so an input under ``/tmp/_work/`` is found like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.errors import SchemaError

JSONL_SUFFIX = ".jsonl"
PARQUET_SUFFIX = ".parquet"
DATA_SUFFIXES = (JSONL_SUFFIX, PARQUET_SUFFIX)
SKIPPED_PREFIXES = ("_", ".")


def data_files(path: Path, suffixes: Sequence[str] = DATA_SUFFIXES) -> list[Path]:
    """Data files at ``path`` (a file, or a directory searched recursively), sorted by path.

    Sorting by path keeps day partitions (``day=YYYY-MM-DD``) and numbered parts in order.
    Raises :class:`SchemaError` if ``path`` does not exist.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SchemaError(f"{path}: no such file or directory")
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.suffix in suffixes
        and not any(part.startswith(SKIPPED_PREFIXES) for part in p.relative_to(path).parts)
    )
