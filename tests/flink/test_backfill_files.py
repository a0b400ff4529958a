"""The backfill on the mini-cluster: mixed JSON Lines / Parquet days, bad files, exact features.

One run over simulator output where day 1 is JSON Lines with a malformed line added, day 2 is a
truncated Parquet file and day 3 is Parquet whose ``amount`` column has the wrong type. The bad
parts are reported with their file (and row) or dead-lettered with the reason; everything else is
processed, and its features equal the pure-Python driver's over the same arrival order.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from core.config import Settings, with_overrides
from features.compute import FeaturePipeline
from features.params import FeatureParams
from jobs import backfill
from riskstream.cli import main as cli_main
from schemas.records import Transaction
from schemas.validation import RecordSchemaError, decode
from training.dataset import load_features

pytestmark = [pytest.mark.flink]

BAD_JSON = '{"event_id": "broken", "amount": '
TRUNCATE_TO_BYTES = 300


def _simulate(tmp: Path) -> Path:
    out = tmp / "sim"
    args = ["simulate", "--out", str(out), "--days", "3", "--cards", "60", "--merchants", "20"]
    assert cli_main([*args, "--format", "parquet", "--quiet"]) == 0
    return out / "transactions"


def _prepare(tmp: Path) -> tuple[Path, list[Path]]:
    """The messy input; returns it and the simulator's day files (for the expected values)."""
    days = sorted(_simulate(tmp).glob("day=*/part-0.parquet"))
    assert len(days) == 3
    root = tmp / "input" / "transactions"
    # day 1: JSON Lines (Parquet rows as contract JSON) with a malformed line as row 3
    day1 = root / days[0].parent.name / "part-0.jsonl"
    day1.parent.mkdir(parents=True)
    rows = pq.read_table(days[0]).drop(["arrival_time"]).to_pylist()
    lines = [msgspec.json.encode(row).decode() for row in rows]
    lines.insert(3, BAD_JSON)
    day1.write_text("\n".join(lines) + "\n", "utf-8")
    # day 2: truncated Parquet
    day2 = root / days[1].parent.name / "part-0.parquet"
    day2.parent.mkdir(parents=True)
    day2.write_bytes(days[1].read_bytes()[:TRUNCATE_TO_BYTES])
    # day 3: Parquet with `amount` as strings
    table = pq.read_table(days[2])
    index = table.schema.get_field_index("amount")
    table = table.set_column(index, "amount", pc.cast(table.column("amount"), pa.string()))
    day3 = root / days[2].parent.name / "part-0.parquet"
    day3.parent.mkdir(parents=True)
    pq.write_table(table, day3)
    return tmp / "input", days


def test_bad_files_are_reported_and_the_rest_matches_the_driver(
    base_settings: Settings, tmp_path: Path
) -> None:
    source, days = _prepare(tmp_path)
    settings = with_overrides(base_settings, backfill={"rows_per_file": 100})
    messages: list[str] = []
    result = backfill.run(settings, source, tmp_path / "out", say=messages.append)

    truncated = source / "transactions" / days[1].parent.name / "part-0.parquet"
    wrong_type = source / "transactions" / days[2].parent.name / "part-0.parquet"
    problems = {p.path: p.reason for p in result.problems}
    assert "cannot read Parquet file" in problems[str(truncated)]
    assert "column 'amount': expected double, found string" in problems[str(wrong_type)]
    assert any(str(truncated) in m for m in messages)

    summary = json.loads((tmp_path / "out" / "_backfill.json").read_text("utf-8"))
    origins = {d["origin"]: d for d in summary["dead_letters"]}
    day1 = source / "transactions" / days[0].parent.name / "part-0.jsonl"
    assert f"{day1}:3" in origins  # the malformed line, by file and row
    wrong_rows = [d for o, d in origins.items() if o.startswith(f"{wrong_type}:")]
    assert len(wrong_rows) == pq.read_metadata(days[2]).num_rows
    assert all(d["field"] == "$.amount" for d in wrong_rows)
    assert result.dead_letters == 1 + len(wrong_rows)

    # Everything else was processed, with the driver's features, in the same arrival order.
    good: list[Transaction] = []
    for row in pq.read_table(days[0]).drop(["arrival_time"]).to_pylist():
        try:
            good.append(decode("transaction", msgspec.json.encode(row)))
        except RecordSchemaError:
            continue  # the simulator's own malformed rows are dead-lettered too
    pipeline = FeaturePipeline(FeatureParams.from_settings(settings.features))
    expected = [pipeline.transaction(tx) for tx in good]
    features = load_features(tmp_path / "out")
    assert len(features) == len(expected) == result.feature_rows
    assert len(list((tmp_path / "out" / "features").glob("*.parquet"))) >= 2
    names = list(expected[0].feature_set.names)
    got = {
        (r.event_id, r.duplicate): tuple(getattr(r, n) for n in names)
        for r in features.itertuples()
    }
    want = {(r.event_id, r.duplicate): r.values for r in expected}
    assert got == want
    assert set(features["feature_set_version"]) == {expected[0].feature_set.version}
    shutil.rmtree(tmp_path / "sim")
