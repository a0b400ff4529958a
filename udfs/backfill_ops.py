"""Flink functions of the backfill: staged-line timestamps and the Parquet features writer.

The staged lines (:mod:`features.history`) carry the record timestamp the live Kafka source used;
the backfill assigns it with a Python ``TimestampAssigner`` *after* the file source (a Python
assigner passed to ``from_source`` is ignored by PyFlink 2.2) and then hands the bare payload to
the feature job's own graph. The writer turns the feature job's JSON output into Parquet files
with pyarrow, and reports progress in a small JSON file the CLI polls."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import ProcessFunction, RuntimeContext

from features.history import SEPARATOR, parse_staged, payload_time
from features.table import parse_json_records, to_table

PROGRESS_DIR = "_progress"
PROGRESS_EVERY_ROWS = 5_000


class StagedTimestamps(TimestampAssigner):  # type: ignore[misc]
    """The record timestamp written in front of each staged line."""

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        """Epoch ms before the first tab."""
        return int(str(value).split(SEPARATOR, 1)[0])


def staged_payload(line: str) -> str:
    """The payload of a staged line, exactly as the live job's source delivered it."""
    return parse_staged(line)[2]


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` so a concurrent reader never sees a half-written file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document), "utf-8")
    os.replace(tmp, path)


class FeatureParquetWriter(ProcessFunction):  # type: ignore[misc]
    """Buffers the feature job's JSON records and writes ``part-<tag>-<n>.parquet`` files.

    Bounded backfills only: files are written when the buffer is full and at ``close`` (end of
    input), not tied to checkpoints, so the backfill runs without restarts and a failed run is
    redone from scratch into an emptied directory.
    """

    def __init__(self, directory: str, progress_root: str, rows_per_file: int) -> None:
        self.directory = directory
        self.progress_root = progress_root
        self.rows_per_file = rows_per_file
        self._buffer: list[str] = []
        self._tag = ""
        self._files = 0
        self._rows = 0
        self._max_event_time = -1

    def open(self, runtime_context: RuntimeContext) -> None:
        """Create the output directory; pick this writer's file-name tag.

        A random tag, not the subtask index: ``get_index_of_this_subtask`` fails in thread mode in
        PyFlink 2.2 (the embedded context calls a method Flink 2 removed).
        """
        self._tag = uuid.uuid4().hex[:8]
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        (Path(self.progress_root) / PROGRESS_DIR).mkdir(parents=True, exist_ok=True)

    def process_element(self, value: str, ctx: ProcessFunction.Context) -> Iterator[str]:
        """Buffer one record; write a file when the buffer is full."""
        self._buffer.append(value)
        self._rows += 1
        self._max_event_time = max(self._max_event_time, payload_time(value) or -1)
        if len(self._buffer) >= self.rows_per_file:
            self._flush()
        elif self._rows % PROGRESS_EVERY_ROWS == 0:
            self._progress(done=False)
        return iter(())

    def close(self) -> None:
        """Write what is left (end of input)."""
        self._flush()
        self._progress(done=True)

    def _flush(self) -> None:
        if not self._buffer:
            return
        origin = f"feature output of writer {self._tag}"
        table = to_table(parse_json_records(self._buffer, origin))
        name = f"part-{self._tag}-{self._files:05d}.parquet"
        pq.write_table(table, Path(self.directory) / name)
        self._files += 1
        self._buffer = []
        self._progress(done=False)

    def _progress(self, done: bool) -> None:
        path = Path(self.progress_root) / PROGRESS_DIR / f"writer-{self._tag}.json"
        write_json_atomically(
            path,
            {
                "rows": self._rows,
                "files": self._files,
                "max_event_time": self._max_event_time,
                "done": done,
            },
        )
