"""The point-in-time training-set builder: labels after the cutoff never leak in."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pandas as pd
import pyarrow.parquet as pq

from features import output
from features.table import to_table
from riskstream.support.factories import label_for, payment
from schemas.feature_set import PAYMENT_FEATURES
from schemas.records import Label
from training.dataset import (
    OUTPUT_COLUMNS,
    build_training_set,
    load_features,
    load_labels,
)

CUTOFF = 1_000_000


def _features(event_ids: list[str], times: list[int], duplicate: bool = False) -> pd.DataFrame:
    records = [
        output.EnrichedFeatures(
            event_id=event_id,
            event_time=t,
            correlation_id=f"c-{event_id}",
            card_id="card-1",
            terminal_id="term-1",
            device_id=None,
            feature_set=PAYMENT_FEATURES.name,
            feature_set_version=PAYMENT_FEATURES.version,
            feature_set_hash=output.FEATURE_SET_HASH,
            features={name: float(i) for i, name in enumerate(PAYMENT_FEATURES.names)},
            duplicate=duplicate,
            late=False,
            watermark_lag_ms=-1,
            computed_time=0,
        )
        for event_id, t in zip(event_ids, times, strict=True)
    ]
    frame: pd.DataFrame = to_table(records).to_pandas()
    return frame


def _label(tx_id: str, tx_time: int, known_at: int, label: str = "fraud") -> Label:
    tx = payment(tx_id, tx_time, merchant="m-1", correlation_id=f"c-{tx_id}")
    return label_for(tx, known_at, label=label, event_id=f"lbl-{tx_id}-{known_at}")


def _labels_file(tmp_path: Path, labels: list[Label]) -> Path:
    path = tmp_path / "labels" / "day=1970-01-01" / "part-0.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join(msgspec.json.encode(label) for label in labels) + b"\n")
    return tmp_path


def test_label_after_cutoff_is_not_used_and_label_before_is(tmp_path: Path) -> None:
    features = _features(["before", "after", "none"], [100, 200, 300])
    labels = load_labels(
        _labels_file(
            tmp_path,
            [
                _label("before", 100, CUTOFF - 1),  # arrived before the cutoff: used
                _label("after", 200, CUTOFF),  # arrived at the cutoff: not yet known
            ],
        )
    )
    train = build_training_set(features, labels, CUTOFF)
    assert tuple(train.columns) == OUTPUT_COLUMNS
    by_id = train.set_index("event_id")
    assert by_id.loc["before", "label"] == 1
    assert by_id.loc["before", "label_time"] == CUTOFF - 1
    assert by_id.loc["after", "label"] == 0
    assert pd.isna(by_id.loc["after", "label_time"])
    assert by_id.loc["none", "label"] == 0
    # the same label becomes usable once the cutoff moves past its arrival
    later = build_training_set(features, labels, CUTOFF + 1).set_index("event_id")
    assert later.loc["after", "label"] == 1


def test_payments_after_cutoff_and_duplicates_are_dropped(tmp_path: Path) -> None:
    features = pd.concat(
        [
            _features(["a", "late-payment"], [10, CUTOFF + 5]),
            _features(["a"], [10], duplicate=True),
        ],
        ignore_index=True,
    )
    labels = load_labels(_labels_file(tmp_path, [_label("a", 10, 20, "legit")]))
    train = build_training_set(features, labels, CUTOFF)
    assert train["event_id"].tolist() == ["a"]
    assert train["label"].tolist() == [0]
    assert train["label_time"].tolist() == [20]
    assert train[list(PAYMENT_FEATURES.names)].iloc[0].tolist() == [
        float(i) for i in range(len(PAYMENT_FEATURES.names))
    ]


def test_fraud_label_wins_over_an_earlier_legit_confirmation(tmp_path: Path) -> None:
    features = _features(["x"], [10])
    labels = load_labels(
        _labels_file(tmp_path, [_label("x", 10, 50, "legit"), _label("x", 10, 70, "fraud")])
    )
    row = build_training_set(features, labels, CUTOFF).iloc[0]
    assert (row["label"], row["label_time"]) == (1, 70)


def test_load_features_reads_backfill_parquet(tmp_path: Path) -> None:
    table = to_table([])
    pq.write_table(table, tmp_path / "part-0.parquet")
    frame = load_features(tmp_path)
    assert list(frame.columns)[:5] == [
        "event_id",
        "event_time",
        "card_id",
        "terminal_id",
        "device_id",
    ]
    assert len(frame) == 0
