"""Where training sets come from: backfill output files, or a simulation computed in memory.

Both end in :func:`training.dataset.build_training_set` (the point-in-time builder), whose frame
has ``event_id, event_time, card_id, terminal_id, <PAYMENT_FEATURES names>, label, label_time``.
For a simulation, features come from :class:`features.compute.FeaturePipeline` (the project's
one feature code, never re-implemented) over a clean history: payments in event-time order with
the labels interleaved at the time they became known, which is what the backfill computes for
in-order input, without starting a Flink mini-cluster.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.config import SimulatorSettings
from core.errors import ModelContractError, SchemaError
from core.progress import Progress, note
from features.compute import FeaturePipeline
from features.table import BACKFILL_SUMMARY_FILE, file_hashes
from schemas.feature_set import PAYMENT_FEATURES, FeatureSet
from schemas.records import Label, Transaction
from training.dataset import build_training_set, load_features, load_labels
from training.simulator import encode
from training.simulator.generate import Simulation, simulate

CHUNK_ROWS = 20_000
FRAUD, LEGIT = "fraud", "legit"
MS_PER_DAY = 86_400_000


MANIFEST_FILE = "manifest.json"
"""The simulator's manifest (``riskstream simulate --out``): profile, seed and settings."""


@dataclass(frozen=True)
class TrainingData:
    """A training-set frame plus what produced it (for the model card)."""

    frame: pd.DataFrame
    source: str
    start_ms: int
    end_ms: int
    generator: dict[str, Any] | None = None
    """Simulator profile, seed and settings of the data (None: not known)."""


def generator_entry(settings: SimulatorSettings) -> dict[str, Any]:
    """The model card's ``training.generator`` for a simulation with ``settings``."""
    return {
        "profile": settings.profile,
        "seed": settings.seed,
        "settings": settings.model_dump(mode="json"),
    }


def find_generator(*paths: Path) -> dict[str, Any] | None:
    """The generator recorded next to training data: a simulator ``manifest.json`` in one of
    ``paths`` or its parent, or the manifest a backfill copied into its summary."""
    for path in paths:
        for folder in (path, path.parent):
            manifest = folder / MANIFEST_FILE
            summary = folder / BACKFILL_SUMMARY_FILE
            try:
                if manifest.is_file():
                    document = json.loads(manifest.read_text("utf-8"))
                elif summary.is_file():
                    document = json.loads(summary.read_text("utf-8")).get("generator") or {}
                else:
                    continue
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(document, dict) and document.get("profile"):
                return {k: document.get(k) for k in ("profile", "seed", "settings")}
    return None


def check_feature_hash(frame: pd.DataFrame, feature_set: FeatureSet, where: Path) -> None:
    """Refuse feature rows computed by another feature-set spec than the code's.

    Every backfilled row (and every features-topic record) carries ``feature_set_hash``; a model
    trained on rows of an older spec would be stamped with the current hash and then served
    features it never saw.
    """
    expected = feature_set.spec_hash()
    found = sorted({str(h) for h in frame["feature_set_hash"].unique()} - {expected})
    if found:
        count = int((frame["feature_set_hash"] != expected).sum())
        raise ModelContractError(
            f"{where}: {count} of {len(frame)} feature rows were computed by feature set "
            f"{feature_set.name} with spec hash {', '.join(h[:12] for h in found)}; this code "
            f"computes hash {expected[:12]} (v{feature_set.version}): re-run `riskstream "
            "backfill` with this code, or train with the code that wrote them"
        )


def _transactions(sim: Simulation) -> Iterator[tuple[int, int, Transaction]]:
    tx = sim.transactions
    for start in range(0, len(tx), CHUNK_ROWS):
        rows = np.arange(start, min(start + CHUNK_ROWS, len(tx)), dtype=np.int64)
        records = encode.transactions(
            tx, sim.entities, rows, run=sim.run, source=sim.settings.source
        )
        for record in records:
            yield record.event_time, 1, record


def _labels(sim: Simulation) -> Iterator[tuple[int, int, Label]]:
    # Only fraud labels change feature state (the card, device and terminal stages ignore legit
    # ones), and the handbook profile labels every payment: replaying just these halves the work.
    labels = sim.labels.take(sim.labels.fraud)
    for start in range(0, len(labels), CHUNK_ROWS):
        rows = np.arange(start, min(start + CHUNK_ROWS, len(labels)), dtype=np.int64)
        records = encode.labels_records(
            labels, sim.transactions, sim.entities, rows, run=sim.run, source=sim.settings.source
        )
        for record in records:
            yield record.event_time, 0, record


