"""The backfill's batch passes without a JVM: merged order, shards, and parity with the driver.

The passes' Python bodies (:mod:`udfs.backfill_passes`) are called in process, with the parcels
routed by shard as Flink's ``key_by`` would, over simulator output with labels, duplicates and
a malformed line; the features must equal the pure driver's over the same merged arrival order.
"""

from __future__ import annotations

import heapq
import pickle
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from core.config import Settings, load_settings
from features import card, output, stages
from features.compute import FeaturePipeline
from features.history import parse_staged
from features.table import FEATURE_NAMES, rows_table, to_table
from jobs import backfill
from jobs import features as features_job
from riskstream.cli import main as cli_main
from riskstream.support.factories import random_payment
from schemas.validation import RecordSchemaError, decode
from udfs import metrics as ingest_metrics
from udfs.backfill_passes import (
    DEVICE_LABELS_TAG,
    LABEL,
    TERMINAL_LABELS_TAG,
    TRANSACTION,
    CardPass,
    DevicePass,
    TerminalPass,
    ValidateChunk,
    chunk_text,
    parse_merged,
    shard_records,
)
from udfs.ingest import DEAD_LETTER_TAG, IngestRules, ValidateRecords

SHARDS = 3


class _Counter:
    def inc(self, n: int = 1) -> None:
        pass


class _Metrics:
    """Any metric call on a group returns something that accepts every update."""

    def __getattr__(self, _name: str) -> Any:
        return lambda *args, **kwargs: self

    def inc(self, n: int = 1) -> None:
        pass


class _Runtime:
    def get_metrics_group(self) -> _Metrics:
        return _Metrics()


def _staged(tmp: Path, settings: Settings) -> tuple[dict[str, Any], list[Any]]:
    sim = tmp / "sim"
    args = ["simulate", "--out", str(sim), "--days", "12", "--cards", "40", "--merchants", "12"]
    assert cli_main([*args, "--quiet"]) == 0
    day = sorted((sim / "transactions").glob("day=*/part-0.jsonl"))[0]
    day.write_text(day.read_text("utf-8") + '{"event_id": "broken", "amount": \n', "utf-8")
    out = tmp / "out"
    backfill.prepare_output(sim, out)
    staged = backfill.stage_inputs(sim, out)
    chunks = backfill.merge_staged(staged, out / "merged.lines", settings, chunk_lines=500)
    return staged, chunks


def _route(parcels: list[Any]) -> dict[int, list[Any]]:
    by_shard: dict[int, list[Any]] = {}
    for shard, records in parcels:
        by_shard.setdefault(shard, []).append(records)
    return by_shard


def _run(step: Any, parcels: list[Any]) -> list[Any]:
    """One keyed pass: per shard, the sorted records of all its parcels, as ``on_timer`` does."""
    emitted: list[Any] = []
    for payloads in _route(parcels).values():
        emitted.extend(step.run(shard_records(payloads)))
    return emitted


def _passes(settings: Settings, chunks: list[Any]) -> tuple[pa.Table, list[str]]:
    params = features_job.feature_params(settings)
    f = settings.features
    rules = IngestRules.from_settings(f, settings.ingest, live=False)
    validators = {
        TRANSACTION: ValidateRecords("transaction", "tx", f.source, rules),
        LABEL: ValidateRecords("label", "labels", f.source, rules),
    }
    reader = pickle.loads(pickle.dumps(ValidateChunk(validators, SHARDS, params, "unused")))
    reader.progress_root = str(Path(chunks[0][0]).parent)
    reader.open(_Runtime())
    cards, device_labels, terminal_labels, letters = [], [], [], []
    for chunk in chunks:
        for item in reader.process_element(chunk_text(chunk), None):
            if isinstance(item, tuple) and item[0] is DEAD_LETTER_TAG:
                letters.append(item[1])
            elif isinstance(item, tuple) and item[0] is DEVICE_LABELS_TAG:
                device_labels.append(item[1])
            elif isinstance(item, tuple) and item[0] is TERMINAL_LABELS_TAG:
                terminal_labels.append(item[1])
            else:
                cards.append(item)
    partials = _run(CardPass(params, SHARDS), cards)
    enriched = _run(DevicePass(params, SHARDS), partials + device_labels)
    tables = _run(TerminalPass(params, SHARDS), enriched + terminal_labels)
    return pa.concat_tables(tables), letters


