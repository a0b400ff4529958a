"""History files: one discovery rule for every reader; archives read back as they were written."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from core.errors import SchemaError
from features.archive import PartitionWriter, archive_line, partition_dir, read_archive
from features.files import data_files
from features.history import stage_role
from riskstream.support.factories import label_for, payment
from training.dataset import load_labels

LABEL = msgspec.json.encode(label_for(payment("t-1", 1), 5)).decode()


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


def test_archive_lines_read_back_as_written_and_label_archives_load(tmp_path: Path) -> None:
    out = tmp_path / "labels"
    writer = PartitionWriter(partition_dir(out, 1), records_per_file=2)
    values = [LABEL.encode(), b"\xff not utf-8", None]
    for offset, value in enumerate(values):
        line = archive_line(
            "labels", 1, offset, timestamp=100 + offset, timestamp_type=1, key=b"k", value=value
        )
        writer.write(line)
    writer.close()
    files = data_files(out)
    assert [f.name for f in files] == ["part-000000.jsonl", "part-000001.jsonl"]
    records = [r for f in files for r in read_archive(f)]
    assert [(r.partition, r.offset, r.timestamp, r.key) for r in records] == [
        (1, 0, 100, "k"),
        (1, 1, 101, "k"),
        (1, 2, 102, "k"),
    ]
    assert records[0].value == LABEL
    assert records[1].value is None and records[1].value_b64 == "/yBub3QgdXRmLTg="
    assert records[2].payload == ""
    bad = _write(tmp_path / "bad" / "part-0.jsonl", records_line(0) + "\n{}\n")
    with pytest.raises(SchemaError, match=rf"{bad} row 1: not a topic-archive line"):
        list(read_archive(bad))
    only_label = tmp_path / "one" / "labels"
    _write(only_label / "partition=0" / "part-000000.jsonl", records_line(0) + "\n")
    assert load_labels(only_label)["transaction_id"].tolist() == ["t-1"]


def records_line(offset: int) -> str:
    """An archive line holding :data:`LABEL`."""
    return archive_line(
        "labels", 0, offset, timestamp=5, timestamp_type=1, key=None, value=LABEL.encode()
    )
