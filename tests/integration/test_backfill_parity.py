"""Training/serving parity end to end on real parts.

A messy simulated stream goes into Kafka with ``riskstream simulate --to-kafka``; the streaming
feature job runs on the mini-cluster (bounded) and writes the features topic; ``riskstream
archive`` dumps the input topics and the features topic; ``riskstream backfill`` replays the input
archive through the same graph; ``riskstream parity`` must report zero mismatches.

The input topics have ONE partition and the jobs run at parallelism 1, so every keyed operator
sees the same arrival order in both runs (with several partitions, device and terminal operators
see an interleaving that Kafka does not record; see the README's limits).
"""

from __future__ import annotations

import contextlib
import io
import uuid
from pathlib import Path

import pytest

from core.config import Settings
from jobs import features as features_job
from riskstream.cli import main as cli_main
from riskstream.jobrunner import write_settings
from riskstream.support.topics import private_settings
from training.parity import compare, load_side

pytestmark = [pytest.mark.integration, pytest.mark.flink]

SIM_DAYS = 30
SIM_CARDS = 150
SIM_MERCHANTS = 40
SIM_RATE = 200_000


def _settings(base: Settings, tmp: Path) -> Settings:
    name = f"parity-{uuid.uuid4().hex[:6]}"
    roles = {"transactions": 1, "labels": 1, "features": 2, "dead_letter": 1}
    return private_settings(
        base,
        name,
        roles,
        flink={"parallelism": 1},
        features={"group_id": f"{name}-group"},
        checkpoint={"dir": str(tmp / "checkpoints")},
    )


def _cli(config: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli_main(["--config", str(config), *argv])
    return status, out.getvalue()


def test_backfill_of_the_archive_equals_the_live_features(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(kafka_settings, tmp_path)
    config = write_settings(settings, tmp_path / "settings.yaml")
    status, _ = _cli(
        config,
        "simulate",
        "--to-kafka",
        "--days",
        str(SIM_DAYS),
        "--cards",
        str(SIM_CARDS),
        "--merchants",
        str(SIM_MERCHANTS),
        "--rate",
        str(SIM_RATE),
        "--quiet",
    )
    assert status == 0

    features_job.main(settings, bounded=True)  # the live job, until the topics' end offsets

    topic = settings.kafka.topic
    archive, live = tmp_path / "archive", tmp_path / "live"
    for role in ("transactions", "labels"):
        assert (
            _cli(config, "archive", "--topic", topic(role), "--output", str(archive / role))[0] == 0
        )
    assert _cli(config, "archive", "--topic", topic("features"), "--output", str(live))[0] == 0

    backfill_out = tmp_path / "backfill"
    assert _cli(config, "backfill", "--input", str(archive), "--output", str(backfill_out))[0] == 0

    status, printed = _cli(config, "parity", "--live", str(live), "--backfill", str(backfill_out))
    assert status == 0, printed
    assert "mismatches:    0" in printed
    report = compare(load_side(live), load_side(backfill_out))
    assert report.ok
    backfilled = load_side(backfill_out)
    # The comparison is meaningful: thousands of rows, re-sent duplicates, and features that
    # depend on labels (terminal fraud rates) and on other cards (device) are non-trivial.
    assert report.matched_rows == len(backfilled) > 1_000
    assert backfilled["duplicate"].any()
    assert (backfilled["fraud_rate_by_terminal_30d_delay7d"] > 0).any()
    assert (backfilled["distinct_cards_by_device_1d"] > 1).any()
    letters = (backfill_out / "_backfill.json").read_text("utf-8")
    assert '"origin"' in letters
