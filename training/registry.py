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
from dataclasses import dataclass
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

RANGE_QUANTILES = (0.001, 0.999)
"""A feature's training range in the model card: its 0.1% and 99.9% quantiles."""

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


def build_card(
    run: TrainingRun,
    version: str,
    data_source: str,
    generator: Mapping[str, Any] | None = None,
    table: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The model card of a training run (files are added by :func:`write_version`).

    Field names are stable (docs/training.md, "Model card"); the scoring job's guardrails read
    ``feature_ranges``, ``expected_decisions`` and ``rules[].never_fired_in_training``.
    ``generator`` is the simulator profile and settings the training data came from (None: not
    known); ``table`` describes a ``train --table`` source (such a model is not servable by the
    payment job unless its columns are the payment feature set).
    """
    never = [r.name for r in run.rules.rules if run.rule_fired_share.get(r.name, 0.0) == 0.0]
    expected = run.expected_decisions
    return {
        "card_schema_version": CARD_SCHEMA_VERSION,
        "version": version,
        "created_utc": _now(),
        "stage": CANDIDATE,
        "history": [{"stage": CANDIDATE, "at": _now()}],
        "servable": table is None or bool(table.get("servable")),
        "feature_set": feature_set_entry(run.feature_set),
        "inputs": list(run.inputs),
        "models": {},
        "rules": [
            r.to_dict()
            | {
                "fired_share_train": run.rule_fired_share.get(r.name, 0.0),
                "never_fired_in_training": r.name in never,
            }
            for r in run.rules.rules
        ],
        "rules_never_fired": never,
        "ensemble": {
            "inputs": list(models.STACKED),
            "transform": "log-odds of clipped probabilities; amount_deviation as it is",
            "clip": models.PROBABILITY_CLIP,
        },
        "thresholds": run.thresholds.to_dict(),
        "fast_thresholds": {name: t.to_dict() for name, t in run.fast_thresholds.items()},
        "threshold_support": dict(run.threshold_support),
        "expected_decisions": {
            **expected.get("test", {}),
            "source": "ensemble decisions on the test period",
            "train_out_of_fold": expected.get("train_out_of_fold", {}),
        },
        "feature_ranges": {
            "quantiles": list(RANGE_QUANTILES),
            "features": run.feature_ranges,
        },
        "training": {
            "data": data_source,
            "generator": None if generator is None else dict(generator),
            "table": None if table is None else dict(table),
            "window": run.split.to_dict(),
            "label_delay_days": run.split.delay_ms / 86_400_000,
            "rows": run.rows,
            "boosting_selection": None if run.boosting is None else run.boosting.to_dict(),
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


def write_version(
    registry: Path,
    run: TrainingRun,
    data_source: str,
    generator: Mapping[str, Any] | None = None,
    table: Mapping[str, Any] | None = None,
) -> Path:
    """Write a new candidate version of ``run`` (files first, card last, then an atomic rename)."""
    registry.mkdir(parents=True, exist_ok=True)
    version = _next_version(registry)
    staging = Path(tempfile.mkdtemp(dir=registry, prefix=f".{version}-"))
    card = build_card(run, version, data_source, generator, table)
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


@dataclass(frozen=True)
class DeployPolicy:
    """What a deployment checks before it serves a model (``riskstream train --promote``,
    ``riskstream models promote``, the demo): the traffic profile it scores and the fewest
    training scores the block threshold may rest on."""

    serving_profile: str
    min_block_tail: int


def deploy_problems(card: Mapping[str, Any], policy: DeployPolicy) -> list[str]:
    """Why ``card`` should not serve under ``policy`` (empty: nothing against it).

    A model trained on another generator profile than the traffic it scores (or on data whose
    profile is not recorded) decides on a world it never saw; a block threshold resting on fewer
    than ``min_block_tail`` training scores moves from one training run to the next.
    """
    problems = []
    training = card.get("training", {})
    generator = training.get("generator") or {}
    profile = generator.get("profile")
    if profile is None:
        problems.append(
            f"its training data ({training.get('data', 'unknown')}) records no generator "
            f"profile, so it cannot be checked against the serving profile "
            f"{policy.serving_profile!r} (scoring.profile)"
        )
    elif profile != policy.serving_profile:
        problems.append(
            f"it was trained on the {profile!r} profile (seed {generator.get('seed')}) but this "
            f"deployment scores the {policy.serving_profile!r} profile (scoring.profile): train "
            "on the world you score"
        )
    support = card.get("threshold_support") or {}
    tail = support.get("block_tail")
    if tail is None or tail < policy.min_block_tail:
        problems.append(
            f"its block threshold rests on {tail if tail is not None else 'an unknown number of'} "
            f"training scores, fewer than training.min_block_tail = {policy.min_block_tail}: "
            "train on more rows"
        )
    return problems


def promote(
    registry: Path, version: str, policy: DeployPolicy | None = None, force: bool = False
) -> str | None:
    """Make ``version`` the champion; the previous champion is retired (returned).

    With a ``policy``, a model with :func:`deploy_problems` is refused (:class:`RegistryError`)
    unless ``force``, which promotes it and records the problems in the card's history. A model
    that is not servable by the payment job (``train --table``) is always refused.
    """
    card = read_card(registry, version)
    if not card.get("servable", True):
        raise RegistryError(
            f"model {version} was trained on a table ({card['training'].get('data')}), not on the "
            "payment feature set: it is not servable by the payment job"
        )
    check_contract(card, PAYMENT_FEATURES)
    problems = deploy_problems(card, policy) if policy is not None else []
    if problems and not force:
        raise RegistryError(
            f"refusing to promote {version}: " + "; ".join(problems) + " (--force promotes it "
            "anyway)"
        )
    previous = champion(registry)
    if previous == version:
        return None
    if previous is not None:
        _set_stage(registry, read_card(registry, previous), RETIRED)
    if problems:
        card.setdefault("history", []).append({"forced": problems, "at": _now()})
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
