"""``riskstream report``: read a run, build its panels, write the page."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings
from core.errors import ConfigError
from riskstream.report import figures, page
from riskstream.report.data import RunData, load_run

REPORT_FILE = "report.html"


@dataclass(frozen=True)
class Written:
    """A written report: where it is and which panels had no data (key -> reason)."""

    path: Path
    panels: int
    missing: dict[str, str]


def write_page(run: RunData, out_dir: Path, title: str = "riskstream run report") -> Written:
    """Write ``<out_dir>/report.html`` for ``run`` (atomically: a reader never sees half a page)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the report directory {out_dir}: {exc}") from exc
    built = figures.panels(run)
    text = page.render(run, built, title)
    target = out_dir / REPORT_FILE
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".report-", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a report is for reading
    os.replace(tmp, target)
    missing = {p.key: p.missing or "" for p in built if p.figure is None}
    return Written(target.resolve(), len(built), missing)


def write_report(
    settings: Settings, out_dir: Path, title: str = "riskstream run report"
) -> Written:
    """Read the topics and registry of ``settings`` and write the report into ``out_dir``."""
    return write_page(load_run(settings), out_dir, title)