def _driver(staged: dict[str, Any], settings: Settings) -> dict[tuple[str, bool], list[Any]]:
    def lines(path: Path, role: str) -> Iterator[tuple[int, str, str]]:
        for line in path.read_text("utf-8").splitlines():
            stamp, _origin, payload = parse_staged(line)
            yield stamp, role, payload

    pipeline = FeaturePipeline(features_job.feature_params(settings))
    want: dict[tuple[str, bool], list[Any]] = {}
    merged = heapq.merge(
        lines(staged["transactions"].path, "transaction"),
        lines(staged["labels"].path, "label"),
        key=lambda item: item[0],
    )
    for _stamp, role, payload in merged:
        try:
            record = decode(role, payload)
        except RecordSchemaError:
            continue
        if role == "label":
            pipeline.label(record)
        else:
            row = pipeline.transaction(record)
            want.setdefault((row.event_id, row.duplicate), []).append(row.values)
    return want


def test_merge_keeps_each_roles_order_and_stamps_the_implied_watermark(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    staged, chunks = _staged(tmp_path, settings)
    merged = (tmp_path / "out" / "merged.lines").read_text("utf-8").splitlines()
    assert len(merged) == staged["transactions"].records + staged["labels"].records
    assert sum(1 for line in merged if line.startswith(LABEL)) > 0
    assert chunks[0][1:] == (0, chunks[0][2], 0) and chunks[1][3] == 500
    payments = [parse_merged(line) for line in merged if line.startswith(TRANSACTION)]
    original = [parse_staged(line)[2] for line in staged["transactions"].path.open("r")]
    assert [p[3] for p in payments] == [line.rstrip("\n") for line in original]
    newest = None
    for _role, watermark, stamp, _payload in payments:
        expected = -1 if newest is None else newest - settings.features.out_of_orderness_ms - 1
        assert watermark == expected
        newest = stamp if newest is None else max(newest, stamp)


def test_passes_equal_the_driver_over_the_merged_arrival_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ingest latency histogram is a Java gauge (pemja): not available without a JVM.
    monkeypatch.setattr(ingest_metrics, "LatencyHistogram", lambda *args: _Metrics())
    settings = load_settings(environ={})
    staged, chunks = _staged(tmp_path, settings)
    table, letters = _passes(settings, chunks)
    want = _driver(staged, settings)
    assert any("broken" in letter for letter in letters)
    assert table.num_rows == sum(len(v) for v in want.values()) > 1_000
    rows = table.to_pylist()
    assert any(r["duplicate"] for r in rows)
    assert any(r["fraud_rate_by_terminal_30d_delay7d"] > 0 for r in rows)
    for row in rows:
        assert tuple(row[n] for n in FEATURE_NAMES) in want[(row["event_id"], row["duplicate"])]
    assert {r["watermark_lag_ms"] for r in rows} == {-1}


def test_rows_table_equals_the_table_of_the_enriched_records() -> None:
    rng = random.Random(3)
    params = features_job.feature_params(load_settings(environ={}))
    pipeline = FeaturePipeline(params)
    rows = []
    for i in range(50):
        tx = random_payment(rng, i % 7, 1_700_000_000_000 + i * 60_000, terminals=3)
        state = pipeline.cards.setdefault(tx.card_id, card.CardState())
        values, duplicate = stages.card_stage(state, tx, params)
        rows.append((tx, values, duplicate, i % 5 == 0))
    records = [
        output.build(t, values=v, duplicate=d, late=la, watermark_lag_ms=-1, computed_time=9)
        for t, v, d, la in rows
    ]
    assert rows_table(rows, -1, 9).equals(to_table(records), check_metadata=True)
    assert rows_table([], -1, 9).equals(to_table([]), check_metadata=True)
