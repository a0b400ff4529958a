"""Backfill: historical files -> batch passes of the feature stages per shard of keys -> Parquet.

Graph (Flink BATCH execution; records between operators are *parcels* of many records)::

    staged transactions + labels, merged in one arrival order (one numbered line each), in chunks
        -> validate chunk (the live ValidateRecords) --dead letters--> FileSink (JSON Lines)
        -> key by card shard     -> CardPass      (features.stages.card_stage per payment)
        -> key by device shard   -> DevicePass    <- labels with a device, by device shard
        -> key by terminal shard -> TerminalPass  <- labels, by terminal shard
        -> TableWriter (Parquet, features/table.py schema)

The input files are first staged (:mod:`features.history`) into one line file per role in arrival
order, each line carrying the record timestamp the live Kafka source used; the two roles are then
merged by record timestamp (each kept in its own order) into one numbered file, which fixes the
arrival order every pass replays. Each pass gets a whole shard of keys in one Python call and
runs the same per-stage entry points as the stream and the driver (:mod:`udfs.backfill_passes`),
so the per-record framework cost of the streaming graph disappears. Run it with
``riskstream backfill --input PATH --output DIR``.
"""

from __future__ import annotations

import heapq
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyflink.common import Types
from pyflink.common.serialization import Encoder
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.file_system import FileSink, OutputFileConfig

