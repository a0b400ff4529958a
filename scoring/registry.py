"""Reading the model registry: one folder per version with ONNX files, their sha256 and a card.

Layout::

    <registry>/v0001/model_card.json   feature set, inputs, split, metrics, thresholds, stage, ...
    <registry>/v0001/<model>.onnx       isolation_forest, logistic_regression, ... , ensemble
    <registry>/v0001/sha256sums.txt     the same checksums as the card, for `sha256sum -c`
    <registry>/champions.json           promotion stack (what ``rollback`` restores)

Models are only ever loaded as ONNX (onnxruntime sessions built from the verified bytes), never
unpickled, and only when each file's sha256 matches the card and the card's feature set (name,
version, hash, ordered list) matches the code's. :func:`load_champion` is the entry point of the
scoring UDF: call it once in ``open()`` with the registry path from settings. Writing versions,
promotion and rollback are offline work (:mod:`training.registry`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from core.errors import ModelContractError, RegistryError
from schemas.feature_set import PAYMENT_FEATURES, FeatureSet
from scoring import fields
from scoring import stacking as models
from scoring.onnx_io import PROVIDERS, batch_invariant_score, ensemble_probability
from scoring.rules import RuleModel
from scoring.thresholds import Thresholds

CARD_FILE = fields.CARD_FILE
SUMS_FILE = "sha256sums.txt"
CHAMPIONS_FILE = "champions.json"
"""Promotion stack at the registry root: the last entry is the champion."""
VERSION_PREFIX = "v"
CANDIDATE, CHAMPION, RETIRED = "candidate", "champion", "retired"
STAGES = (CANDIDATE, CHAMPION, RETIRED)
SESSION_THREADS = 1
"""onnxruntime intra-op threads per session: a Flink slot is one thread of scoring."""


def sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def feature_set_entry(feature_set: FeatureSet) -> dict[str, Any]:
    """The card's feature-set block: name, version, hash and the ordered feature list."""
    return {
        "name": feature_set.name,
        "version": feature_set.version,
        "spec_hash": feature_set.spec_hash(),
        "features": list(feature_set.names),
    }


def versions(registry: Path) -> list[str]:
    """Version names in the registry, oldest first."""
    if not registry.is_dir():
        return []
    return sorted(
        p.name
        for p in registry.iterdir()
        if p.is_dir() and p.name.startswith(VERSION_PREFIX) and (p / CARD_FILE).is_file()
    )


def read_card(registry: Path, version: str) -> dict[str, Any]:
    """The model card of ``version``; :class:`RegistryError` if it is missing or unreadable."""
    path = registry / version / CARD_FILE
    try:
        card: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        known = ", ".join(versions(registry)) or "none"
        raise RegistryError(
            f"no model version {version!r} in {registry} (expected {path}); versions: {known}"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"cannot read model card {path}: {exc}") from exc
    for key in ("version", "stage", "feature_set", "inputs", "models", "thresholds"):
        if key not in card:
            raise RegistryError(f"model card {path}: expected key {key!r}, not found")
    return card


def champion(registry: Path) -> str | None:
    """The version whose stage is champion, if any."""
    found = [v for v in versions(registry) if read_card(registry, v)["stage"] == CHAMPION]
    if len(found) > 1:
        raise RegistryError(f"{registry}: expected one champion, found {', '.join(found)}")
    return found[0] if found else None


def check_contract(card: Mapping[str, Any], feature_set: FeatureSet) -> None:
    """Refuse a card whose feature set differs from the code's (name, version, hash, order)."""
    entry, expected = card["feature_set"], feature_set_entry(feature_set)
    where = f"model {card['version']}"
    for key in ("name", "version", "spec_hash"):
        if entry.get(key) != expected[key]:
            raise ModelContractError(
                f"{where} was trained on feature set {entry.get('name')} v{entry.get('version')} "
                f"(hash {str(entry.get('spec_hash'))[:12]}); this code computes "
                f"{expected['name']} v{expected['version']} (hash {expected['spec_hash'][:12]}): "
                f"{key} differs; retrain or deploy the matching code"
            )
    if entry.get("features") != expected["features"]:
        raise ModelContractError(
            f"{where}: the card's ordered feature list differs from the code's feature set"
        )
    unknown = [n for n in card["inputs"] if n not in feature_set.names]
    if unknown:
        raise ModelContractError(f"{where}: inputs {unknown} are not in the feature set")
    family = list(card.get("ensemble", {}).get("inputs", []))
    if family != list(models.STACKED):
        raise ModelContractError(
            f"{where} stacks the models {family}; this code serves the family "
            f"{list(models.STACKED)} (scoring/stacking.py): retrain with this code or deploy "
            "the code that trained it"
        )


