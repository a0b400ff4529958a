"""Backfill: historical files -> the streaming feature job's own graph -> Parquet features.

Graph::

    staged transactions (one FileSource split, arrival order) -> record timestamps + watermarks
    staged labels       (one FileSource split, arrival order) -> record timestamps + watermarks
        -> jobs.features.build(...)   (the SAME validation, card/device/terminal stages)
        -> features: FeatureParquetWriter (pyarrow)      dead letters: FileSink (JSON Lines)

The input files are first staged (:mod:`features.history`) into one line file per role in arrival
order, each line carrying the record timestamp the live Kafka source used, so the backfill assigns
the same timestamps and the same bounded-out-of-orderness watermarks as the live job. Run it with
``riskstream backfill --input PATH --output DIR``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyflink.common import Types, WatermarkStrategy
from pyflink.common.serialization import Encoder
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.file_system import (
    FileSink,
    FileSource,
    OutputFileConfig,
    StreamFormat,
)

from core.config import Settings, with_overrides
from core.errors import JobError
from core.net import free_port
from core.progress import Progress
from features.history import (
    ROLES,
    FileProblem,
    StagedInput,
    describe,
    origins_of,
    role_dir,
    stage_role,
)
from features.table import BACKFILL_SUMMARY_FILE
from jobs import features as features_job
from jobs.env import create_env
from udfs.backfill_ops import PROGRESS_DIR, FeatureParquetWriter, StagedTimestamps, staged_payload

JOB_NAME = "riskstream-backfill"
FEATURES_DIR = "features"
DEAD_LETTER_DIR = "dead_letters"
STAGING_DIR = "_staging"
SUMMARY_FILE = BACKFILL_SUMMARY_FILE
STAGED_SUFFIX = ".lines"
POLL_S = 0.5
MARKER_FILE = "_riskstream_backfill.json"
"""Written first into every backfill output: what makes a directory a previous backfill output."""
OWN_ENTRIES = frozenset(
    {FEATURES_DIR, DEAD_LETTER_DIR, STAGING_DIR, PROGRESS_DIR, SUMMARY_FILE, MARKER_FILE}
)
"""Everything a backfill writes at the top of its output (and so may delete on a re-run)."""


@dataclass(frozen=True)
class BackfillResult:
    """What a backfill read and wrote."""

    output: Path
    inputs: dict[str, int]
    feature_rows: int
    dead_letters: int
    problems: tuple[FileProblem, ...]
    elapsed_s: float
    job_s: float


def staged_stream(
    env: StreamExecutionEnvironment, staged: Path, role: str, settings: Settings
) -> DataStream:
    """Raw payloads of one staged file with the live job's timestamps and watermarks."""
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(staged)
    ).build()
    lines = (
        env.from_source(source, WatermarkStrategy.no_watermarks(), f"backfill-{role}-files")
        .uid(f"backfill-{role}-files")
        .set_parallelism(1)
    )
    strategy = features_job.watermarks(settings).with_timestamp_assigner(StagedTimestamps())
    return (
        lines.map(lambda line: line, Types.STRING())
        .uid(f"backfill-{role}-lines")
        .name(f"{role} lines")
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(strategy)
        .uid(f"backfill-{role}-timestamps")
        .name(f"{role} timestamps")
        .set_parallelism(1)
        .map(staged_payload, Types.STRING())
        .uid(f"backfill-{role}-payloads")
        .name(f"{role} payloads")
        .set_parallelism(1)
    )


def dead_letter_sink(output: Path) -> FileSink:
    """Dead letters as JSON Lines under ``output/dead_letters`` (committed at checkpoints/end)."""
    config = OutputFileConfig.builder().with_part_prefix("dead-letter").with_part_suffix(".jsonl")
    return (
        FileSink.for_row_format(str(output / DEAD_LETTER_DIR), Encoder.simple_string_encoder())
        .with_output_file_config(config.build())
        .build()
    )


def build(
    env: StreamExecutionEnvironment,
    staged: dict[str, StagedInput],
    output: Path,
    settings: Settings,
) -> DataStream:
    """The backfill graph over staged files; returns the features stream (JSON strings)."""
    sources = features_job.FeatureSources(
        staged_stream(env, staged["transactions"].path, "transactions", settings),
        staged_stream(env, staged["labels"].path, "labels", settings),
    )
    sinks = features_job.FeatureSinks(features=None, dead_letter=dead_letter_sink(output))
    features = features_job.build(env, sources, sinks, settings)
    writer = FeatureParquetWriter(
        str(output / FEATURES_DIR), str(output), settings.backfill.rows_per_file
    )
    features.process(writer, output_type=Types.STRING()).uid("backfill-parquet").name(
        "parquet writer"
    )
    return features


