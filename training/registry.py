"""Writing the model registry: new candidate versions, promotion and rollback (offline only).

The layout, the card's contract check and loading live in :mod:`scoring.registry` (the serving
side); this module writes what that side reads: files first, card last, then an atomic rename, so
a reader never sees a half-written version.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import RegistryError
from schemas.feature_set import PAYMENT_FEATURES
from scoring import stacking as models
from scoring.onnx_io import TARGET_OPSET
from scoring.registry import (
    CANDIDATE,
    CARD_FILE,
    CHAMPION,
    CHAMPIONS_FILE,
    RETIRED,
    SUMS_FILE,
    VERSION_PREFIX,
    champion,
    check_contract,
    feature_set_entry,
    read_card,
    sha256,
    versions,
)

if TYPE_CHECKING:
    from training.train import TrainingRun

CARD_SCHEMA_VERSION = 1
VERSION_DIGITS = 4
LIBRARIES = ("scikit-learn", "skl2onnx", "onnxruntime", "onnx", "numpy", "pandas")
REPO_ROOT = Path(__file__).resolve().parents[1]


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


def _set_stage(registry: Path, card: dict[str, Any], stage: str) -> None:
    card["stage"] = stage
    card.setdefault("history", []).append({"stage": stage, "at": _now()})
    _atomic_write(registry / card["version"] / CARD_FILE, _card_text(card))


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
