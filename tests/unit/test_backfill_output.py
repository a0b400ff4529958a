"""`riskstream backfill` never deletes what it did not write: the output-directory checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config import load_settings
from core.errors import JobError
from jobs import backfill


def _input(root: Path) -> Path:
    source = root / "sim"
    (source / "transactions").mkdir(parents=True)
    (source / "transactions" / "part-0.jsonl").write_text("{}\n", "utf-8")
    return source


def test_output_that_is_or_contains_the_input_is_refused(tmp_path: Path) -> None:
    source = _input(tmp_path)
    for output in (source, tmp_path, Path("/")):
        with pytest.raises(JobError, match="contains the input"):
            backfill.prepare_output(source, output)
    assert (source / "transactions" / "part-0.jsonl").is_file()


def test_dot_output_over_the_input_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _input(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(JobError, match="contains the input"):
        backfill.run(load_settings(environ={}), source, Path("."), say=lambda _: None)
    assert (source / "transactions" / "part-0.jsonl").is_file()


def test_non_empty_directory_that_is_no_backfill_output_is_refused(tmp_path: Path) -> None:
    source = _input(tmp_path)
    output = tmp_path / "precious"
    output.mkdir()
    (output / "thesis.tex").write_text("years of work", "utf-8")
    with pytest.raises(JobError, match="not a previous backfill output"):
        backfill.prepare_output(source, output)
    assert (output / "thesis.tex").read_text("utf-8") == "years of work"


def test_a_file_as_output_is_refused(tmp_path: Path) -> None:
    source = _input(tmp_path)
    target = tmp_path / "file"
    target.write_text("x", "utf-8")
    with pytest.raises(JobError, match="is a file"):
        backfill.prepare_output(source, target)


def test_previous_backfill_output_is_cleared_and_marked(tmp_path: Path) -> None:
    source = _input(tmp_path)
    output = tmp_path / "out"
    backfill.prepare_output(source, output)
    assert json.loads((output / backfill.MARKER_FILE).read_text("utf-8"))["input"] == str(
        source.resolve()
    )
    (output / backfill.FEATURES_DIR).mkdir()
    (output / backfill.FEATURES_DIR / "part-1.parquet").write_bytes(b"old")
    (output / backfill.SUMMARY_FILE).write_text("{}", "utf-8")
    backfill.prepare_output(source, output)
    assert sorted(p.name for p in output.iterdir()) == [backfill.MARKER_FILE]


def test_previous_output_holding_foreign_files_is_refused_untouched(tmp_path: Path) -> None:
    source = _input(tmp_path)
    output = tmp_path / "out"
    backfill.prepare_output(source, output)
    (output / backfill.FEATURES_DIR).mkdir()
    (output / "notes.md").write_text("mine", "utf-8")
    with pytest.raises(JobError, match=r"also holds notes\.md"):
        backfill.prepare_output(source, output)
    assert (output / "notes.md").is_file() and (output / backfill.FEATURES_DIR).is_dir()


def test_new_and_empty_outputs_are_accepted(tmp_path: Path) -> None:
    source = _input(tmp_path)
    (tmp_path / "empty").mkdir()
    for output in (tmp_path / "new" / "nested", tmp_path / "empty"):
        backfill.prepare_output(source, output)
        assert (output / backfill.MARKER_FILE).is_file()