def feature_matrix(sim: Simulation, progress: Progress, rows: int) -> npt.NDArray[np.float64]:
    """Features of the first ``rows`` transactions of ``sim`` (in event-time order), replayed
    with each label applied when it became known (labels first on ties)."""
    pipeline = FeaturePipeline()
    out = np.empty((rows, len(PAYMENT_FEATURES.names)), dtype=np.float64)
    row = 0
    merged = heapq.merge(_labels(sim), _transactions(sim), key=lambda item: (item[0], item[1]))
    for _, kind, record in merged:
        if row == rows:
            break
        if kind == 0:
            pipeline.label(record)  # type: ignore[arg-type]
            continue
        out[row] = pipeline.transaction(record).values  # type: ignore[arg-type]
        row += 1
        if row % CHUNK_ROWS == 0:
            progress.advance(CHUNK_ROWS)
    progress.advance(row % CHUNK_ROWS)
    return out


def features_frame(sim: Simulation, progress: Progress, count: int) -> pd.DataFrame:
    """What ``training.dataset.load_features`` returns for a backfill: key columns + features."""
    tx = sim.transactions
    rows = np.arange(count, dtype=np.int64)
    frame = pd.DataFrame(
        {
            "event_id": encode.transaction_ids(sim.run, rows),
            "event_time": tx.event_time[:count],
            "card_id": sim.entities.cards[tx.card[:count]],
            "terminal_id": sim.entities.terminals[tx.terminal[:count]],
        }
    )
    features = pd.DataFrame(
        feature_matrix(sim, progress, count), columns=list(PAYMENT_FEATURES.names)
    )
    return pd.concat([frame, features], axis=1)


def labels_frame(sim: Simulation) -> pd.DataFrame:
    """What ``training.dataset.load_labels`` returns for the simulation's label files."""
    labels, tx = sim.labels, sim.transactions
    return pd.DataFrame(
        {
            "event_id": [f"lb-{sim.run}-{i:09d}" for i in labels.transaction.tolist()],
            "event_time": labels.event_time,
            "transaction_id": encode.transaction_ids(sim.run, labels.transaction),
            "transaction_time": tx.event_time[labels.transaction],
            "label": np.where(labels.fraud, FRAUD, LEGIT),
        }
    )


def eventual_training_set(features: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The point-in-time training set with a cutoff after every label: eventual ground truth.

    The time split (``training/split.py``) then decides which labels training may see.
    """
    latest = max(int(labels["event_time"].max()), int(features["event_time"].max()))
    return build_training_set(features, labels, cutoff_ms=latest + 1)


def check_file_hashes(path: Path, feature_set: FeatureSet) -> None:
    """Refuse Parquet feature files whose metadata names another feature-set hash."""
    expected = feature_set.spec_hash()
    wrong = {f: h for f, h in file_hashes(path).items() if h is not None and h != expected}
    if wrong:
        file, found = next(iter(wrong.items()))
        raise ModelContractError(
            f"{file}: written by feature set {feature_set.name} with spec hash {found[:12]} "
            f"({len(wrong)} file(s) like it); this code computes hash {expected[:12]} "
            f"(v{feature_set.version}): re-run `riskstream backfill` with this code, or train "
            "with the code that wrote them"
        )


def load_training_data(features_path: Path, labels_path: Path) -> TrainingData:
    """A training set from backfilled features and label files (``training/dataset.py``).

    Refuses feature files whose feature-set hash differs from the code's (Parquet metadata and
    every row's ``feature_set_hash``).
    """
    check_file_hashes(features_path, PAYMENT_FEATURES)
    features, labels = load_features(features_path), load_labels(labels_path)
    if features.empty:
        raise SchemaError(f"{features_path}: no feature rows found")
    check_feature_hash(features, PAYMENT_FEATURES, features_path)
    frame = eventual_training_set(features, labels)
    times = frame["event_time"].to_numpy()
    return TrainingData(
        frame=frame,
        source=f"features {features_path}, labels {labels_path}",
        start_ms=int(times.min()) // MS_PER_DAY * MS_PER_DAY,
        end_ms=int(times.max()) + 1,
        generator=find_generator(labels_path, features_path),
    )


def simulated_training_data(
    settings: SimulatorSettings, until_ms: int | None = None, quiet: bool = False
) -> TrainingData:
    """Simulate (in memory) and compute the training set with the project's feature code;
    ``until_ms`` stops feature computation early (later payments are not needed)."""
    note(f"simulate: profile {settings.profile}, seed {settings.seed}, {settings.days} days", quiet)
    sim = simulate(settings)
    total = len(sim.transactions)
    if until_ms is not None:
        total = int(np.searchsorted(sim.transactions.event_time, until_ms, side="left"))
    progress = Progress(total, "features", "transactions", quiet=quiet)
    features = features_frame(sim, progress, total)
    progress.close()
    note("dataset: joining point-in-time labels", quiet)
    frame = eventual_training_set(features, labels_frame(sim))
    return TrainingData(
        frame=frame,
        source=(
            f"simulator profile={settings.profile} seed={settings.seed} days={settings.days} "
            f"transactions={len(sim.transactions)}"
        ),
        start_ms=sim.start_ms,
        end_ms=sim.end_ms if until_ms is None else min(sim.end_ms, until_ms),
        generator=generator_entry(settings),
    )
