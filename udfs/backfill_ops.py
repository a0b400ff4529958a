"""Small helpers shared by the backfill's Flink functions (:mod:`udfs.backfill_passes`).

The readers and writers report progress in small JSON files under ``<output>/_progress`` that the
CLI polls while the job runs; each is replaced atomically so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PROGRESS_DIR = "_progress"


def write_json_atomically(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` so a concurrent reader never sees a half-written file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document), "utf-8")
    os.replace(tmp, path)
