"""``riskstream analytics tail`` keeps the newest revision per window and the latest windows."""

from __future__ import annotations

import argparse

from riskstream.cli.analytics_cmd import current_windows, format_row, selection
from udfs.analytics.encode import window_record
from udfs.analytics.windows import Totals, WindowResult

T0 = 1_767_225_600_000
MIN = 60_000


def test_newest_revision_of_the_latest_windows_of_one_key() -> None:
    records = [
        window_record(WindowResult("merchant", "m1", T0, T0 + MIN, 1, Totals(1, 100)), "t"),
        window_record(WindowResult("merchant", "m1", T0, T0 + MIN, 3, Totals(3, 300)), "t"),
        window_record(WindowResult("merchant", "m1", T0, T0 + MIN, 2, Totals(2, 200)), "t"),
        window_record(WindowResult("merchant", "m2", T0, T0 + MIN, 1, Totals(9, 900)), "t"),
        window_record(
            WindowResult("merchant", "m1", T0 + MIN, T0 + 2 * MIN, 1, Totals(1, 50)), "t"
        ),
    ]
    shown = current_windows(records, "merchant", "m1", last=20)
    assert [(r.window_start, r.revision, r.transactions) for r in shown] == [
        (T0, 3, 3),
        (T0 + MIN, 1, 1),
    ]
    assert [r.window_start for r in current_windows(records, "merchant", "m1", last=1)] == [
        T0 + MIN
    ]
    row = format_row(shown[0]).split()
    assert row[:5] == ["2026-01-01", "00:00:00", "merchant", "m1", "3"]
    assert row[-2:] == ["3", "-"]  # three unscored payments, no mean score


def test_flags_select_one_view() -> None:
    def args(**kw: object) -> argparse.Namespace:
        return argparse.Namespace(**({"merchant": None, "mcc": None, "global_view": False} | kw))

    assert selection(args(merchant="m7")) == ("merchant", "m7")
    assert selection(args(mcc="5411")) == ("mcc", "5411")
    assert selection(args(global_view=True)) == selection(args()) == ("global", "all")
