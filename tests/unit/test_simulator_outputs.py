"""Simulator outputs: determinism, validity of every record, malformed records, files and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from core.errors import SchemaError
from riskstream.cli import main
from schemas.validation import RecordSchemaError, decode, decode_transaction
from training.simulator.columns import DELIVERY_CODE, MALFORMED_KINDS
from training.simulator.malformed import corrupt
from training.simulator.writers import MANIFEST

SMALL = ["--days", "4", "--cards", "300", "--merchants", "80", "--customers", "100"]
MESSY = ["--malformed-share", "0.03", "--duplicate-share", "0.02", "--out-of-order-share", "0.05"]


def _run(out: Path, *flags: str) -> dict[str, object]:
    status = main(["simulate", "--out", str(out), "--quiet", *SMALL, *MESSY, *flags])
    assert status == 0
    manifest: dict[str, object] = json.loads((out / MANIFEST).read_text("utf-8"))
    return manifest


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _lines(root: Path, stream: str) -> list[bytes]:
    files = sorted((root / stream).glob("day=*/part-0.jsonl"))
    return [line for f in files for line in f.read_bytes().splitlines()]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("profile", ["handbook", "realistic"])
def test_same_seed_same_bytes_different_seed_different_data(
    tmp_path: Path, profile: str, fmt: str
) -> None:
    runs = {"a": "42", "b": "42", "c": "9"}
    for name, seed in runs.items():
        _run(tmp_path / name, "--profile", profile, "--format", fmt, "--seed", seed)
    first, again, other = (_files(tmp_path / name) for name in runs)
    assert first == again
    assert len(first) > 2
    shared = set(first) & set(other) - {MANIFEST}
    assert shared
    assert all(first[name] != other[name] for name in shared)


def test_output_does_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    _run(tmp_path / "one", "--workers", "1")
    _run(tmp_path / "two", "--workers", "2")
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_every_malformed_record_is_rejected_and_every_other_passes(tmp_path: Path) -> None:
    manifest = _run(tmp_path, "--profile", "realistic")
    lines = _lines(tmp_path, "transactions")
    rejected: list[RecordSchemaError] = []
    for line in lines:
        try:
            decode_transaction(line)
        except RecordSchemaError as exc:
            rejected.append(exc)
    delivery = manifest["transactions"]["delivery"]  # type: ignore[index]
    assert len(lines) == manifest["transactions"]["records_written"]  # type: ignore[index]
    assert len(rejected) == delivery["malformed"] > 0
    assert all(exc.reason for exc in rejected)
    for line in _lines(tmp_path, "labels"):
        decode("label", line)


def test_duplicates_are_exact_resends(tmp_path: Path) -> None:
    _run(tmp_path, "--profile", "realistic")
    valid = []
    for line in _lines(tmp_path, "transactions"):
        try:
            valid.append((decode_transaction(line).event_id, line))
        except SchemaError:
            continue
    by_id: dict[str, set[bytes]] = {}
    for event_id, line in valid:
        by_id.setdefault(event_id, set()).add(line)
    assert len(valid) > len(by_id)  # some ids arrive twice
    assert all(len(copies) == 1 for copies in by_id.values())  # ... as identical bytes


@pytest.mark.parametrize("kind", range(len(MALFORMED_KINDS)))
@pytest.mark.parametrize("variant", range(12))
def test_each_corruption_is_rejected_with_a_reason(kind: int, variant: int) -> None:
    valid = (
        b'{"event_id":"tx-1","event_time":1522540800000,"schema_version":1,"source":"s",'
        b'"correlation_id":"tx-1","card_id":"card-1","customer_id":"cust-1","merchant_id":"m",'
        b'"terminal_id":"t","mcc":"5411","amount":12.5,"currency":"EUR","channel":"online",'
        b'"latitude":50.8,"longitude":4.3,"device_id":"dev-1","country":"BE"}'
    )
    decode_transaction(valid)
    with pytest.raises(RecordSchemaError) as caught:
        decode_transaction(corrupt(valid, kind, variant * 7919))
    assert caught.value.reason


def test_parquet_skips_malformed_records_and_counts_them(tmp_path: Path) -> None:
    manifest = _run(tmp_path, "--profile", "realistic", "--format", "parquet")
    tx = manifest["transactions"]
    assert tx["malformed_skipped"] == tx["delivery"]["malformed"] > 0  # type: ignore[index]
    tables = [pq.read_table(p) for p in sorted((tmp_path / "transactions").rglob("*.parquet"))]
    rows = sum(t.num_rows for t in tables)
    assert rows == tx["records_written"]  # type: ignore[index]
    assert tables[0].column_names[:3] == ["event_id", "event_time", "schema_version"]
    assert "arrival_time" in tables[0].column_names
    record = {k: v for k, v in tables[0].to_pylist()[0].items() if k != "arrival_time"}
    decode_transaction(msgspec.json.encode(record))
    labels = pq.read_table(sorted((tmp_path / "labels").rglob("*.parquet"))[0]).to_pylist()
    decode("label", msgspec.json.encode(labels[0]))


def test_jsonl_rows_are_in_arrival_order_partitioned_by_arrival_day(tmp_path: Path) -> None:
    _run(tmp_path, "--profile", "handbook", "--format", "parquet")
    days = sorted((tmp_path / "transactions").iterdir())
    assert days[0].name == "day=2018-04-01"
    for day in days:
        arrival = pq.read_table(day / "part-0.parquet").column("arrival_time").to_pylist()
        assert arrival == sorted(arrival)
        assert {a // 86_400_000 for a in arrival} == {arrival[0] // 86_400_000}


def test_cli_refuses_bad_settings_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["simulate", "--out", str(tmp_path), "--late-share", "1.5"])
    assert status == 2
    assert "simulator.late_share" in capsys.readouterr().err
    assert main(["--set", "simulator.profile=wild", "simulate", "--out", str(tmp_path)]) == 2
    assert "simulator.profile" in capsys.readouterr().err


def test_flags_override_config(tmp_path: Path) -> None:
    manifest = _run(tmp_path, "--profile", "handbook", "--seed", "5")
    assert manifest["profile"] == "handbook"
    assert manifest["seed"] == 5
    assert manifest["run"] == "h5"
    assert DELIVERY_CODE["malformed"] == len(MALFORMED_KINDS)  # kinds table is complete


def test_schemas_and_simulator_never_import_pyflink() -> None:
    code = (
        "import sys, schemas, schemas.validation, training.simulator.generate, "
        "training.simulator.writers, riskstream.simulate_kafka, riskstream.cli.simulate_cmd; "
        "print(any(m.split('.')[0] == 'pyflink' for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, text=True
    )
    assert result.stdout.strip() == "False"