def stage_inputs(source: Path, output: Path) -> dict[str, StagedInput]:
    """Stage every role found under ``source`` (labels are optional; transactions are not)."""
    if not source.exists():
        raise JobError(f"backfill input {source} does not exist")
    staged: dict[str, StagedInput] = {}
    for role in ROLES:
        directory = role_dir(source, role)
        target = output / STAGING_DIR / f"{role}{STAGED_SUFFIX}"
        if directory is None:
            if role == "transactions":
                raise JobError(
                    f"backfill input {source}: expected a 'transactions/' directory (simulator "
                    "output or a topic archive), found none"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("", "utf-8")
            staged[role] = StagedInput(role, target, 0, 0, ())
            continue
        staged[role] = stage_role(role, directory, target)
    return staged


def _progress(output: Path) -> tuple[int, int]:
    rows, max_time = 0, -1
    for path in (output / PROGRESS_DIR).glob("writer-*.json"):
        try:
            document = json.loads(path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        rows += int(document.get("rows", 0))
        max_time = max(max_time, int(document.get("max_event_time", -1)))
    return rows, max_time


def _root_cause(exc: BaseException) -> str:
    """The innermost 'Caused by' line of a Java failure, else the exception text."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip().startswith("Caused by")]
    return lines[-1] if lines else str(exc).strip().splitlines()[0]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M") if ms >= 0 else "-"


def dead_letters(output: Path) -> list[dict[str, Any]]:
    """Every dead letter the backfill wrote (committed files only)."""
    letters = []
    for path in sorted((output / DEAD_LETTER_DIR).rglob("dead-letter*.jsonl")):
        if path.name.startswith("."):
            continue
        for line in path.read_text("utf-8").splitlines():
            if line.strip():
                letters.append(json.loads(line))
    return letters


def _annotate(letters: list[dict[str, Any]], staged: dict[str, StagedInput]) -> None:
    """Add ``origin`` (file:row) to each dead letter by finding its payload in the staged files."""
    for role, record_type in (("transactions", "transaction"), ("labels", "label")):
        mine = [d for d in letters if d.get("record_type") == record_type]
        found = origins_of(staged[role].path, {str(d.get("payload")) for d in mine})
        for letter in mine:
            letter["origin"] = found.get(str(letter.get("payload")), "unknown")


def prepare_output(source: Path, output: Path) -> None:
    """Make ``output`` an empty backfill output, refusing anything that could delete other data.

    Refused (:class:`JobError`): an output that is the input or contains it (``--output .`` over
    the data, or a parent folder of it); an output that is a file; a non-empty directory that is
    not a previous backfill output (no :data:`MARKER_FILE` nor summary); a previous backfill
    output that also holds anything the backfill did not write. A previous output is cleared
    entry by entry (only :data:`OWN_ENTRIES`), never with one recursive delete of the folder.
    """
    source, output = source.resolve(), output.resolve()
    if output == source or output in source.parents:
        raise JobError(
            f"backfill output {output} contains the input {source}: the output is emptied before "
            "the run, so choose a directory outside the input"
        )
    if output.exists() and not output.is_dir():
        raise JobError(f"backfill output {output} is a file, expected a directory")
    entries = sorted(p.name for p in output.iterdir()) if output.is_dir() else []
    if entries:
        if MARKER_FILE not in entries and SUMMARY_FILE not in entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise JobError(
                f"backfill output {output} is not empty and is not a previous backfill output "
                f"(no {MARKER_FILE}); it holds {shown}. Choose a new or empty directory"
            )
        foreign = [e for e in entries if e not in OWN_ENTRIES]
        if foreign:
            raise JobError(
                f"backfill output {output} is a previous backfill output but also holds "
                f"{', '.join(foreign[:5])}, which the backfill did not write; move them away or "
                "choose another directory"
            )
        for name in entries:
            path = output / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    output.mkdir(parents=True, exist_ok=True)
    marker = {"written_by": JOB_NAME, "input": str(source), "started_utc": _now_iso()}
    (output / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", "utf-8")


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(
    settings: Settings,
    source: Path,
    output: Path,
    say: Callable[[str], None] | None = None,
    quiet: bool = False,
) -> BackfillResult:
    """Stage ``source``, run the backfill on the mini-cluster, report progress; blocks.

    ``say`` gets the staging, dead-letter and summary lines; the rows written while the job runs
    show as a progress bar (:mod:`core.progress`: only in a terminal, never with ``quiet``), read
    from the writers' progress files every ``backfill.progress_interval_s``."""
    say = say or (lambda text: print(text, file=sys.stderr))
    started = time.monotonic()
    prepare_output(source, output)
    generator = input_generator(source)
    staged = stage_inputs(source, output)
    problems = tuple(p for s in staged.values() for p in s.problems)
    for problem in problems:
        say(f"backfill: problem: {describe(problem)}")
    total = staged["transactions"].records
    say(
        f"backfill: staged {total} transaction record(s) from {staged['transactions'].files} "
        f"file(s) and {staged['labels'].records} label record(s) in "
        f"{time.monotonic() - started:.1f} s"
    )
    # No restarts: the Parquet writer is not tied to checkpoints; a failed backfill is rerun.
    # Its own free REST port, so a backfill runs next to `riskstream run` and other backfills.
    job_settings = with_overrides(
        settings, checkpoint={"restart_attempts": 0}, flink={"local_rest_port": free_port()}
    )
    env = create_backfill_env(job_settings)
    build(env, staged, output, job_settings)
    job_started = time.monotonic()
    client = env.execute_async(JOB_NAME)
    finished = client.get_job_execution_result()
    last_report = 0.0
    with Progress(total, "backfill", "payments", quiet=quiet) as progress:
        while not finished.done():
            now = time.monotonic()
            if progress.enabled and now - last_report >= settings.backfill.progress_interval_s:
                rows, max_time = _progress(output)
                progress.update_to(rows)
                progress.describe(f"event time up to {_iso(max_time)}")
                last_report = now
            time.sleep(POLL_S)
    try:
        finished.result()
    except Exception as exc:
        raise JobError(f"backfill job failed: {_root_cause(exc)}") from exc
    job_s = time.monotonic() - job_started
    rows, _ = _progress(output)
    letters = dead_letters(output)
    _annotate(letters, staged)
    shown = settings.backfill.max_reported_dead_letters
    for letter in letters[:shown]:
        field = f"{letter['field']}: " if letter.get("field") else ""
        say(f"backfill: dead letter: {letter['origin']}: {field}{letter['reason']}")
    if len(letters) > shown:
        more = len(letters) - shown
        say(f"backfill: ... {more} more dead letter(s) in {output / DEAD_LETTER_DIR}")
    result = BackfillResult(
        output=output,
        inputs={role: s.records for role, s in staged.items()},
        feature_rows=rows,
        dead_letters=len(letters),
        problems=problems,
        elapsed_s=time.monotonic() - started,
        job_s=job_s,
    )
    _write_summary(result, letters, generator)
    say(
        f"backfill: done: {rows} feature row(s) in {output / FEATURES_DIR}, {len(letters)} dead "
        f"letter(s), {len(problems)} file problem(s), {result.elapsed_s:.1f} s"
    )
    return result


def create_backfill_env(settings: Settings) -> StreamExecutionEnvironment:
    """The environment from :func:`jobs.env.create_env` (the one place that configures
    Flink); no Kafka connector is needed for files."""
    return create_env(settings, connectors=False)


def input_generator(source: Path) -> dict[str, Any] | None:
    """The simulator profile, seed and settings of ``source`` (its ``manifest.json``), if any: the
    summary carries them so `riskstream train --data` can record the training profile."""
    try:
        manifest = json.loads((source / "manifest.json").read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(manifest, dict) or not manifest.get("profile"):
        return None
    return {k: manifest.get(k) for k in ("profile", "seed", "settings")}


def _write_summary(
    result: BackfillResult, letters: list[dict[str, Any]], generator: dict[str, Any] | None
) -> None:
    summary = {
        "generator": generator,
        "inputs": result.inputs,
        "feature_rows": result.feature_rows,
        "dead_letters": [
            {k: letter.get(k) for k in ("origin", "reason", "field", "record_type")}
            for letter in letters
        ],
        "problems": [describe(p) for p in result.problems],
        "elapsed_s": round(result.elapsed_s, 3),
        "job_s": round(result.job_s, 3),
    }
    (result.output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
