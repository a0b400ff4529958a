"""The model registry: one folder per version with ONNX files, their sha256 and a model card.

Layout::

    <registry>/v0001/model_card.json   feature set, inputs, split, metrics, thresholds, stage, ...
    <registry>/v0001/<model>.onnx       isolation_forest, logistic_regression, ... , ensemble
    <registry>/v0001/sha256sums.txt     the same checksums as the card, for `sha256sum -c`
    <registry>/champions.json           promotion stack (what ``rollback`` restores)

Models are only ever loaded as ONNX (onnxruntime sessions built from the verified bytes), never
unpickled, and only when each file's sha256 matches the card and the card's feature set (name,
version, hash, ordered list) matches the code's. :func:`load_champion` is the entry point of the
scoring UDF: call it once in ``open()`` with the registry path from settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from core.errors import ModelContractError, RegistryError
from schemas.feature_set import PAYMENT_FEATURES, FeatureSet
from training import stacking as models
from training.onnx_io import PROVIDERS, TARGET_OPSET, onnx_score
from training.rules import RuleModel
from training.thresholds import Thresholds

if TYPE_CHECKING:
    from training.train import TrainingRun

CARD_FILE = "model_card.json"
SUMS_FILE = "sha256sums.txt"
CHAMPIONS_FILE = "champions.json"
"""Promotion stack at the registry root: the last entry is the champion."""
CARD_SCHEMA_VERSION = 1
VERSION_PREFIX = "v"
VERSION_DIGITS = 4
CANDIDATE, CHAMPION, RETIRED = "candidate", "champion", "retired"
STAGES = (CANDIDATE, CHAMPION, RETIRED)
LIBRARIES = ("scikit-learn", "skl2onnx", "onnxruntime", "onnx", "numpy", "pandas")
SESSION_THREADS = 1
"""onnxruntime intra-op threads per session: a Flink slot is one thread of scoring."""
REPO_ROOT = Path(__file__).resolve().parents[1]


def sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_commit() -> str:
    """The code's git commit (``+dirty`` if the work tree has changes), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def library_versions() -> dict[str, str]:
    """Versions of the libraries that trained and converted the models."""
    return {"python": platform.python_version()} | {
        name: metadata.version(name) for name in LIBRARIES
    }


def feature_set_entry(feature_set: FeatureSet) -> dict[str, Any]:
    """The card's feature-set block: name, version, hash and the ordered feature list."""
    return {
        "name": feature_set.name,
        "version": feature_set.version,
        "spec_hash": feature_set.spec_hash(),
        "features": list(feature_set.names),
    }


def build_card(run: TrainingRun, version: str, data_source: str) -> dict[str, Any]:
    """The model card of a training run (files are added by :func:`write_version`)."""
    return {
        "card_schema_version": CARD_SCHEMA_VERSION,
        "version": version,
        "created_utc": _now(),
        "stage": CANDIDATE,
        "history": [{"stage": CANDIDATE, "at": _now()}],
        "feature_set": feature_set_entry(run.feature_set),
        "inputs": list(run.inputs),
        "models": {},
        "rules": [r.to_dict() for r in run.rules.rules],
        "ensemble": {
            "inputs": list(models.STACKED),
            "transform": "log-odds of clipped probabilities; the anomaly score as is",
            "clip": models.PROBABILITY_CLIP,
        },
        "thresholds": run.thresholds.to_dict(),
        "training": {
            "data": data_source,
            "window": run.split.to_dict(),
            "label_delay_days": run.split.delay_ms / 86_400_000,
            "rows": run.rows,
        },
        "metrics": run.metrics,
        "parity_max_abs_diff": run.parity,
        "onnx": {"opset": dict(TARGET_OPSET)},
        "libraries": library_versions(),
        "git_commit": git_commit(),
    }


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _card_text(card: Mapping[str, Any]) -> str:
    return json.dumps(card, indent=2) + "\n"


def versions(registry: Path) -> list[str]:
    """Version names in the registry, oldest first."""
    if not registry.is_dir():
        return []
    return sorted(
        p.name
        for p in registry.iterdir()
        if p.is_dir() and p.name.startswith(VERSION_PREFIX) and (p / CARD_FILE).is_file()
    )


def _next_version(registry: Path) -> str:
    taken = [int(v[len(VERSION_PREFIX) :]) for v in versions(registry) if v[1:].isdigit()]
    return f"{VERSION_PREFIX}{(max(taken, default=0) + 1):0{VERSION_DIGITS}d}"


