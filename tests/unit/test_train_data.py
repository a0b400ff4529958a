"""``riskstream train --data DIR``: backfill-shaped feature Parquet + simulator label files,
through ``training/dataset.py``, give the same training set as the in-memory path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.config import Settings, replace
from core.progress import Progress
from features import output
from features import table as feature_table
from riskstream.cli import main
from schemas.feature_set import PAYMENT_FEATURES, PaymentFeatureValues
from tests.conftest import TINY_SPLIT
from training.data import TrainingData, load_training_data
from training.simulator import encode, writers
from training.simulator.generate import simulate


def _write_backfill(out: Path, tiny_data: TrainingData, tiny_settings: Settings) -> None:
    """What the backfill writes (features table) and what the simulator writes (labels)."""
    settings = replace(tiny_settings.simulator, format="parquet")
    sim = simulate(settings)
    quiet = Progress(len(sim.delivery), "simulate", quiet=True)
    writers.write_files(sim, out / "sim", "parquet", quiet)
    frame = tiny_data.frame
    rows = np.arange(len(sim.transactions), dtype=np.int64)
    txs = encode.transactions(sim.transactions, sim.entities, rows, sim.run, settings.source)
    by_id = frame.set_index("event_id")[list(PAYMENT_FEATURES.names)]
    records = [
        output.build(
            tx,
            values=PaymentFeatureValues(**by_id.loc[tx.event_id].to_dict()),
            duplicate=False,
            late=False,
            watermark_lag_ms=-1,
            computed_time=0,
        )
        for tx in txs
    ]
    (out / "rt" / "features").mkdir(parents=True)
    pq.write_table(feature_table.to_table(records), out / "rt" / "features" / "part-0.parquet")


def test_train_from_backfill_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tiny_data: TrainingData,
    tiny_settings: Settings,
) -> None:
    _write_backfill(tmp_path, tiny_data, tiny_settings)
    loaded = load_training_data(tmp_path / "rt", tmp_path / "sim")
    expected = tiny_data.frame
    assert loaded.frame["event_id"].tolist() == expected["event_id"].tolist()
    assert loaded.frame["label"].tolist() == expected["label"].tolist()
    argv = [arg for k, v in TINY_SPLIT.items() for arg in ("--set", f"training.{k}={v}")]
    status = main(
        [
            *argv,
            "train",
            "--data",
            str(tmp_path / "rt"),
            "--labels",
            str(tmp_path / "sim"),
            "--registry",
            str(tmp_path / "registry"),
            "--quiet",
        ]
    )
    assert status == 0
    assert "registered v0001 (candidate)" in capsys.readouterr().out


def _rewrite_hash(file: Path, old: str, keep_metadata: bool) -> None:
    """Make ``file`` look written by an older feature-set spec (rows, and metadata if kept)."""
    table = pq.read_table(file)
    column = table.schema.get_field_index("feature_set_hash")
    table = table.set_column(column, "feature_set_hash", [[old] * len(table)])
    metadata = dict(table.schema.metadata or {})
    if keep_metadata:
        metadata[feature_table.HASH_METADATA_KEY.encode()] = old.encode()
    else:
        metadata.pop(feature_table.HASH_METADATA_KEY.encode(), None)
    pq.write_table(table.replace_schema_metadata(metadata), file)


@pytest.mark.parametrize("keep_metadata", [True, False])
def test_train_refuses_feature_files_of_an_older_spec_hash(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    keep_metadata: bool,
    tiny_data: TrainingData,
    tiny_settings: Settings,
) -> None:
    _write_backfill(tmp_path, tiny_data, tiny_settings)
    part = tmp_path / "rt" / "features" / "part-0.parquet"
    assert feature_table.file_hashes(tmp_path / "rt") == {part: PAYMENT_FEATURES.spec_hash()}
    old = "0" * 64
    _rewrite_hash(part, old, keep_metadata)
    root = tmp_path / "registry"
    data = ["--data", str(tmp_path / "rt"), "--labels", str(tmp_path / "sim")]
    status = main(["train", *data, "--registry", str(root), "--quiet"])
    err = capsys.readouterr().err
    assert status != 0
    assert "spec hash 000000000000" in err and PAYMENT_FEATURES.spec_hash()[:12] in err
    assert "re-run `riskstream backfill`" in err
    assert not root.exists() or not list(root.glob("v*"))


def test_training_from_files_records_the_simulators_profile(
    tmp_path: Path, tiny_data: TrainingData, tiny_settings: Settings
) -> None:
    _write_backfill(tmp_path, tiny_data, tiny_settings)
    loaded = load_training_data(tmp_path / "rt", tmp_path / "sim")
    assert loaded.generator is not None
    assert loaded.generator["profile"] == "handbook"
    assert loaded.generator["settings"]["customers"] == tiny_settings.simulator.customers