def verified_bytes(folder: Path, name: str, entry: Mapping[str, Any]) -> bytes:
    path = folder / entry["file"]
    try:
        data: bytes = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"cannot read {path}: {exc.strerror}") from exc
    found = sha256(data)
    if found != entry["sha256"]:
        raise RegistryError(
            f"{path}: checksum mismatch for model {name}: expected sha256 {entry['sha256']}, "
            f"found {found}; the file was changed after registration, refusing to load it"
        )
    return data


@dataclass(frozen=True)
class Scores:
    """Every model's score for a batch, the ensemble probability and the decisions."""

    base: dict[str, npt.NDArray[np.float64]]
    probability: npt.NDArray[np.float64]
    decision: npt.NDArray[np.object_]


@dataclass(frozen=True)
class LoadedModels:
    """A verified registry version, ready to score feature vectors (open once per worker)."""

    version: str
    card: Mapping[str, Any]
    sessions: Mapping[str, ort.InferenceSession]
    model_bytes: Mapping[str, bytes]
    """The verified ONNX bytes of each model (e.g. to read a linear model's coefficients)."""
    rules: RuleModel
    thresholds: Thresholds
    inputs: tuple[str, ...]
    input_index: tuple[int, ...]
    """Positions of the model inputs in the feature-set vector."""
    fast_thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    """Per learned model, the thresholds a shed batch decides that model's score with (cut on
    its own out-of-fold scores); a model missing here (a card written before they existed) is
    decided with :attr:`thresholds`."""

    def thresholds_of(self, model: str) -> Thresholds:
        """The thresholds that decide ``model``'s own score when it stands in for the ensemble."""
        return self.fast_thresholds.get(model, self.thresholds)

    def model_inputs(self, features: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        """The model inputs (card order, float32) of rows of full feature-set vectors."""
        return np.ascontiguousarray(features[:, list(self.input_index)], dtype=np.float32)

    def score(self, features: npt.NDArray[np.floating[Any]]) -> Scores:
        """Score rows of full feature-set vectors (columns in ``PAYMENT_FEATURES`` order).

        The full ensemble, with no degraded modes: the same per-model and ensemble scoring as
        the UDF's :class:`scoring.scorer.Scorer` in full mode, bit for bit in any batch size.
        """
        x = self.model_inputs(features)
        base = {models.RULES: self.rules.score(x), **models.derived_scores(x, self.inputs)}
        for name in models.LEARNED:
            base[name] = batch_invariant_score(name, self.sessions[name], x)
        p = ensemble_probability(self.sessions[models.ENSEMBLE], base)
        return Scores(base=base, probability=p, decision=self.thresholds.decide(p))


def load_version(
    registry: Path, version: str, feature_set: FeatureSet = PAYMENT_FEATURES
) -> LoadedModels:
    """Load one version: contract check, checksum check, then onnxruntime sessions."""
    card = read_card(registry, version)
    check_contract(card, feature_set)
    missing = [n for n in (*models.LEARNED, models.ENSEMBLE) if n not in card["models"]]
    if missing:
        raise RegistryError(f"model {version}: card lists no file for {missing}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = SESSION_THREADS
    options.inter_op_num_threads = SESSION_THREADS
    model_bytes = {
        name: verified_bytes(registry / version, name, entry)
        for name, entry in card["models"].items()
    }
    sessions = {
        name: ort.InferenceSession(data, options, providers=PROVIDERS)
        for name, data in model_bytes.items()
    }
    inputs = tuple(card["inputs"])
    return LoadedModels(
        version=version,
        card=card,
        sessions=sessions,
        model_bytes=model_bytes,
        rules=RuleModel.from_card(card, inputs),
        thresholds=Thresholds(**card["thresholds"]),
        inputs=inputs,
        input_index=tuple(feature_set.names.index(n) for n in inputs),
        fast_thresholds={
            name: Thresholds(**t) for name, t in card.get("fast_thresholds", {}).items()
        },
    )


def load_champion(registry: Path, feature_set: FeatureSet = PAYMENT_FEATURES) -> LoadedModels:
    """Load the champion version (what the scoring job serves)."""
    version = champion(registry)
    if version is None:
        raise RegistryError(
            f"{registry}: no champion version; promote one with `riskstream models promote VERSION`"
        )
    return load_version(registry, version, feature_set)
