"""History files: one discovery rule for every reader; archives read back as they were written."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.files import data_files
from features.history import stage_role
from training.dataset import load_labels

LABEL = (
    '{"event_id": "l-1", "event_time": 5, "schema_version": 1, "source": "test", '
    '"correlation_id": "c-1", "transaction_id": "t-1", "transaction_time": 1, "card_id": "c", '
    '"merchant_id": "m", "terminal_id": "t", "device_id": null, "label": "fraud", '
    '"label_type": "chargeback"}'
)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


@pytest.mark.parametrize("folder", ["_work", "plain"])
def test_inputs_under_a_folder_named_with_an_underscore_are_found(
    tmp_path: Path, folder: str
) -> None:
    """Only names below the input root are skipped (``_archive.json``, ``_progress/``), never the
    folders above it: every reader finds the same files wherever the input lives."""
    root = tmp_path / folder / "input"
    _write(root / "labels" / "day=2018-04-01" / "part-0.jsonl", LABEL + "\n")
    _write(root / "labels" / "_progress" / "part-0.jsonl", LABEL + "\n")
    assert len(load_labels(root)) == 1
    staged = stage_role("labels", root / "labels", tmp_path / "staged.lines")
    assert (staged.files, staged.records) == (1, 1)


def test_discovery_skips_manifests_progress_and_hidden_files_below_the_root(tmp_path: Path) -> None:
    root = tmp_path / "_out"
    keep = [
        _write(root / "day=2018-04-02" / "part-0.parquet", ""),
        _write(root / "day=2018-04-01" / "part-0.jsonl", ""),
    ]
    _write(root / "_progress" / "writer-1.jsonl", "")
    _write(root / ".part-0.jsonl.tmp" / "x.jsonl", "")
    _write(root / "notes.txt", "")
    assert data_files(root) == sorted(keep)
    assert data_files(keep[0]) == [keep[0]]