def write_version(registry: Path, run: TrainingRun, data_source: str) -> Path:
    """Write a new candidate version of ``run`` (files first, card last, then an atomic rename)."""
    registry.mkdir(parents=True, exist_ok=True)
    version = _next_version(registry)
    staging = Path(tempfile.mkdtemp(dir=registry, prefix=f".{version}-"))
    card = build_card(run, version, data_source)
    sums = []
    for name, blob in run.onnx.items():
        file = f"{name}.onnx"
        (staging / file).write_bytes(blob)
        digest = sha256(blob)
        card["models"][name] = {"file": file, "sha256": digest, "bytes": len(blob)}
        sums.append(f"{digest}  {file}")
    (staging / SUMS_FILE).write_text("\n".join(sums) + "\n", encoding="utf-8")
    (staging / CARD_FILE).write_text(_card_text(card), encoding="utf-8")
    target = registry / version
    try:
        staging.rename(target)
    except OSError as exc:
        raise RegistryError(f"cannot create {target}: {exc.strerror}") from exc
    return target


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


def _set_stage(registry: Path, card: dict[str, Any], stage: str) -> None:
    card["stage"] = stage
    card.setdefault("history", []).append({"stage": stage, "at": _now()})
    _atomic_write(registry / card["version"] / CARD_FILE, _card_text(card))


def champion(registry: Path) -> str | None:
    """The version whose stage is champion, if any."""
    found = [v for v in versions(registry) if read_card(registry, v)["stage"] == CHAMPION]
    if len(found) > 1:
        raise RegistryError(f"{registry}: expected one champion, found {', '.join(found)}")
    return found[0] if found else None


def _champion_stack(registry: Path) -> list[str]:
    path = registry / CHAMPIONS_FILE
    if not path.is_file():
        return []
    try:
        stack: list[str] = json.loads(path.read_text("utf-8"))["champions"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise RegistryError(f"cannot read {path}: {exc}") from exc
    return stack


def _write_champion_stack(registry: Path, stack: list[str]) -> None:
    _atomic_write(registry / CHAMPIONS_FILE, json.dumps({"champions": stack}, indent=2) + "\n")


def promote(registry: Path, version: str) -> str | None:
    """Make ``version`` the champion; the previous champion is retired (returned)."""
    card = read_card(registry, version)
    check_contract(card, PAYMENT_FEATURES)
    previous = champion(registry)
    if previous == version:
        return None
    if previous is not None:
        _set_stage(registry, read_card(registry, previous), RETIRED)
    _set_stage(registry, card, CHAMPION)
    _write_champion_stack(registry, [*_champion_stack(registry), version])
    return previous


def rollback(registry: Path) -> tuple[str, str]:
    """Retire the champion and restore the one promoted before it; returns (retired, restored).

    Promotions form a stack (``champions.json``): rolling back twice goes back two promotions.
    """
    current = champion(registry)
    if current is None:
        raise RegistryError(f"{registry}: no champion to roll back")
    stack = [v for v in _champion_stack(registry) if v != current]
    if not stack:
        raise RegistryError(f"{registry}: {current} is the only version ever promoted")
    restored = stack[-1]
    check_contract(read_card(registry, restored), PAYMENT_FEATURES)
    _set_stage(registry, read_card(registry, current), RETIRED)
    _set_stage(registry, read_card(registry, restored), CHAMPION)
    _write_champion_stack(registry, stack)
    return current, restored


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


def _verified_bytes(folder: Path, name: str, entry: Mapping[str, Any]) -> bytes:
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

    def score(self, features: npt.NDArray[np.floating[Any]]) -> Scores:
        """Score rows of full feature-set vectors (columns in ``PAYMENT_FEATURES`` order)."""
        x = np.ascontiguousarray(features[:, list(self.input_index)], dtype=np.float32)
        base = {models.RULES: self.rules.score(x)}
        for name in models.LEARNED:
            base[name] = onnx_score(name, self.sessions[name], x)
        p = onnx_score(models.ENSEMBLE, self.sessions[models.ENSEMBLE], models.stack_inputs(base))
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
        name: _verified_bytes(registry / version, name, entry)
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
    )


def load_champion(registry: Path, feature_set: FeatureSet = PAYMENT_FEATURES) -> LoadedModels:
    """Load the champion version (what the scoring job serves)."""
    version = champion(registry)
    if version is None:
        raise RegistryError(
            f"{registry}: no champion version; promote one with `riskstream models promote VERSION`"
        )
    return load_version(registry, version, feature_set)
