"""The HTML run report of a real short run, opened in a real headless browser (issue 15 item 3).

A short scoring run on the real Kafka and the Flink mini-cluster (the recipe of
``test_scoring_job``: 8 simulated days of 80 cards with labels, malformed records and the
windowed analytics, scored by the tiny champion), then ``riskstream report --out DIR`` over its
topics, then the page in Debian's headless Chromium (``riskstream.infra.browser``): no console
error, every plot drawn with data, and a full-page screenshot that is not blank.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageStat

from core.config import Settings
from jobs import scoring
from riskstream.cli import main as cli_main
from riskstream.infra.browser import check_page
from riskstream.jobrunner import write_settings
from riskstream.report import figures
from riskstream.support.topics import private_settings

pytestmark = [pytest.mark.integration]

ROLES = {
    "transactions": 1,
    "labels": 1,
    "dead_letter": 1,
    "decisions": 1,
    "predictions": 1,
    "alerts": 1,
    "analytics": 1,
    "late_events": 1,
}
PANELS = 10
WHITE = 250
"""A pixel with every channel at or above this counts as background."""


@pytest.fixture(scope="module")
def scored_run(
    kafka_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    fresh_champion: Callable[[Path], Path],
) -> tuple[Settings, Path]:
    """Settings of a finished short scoring run, and its config file."""
    tmp = tmp_path_factory.mktemp("report-run")
    name = f"report-{uuid.uuid4().hex[:6]}"
    settings = private_settings(
        kafka_settings,
        name,
        ROLES,
        flink={"parallelism": 1},
        checkpoint={"dir": str(tmp / "checkpoints")},
        scoring={
            "registry_dir": str(fresh_champion(tmp)),
            "group_id": f"{name}-group",
            "transactional_id_prefix": name,
            "latency_budget_ms": 3_600_000,
        },
    )
    config = write_settings(settings, tmp / "settings.yaml")
    argv = ["--config", str(config), "simulate", "--to-kafka", "--days", "8", "--cards", "80"]
    argv += ["--merchants", "30", "--rate", "200000", "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli_main(argv) == 0
    scoring.main(settings, bounded=True)
    return settings, config


@pytest.mark.flink
def test_the_report_of_a_real_run_draws_every_plot_in_chromium(
    scored_run: tuple[Settings, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, config = scored_run
    out = tmp_path / "report"
    assert cli_main(["--config", str(config), "report", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    print(printed)  # shown on failure
    page = out / "report.html"
    assert f"report: {page.resolve()} ({PANELS} of {PANELS} plots have data)" in printed

    seen = check_page(settings, page, tmp_path / "report.png")
    print(seen.plots)
    assert seen.console_errors == []
    assert seen.no_data == 0
    panels = [p["panel"] for p in seen.plots]
    assert panels == [p.key for p in figures.panels_order()]
    for plot in seen.plots:
        assert plot["traces"] > 0 and plot["points"] > 0 and plot["marks"] > 0, plot
    assert seen.ok

    image = Image.open(seen.screenshot).convert("RGB")
    width, height = image.size
    assert width == 1280 and height > PANELS * 400  # the whole page, every plot on it
    small = np.asarray(image.resize((width // 4, height // 4)))
    inked = float((small.min(axis=2) < WHITE).mean())
    assert inked > 0.02, inked  # not a blank page
    assert len(np.unique(small.reshape(-1, 3), axis=0)) > 100  # plots in colour, not one fill
    assert max(ImageStat.Stat(image).stddev) > 10


def test_the_browser_check_sees_console_errors_and_empty_plots(
    base_settings: Settings, tmp_path: Path
) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        '<html><body><div class="plot" data-panel="empty"></div>'
        '<script>console.error("boom from the page")</script></body></html>',
        "utf-8",
    )
    seen = check_page(base_settings, page, tmp_path / "broken.png", render_timeout_ms=2_000)
    assert any("boom from the page" in e for e in seen.console_errors), seen.console_errors
    assert seen.empty_plots == ["empty"]
    assert not seen.ok
    assert Image.open(seen.screenshot).size[0] == 1280