from core.config import Settings, with_overrides
from core.errors import JobError
from core.net import free_port
from core.progress import Progress
from features.history import (
    ROLES,
    SEPARATOR,
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
from udfs.backfill_ops import PROGRESS_DIR
from udfs.backfill_passes import (
    DEAD_LETTER_TAG,
    DEVICE_LABELS_TAG,
    LABEL,
    NO_WATERMARK,
    TERMINAL_LABELS_TAG,
    TRANSACTION,
    CardPass,
    Chunk,
    DevicePass,
    TableWriter,
    TerminalPass,
    ValidateChunk,
    chunk_text,
    dead_letter_of,
    merged_line,
    parcel_shard,
)
from udfs.ingest import IngestRules, ValidateRecords

JOB_NAME = "riskstream-backfill"
FEATURES_DIR = "features"
DEAD_LETTER_DIR = "dead_letters"
STAGING_DIR = "_staging"
SUMMARY_FILE = BACKFILL_SUMMARY_FILE
STAGED_SUFFIX = ".lines"
MERGED_FILE = "merged.lines"
CHUNK_LINES = 20_000
"""Lines per chunk of the merged file: the unit the readers validate and parcel in one call."""
SHARDS_PER_SUBTASK = 4
"""Shards of keys per pass and subtask: each shard is computed in one Python call."""
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
    staging_s: float = 0.0
    """Staging and merging the input files, before the Flink job starts."""


def dead_letter_sink(output: Path) -> FileSink:
    """Dead letters as JSON Lines under ``output/dead_letters`` (committed at checkpoints/end)."""
    config = OutputFileConfig.builder().with_part_prefix("dead-letter").with_part_suffix(".jsonl")
    return (
        FileSink.for_row_format(str(output / DEAD_LETTER_DIR), Encoder.simple_string_encoder())
        .with_output_file_config(config.build())
        .build()
    )


def _staged_lines(path: Path, role: str) -> Iterator[tuple[int, str, str]]:
    with path.open("r", encoding="utf-8", newline="\n") as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if line:
                yield int(line.split(SEPARATOR, 1)[0]), role, line


def merge_staged(
    staged: dict[str, StagedInput], target: Path, settings: Settings, chunk_lines: int = CHUNK_LINES
) -> list[Chunk]:
    """Merge the staged payments and labels into one arrival order at ``target``; its chunks.

    The roles are merged by record timestamp, each kept in its own (arrival) order; on equal
    timestamps payments come first. Each payment line carries the watermark its position
    implies: the largest payment timestamp before it minus ``features.out_of_orderness_ms``
    minus 1 (Flink's bounded-out-of-orderness rule), or -1 before the first payment.
    """
    out_of_orderness = settings.features.out_of_orderness_ms
    merged = heapq.merge(
        _staged_lines(staged["transactions"].path, TRANSACTION),
        _staged_lines(staged["labels"].path, LABEL),
        key=lambda item: item[0],
    )
    chunks: list[Chunk] = []
    newest: int | None = None
    seq = first_seq = start = offset = 0
    with target.open("wb") as out:
        for stamp, role, line in merged:
            watermark = NO_WATERMARK
            if role == TRANSACTION:
                if newest is not None:
                    watermark = newest - out_of_orderness - 1
                newest = stamp if newest is None else max(newest, stamp)
            data = (merged_line(role, watermark, line) + "\n").encode()
            out.write(data)
            offset += len(data)
            seq += 1
            if seq - first_seq == chunk_lines:
                chunks.append((str(target), start, offset, first_seq))
                start, first_seq = offset, seq
    if seq > first_seq:
        chunks.append((str(target), start, offset, first_seq))
    return chunks


def build(
    env: StreamExecutionEnvironment, chunks: list[Chunk], output: Path, settings: Settings
) -> DataStream:
    """The backfill graph over the merged file's chunks; returns the stream of feature tables."""
    params = features_job.feature_params(settings)
    shards = SHARDS_PER_SUBTASK * settings.flink.parallelism
    f = settings.features
    rules = IngestRules.from_settings(f, settings.ingest, live=False)
    validators = {
        role: ValidateRecords(kind, settings.kafka.topic(topic), f.source, rules)
        for role, kind, topic in (
            (TRANSACTION, "transaction", "transactions"),
            (LABEL, "label", "labels"),
        )
    }
    parcel = Types.PICKLED_BYTE_ARRAY()
    read = (
        env.from_collection([chunk_text(c) for c in chunks], type_info=Types.STRING())
        .uid("backfill-chunks")
        .name("merged file chunks")
        .process(ValidateChunk(validators, shards, params, str(output)), output_type=parcel)
        .uid("backfill-validate")
        .name("validate chunks")
    )
    (
        read.get_side_output(DEAD_LETTER_TAG)
        .map(dead_letter_of, Types.STRING())
        .uid("backfill-dead-letters")
        .name("dead letters")
        .sink_to(dead_letter_sink(output))
        .uid("backfill-dead-letter-sink")
        .name("dead-letter files")
    )
    cards = (
        read.key_by(parcel_shard, Types.INT())
        .process(CardPass(params, shards), output_type=parcel)
        .uid("backfill-card")
        .name("card pass")
    )
    devices = (
        cards.union(read.get_side_output(DEVICE_LABELS_TAG))
        .key_by(parcel_shard, Types.INT())
        .process(DevicePass(params, shards), output_type=parcel)
        .uid("backfill-device")
        .name("device pass")
    )
    tables = (
        devices.union(read.get_side_output(TERMINAL_LABELS_TAG))
        .key_by(parcel_shard, Types.INT())
        .process(TerminalPass(params, shards), output_type=parcel)
        .uid("backfill-terminal")
        .name("terminal pass")
    )
    writer = TableWriter(str(output / FEATURES_DIR), str(output), settings.backfill.rows_per_file)
    tables.process(writer, output_type=Types.STRING()).uid("backfill-parquet").name(
        "parquet writer"
    )
    return tables


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


def _progress(output: Path, files: str = "writer-*.json") -> tuple[int, int]:
    """(rows, newest event time) summed over the progress files ``files`` (writers: feature
    rows written; ``reader-*.json``: payments validated)."""
    rows, max_time = 0, -1
    for path in (output / PROGRESS_DIR).glob(files):
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
    from the readers' then the writers' progress files every ``backfill.progress_interval_s``."""
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
    merge_started = time.monotonic()
    chunks = merge_staged(staged, output / STAGING_DIR / MERGED_FILE, settings)
    say(
        f"backfill: merged into {len(chunks)} chunk(s) of up to {CHUNK_LINES} line(s) in "
        f"{time.monotonic() - merge_started:.1f} s"
    )
    staging_s = time.monotonic() - started
    env = create_backfill_env(job_settings)
    build(env, chunks, output, job_settings)
    job_started = time.monotonic()
    client = env.execute_async(JOB_NAME)
    finished = client.get_job_execution_result()
    last_report = 0.0
    with Progress(total, "backfill", "payments", quiet=quiet) as progress:
        while not finished.done():
            now = time.monotonic()
            if progress.enabled and now - last_report >= settings.backfill.progress_interval_s:
                # Batch passes: payments are validated first, features written at the end.
                rows, max_time = _progress(output)
                if rows:
                    progress.update_to(rows)
                    progress.describe(f"written, event time up to {_iso(max_time)}")
                else:
                    progress.update_to(_progress(output, "reader-*.json")[0])
                    progress.describe("validated, computing features")
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
        staging_s=staging_s,
    )
    _write_summary(result, letters, generator)
    say(
        f"backfill: done: {rows} feature row(s) in {output / FEATURES_DIR}, {len(letters)} dead "
        f"letter(s), {len(problems)} file problem(s), {result.elapsed_s:.1f} s"
    )
    return result


def create_backfill_env(settings: Settings) -> StreamExecutionEnvironment:
    """The environment from :func:`jobs.env.create_env` (the one place that configures
    Flink) in BATCH execution mode (every input is bounded; each keyed pass sees a shard's
    records together and its end-of-input timer once); no Kafka connector is needed."""
    return create_env(settings, extra={"execution.runtime-mode": "BATCH"}, connectors=False)


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
        "staging_s": round(result.staging_s, 3),
    }
    (result.output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
