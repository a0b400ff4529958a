"""Staging of historical files: arrival order, record timestamps, origins, awkward payloads."""

from __future__ import annotations

from pathlib import Path

from features.archive import archive_line
from features.history import parse_staged, stage_role, staged_line


def _archive_line(partition: int, offset: int, ts: int, value: str) -> str:
    return archive_line(
        "t", partition, offset, timestamp=ts, timestamp_type=1, key=None, value=value.encode()
    )


def test_archive_partitions_merge_by_timestamp_keeping_each_partitions_order(
    tmp_path: Path,
) -> None:
    source = tmp_path / "transactions"
    for partition, records in ((0, [(0, 10), (1, 30), (2, 25)]), (1, [(0, 20), (1, 40)])):
        path = source / f"partition={partition}" / "part-000000.jsonl"
        path.parent.mkdir(parents=True)
        lines = [_archive_line(partition, o, ts, f"p{partition}o{o}") for o, ts in records]
        path.write_text("\n".join(lines) + "\n", "utf-8")
    staged = stage_role("transactions", source, tmp_path / "staged.lines")
    rows = [parse_staged(line.rstrip("\n")) for line in staged.path.open("r", encoding="utf-8")]
    # partition 0's offset 2 (ts 25) stays after its offset 1 (ts 30): partitions keep their order
    assert [payload for _, _, payload in rows] == ["p0o0", "p1o0", "p0o1", "p0o2", "p1o1"]
    assert [ts for ts, _, _ in rows] == [10, 20, 30, 25, 40]
    assert "partition 0, offset 2" in rows[3][1]


def test_jsonl_rows_keep_file_order_and_unparsable_lines_borrow_the_previous_time(
    tmp_path: Path,
) -> None:
    source = tmp_path / "labels"
    day = source / "day=2018-04-01" / "part-0.jsonl"
    day.parent.mkdir(parents=True)
    day.write_text('{"event_time": 7}\nnot json\n\n{"event_time": 3}\n', "utf-8")
    staged = stage_role("labels", source, tmp_path / "staged.lines")
    rows = [parse_staged(line.rstrip("\n")) for line in staged.path.open("r", encoding="utf-8")]
    assert [(ts, payload) for ts, _, payload in rows] == [
        (7, '{"event_time": 7}'),
        (7, "not json"),
        (3, '{"event_time": 3}'),
    ]
    assert rows[1][1] == f"{day}:1"
    assert staged.records == 3


def test_payloads_with_line_breaks_and_tabs_round_trip() -> None:
    payload = '{\n  "a":\t"b"\r\n}'
    assert parse_staged(staged_line(5, "x\ty:1", payload)) == (5, "x y:1", payload)
