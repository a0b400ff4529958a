"""The parity check: exact integers, floats to 1e-9 relative, every mismatch reported."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features import output
from features.table import to_table
from riskstream.cli import main as cli_main
from schemas.feature_set import PAYMENT_FEATURES
from training.parity import compare, render

NAMES = PAYMENT_FEATURES.names


def _frame(n: int = 3) -> pd.DataFrame:
    records = [
        output.EnrichedFeatures(
            event_id=f"e{i}",
            event_time=1_000 + i,
            correlation_id="c",
            card_id="card",
            terminal_id="term",
            device_id=None,
            feature_set=PAYMENT_FEATURES.name,
            feature_set_version=PAYMENT_FEATURES.version,
            feature_set_hash=output.FEATURE_SET_HASH,
            features={name: 1.0 + i + j / 3 for j, name in enumerate(NAMES)},
            duplicate=False,
            late=False,
            watermark_lag_ms=5,
            computed_time=7,
        )
        for i in range(n)
    ]
    frame: pd.DataFrame = to_table(records).to_pandas()
    return frame


def test_equal_tables_pass_and_wall_clock_columns_are_ignored() -> None:
    live, backfill = _frame(), _frame()
    backfill["computed_time"] = 999
    backfill["watermark_lag_ms"] = -1
    backfill.loc[0, "late"] = True
    report = compare(live, backfill)
    assert report.ok
    assert report.matched_rows == 3
    assert report.info_differences["late"] == 1


def test_identical_copies_from_an_at_least_once_sink_are_counted_not_mismatched() -> None:
    live = _frame()
    live = pd.concat([live, live.iloc[[1]]], ignore_index=True)
    report = compare(live, _frame())
    assert report.ok
    assert report.info_differences["identical_copies_dropped_live"] == 1


def test_float_tolerance_is_relative_1e9() -> None:
    live, backfill = _frame(), _frame()
    name = NAMES[5]
    backfill.loc[1, name] = live.loc[1, name] * (1 + 1e-12)
    assert compare(live, backfill).ok
    backfill.loc[1, name] = live.loc[1, name] * (1 + 1e-8)
    report = compare(live, backfill)
    assert [(m.event_id, m.column) for m in report.mismatches] == [("e1", name)]


def test_integers_exact_and_missing_rows_are_mismatches() -> None:
    live, backfill = _frame(), _frame()
    backfill.loc[2, "event_time"] += 1
    backfill = backfill.drop(index=0)
    report = compare(live, backfill)
    assert not report.ok
    found = {(m.event_id, m.column) for m in report.mismatches}
    assert found == {("e0", "<row>"), ("e2", "event_time")}
    text = render(report)
    assert "MISMATCH event_id=e2 duplicate=False event_time: live=1002 backfill=1003" in text
    assert text.rstrip().endswith("PARITY FAILED")


def test_cli_exits_non_zero_on_a_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live, backfill = tmp_path / "live", tmp_path / "backfill" / "features"
    live.mkdir()
    backfill.mkdir(parents=True)
    pq.write_table(to_table_from(_frame()), live / "part-0.parquet")
    changed = _frame()
    changed.loc[1, NAMES[0]] = -5.0
    pq.write_table(to_table_from(changed), backfill / "part-0.parquet")
    status = cli_main(["parity", "--live", str(live), "--backfill", str(backfill.parent)])
    printed = capsys.readouterr().out
    assert status == 1
    assert f"MISMATCH event_id=e1 duplicate=False {NAMES[0]}" in printed
    pq.write_table(to_table_from(_frame()), backfill / "part-0.parquet")
    assert cli_main(["parity", "--live", str(live), "--backfill", str(backfill.parent)]) == 0


def to_table_from(frame: pd.DataFrame) -> object:
    """A pyarrow table of a features frame."""
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)
