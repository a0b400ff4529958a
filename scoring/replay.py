"""Scoring a batch in which some payments are replays of decisions already published.

After a failure, Flink restores the last checkpoint and replays every payment read since: their
decisions were already written to the at-least-once decisions topic, and consumers acted on them.
Load shedding is decided from the wall-clock lag at processing time, which is not part of the
replayed input, so a replay could be scored in another mode (``full`` vs ``shed``) and get another
score and decision under the same decision id. A :class:`~udfs.decision_memory.DecisionMemory`
read back from the decisions topic gives the mode each replayed payment was first scored in; this
module scores those rows in that mode, and the others (new payments) by their lag as usual. The
features of a replay equal the first copy's (restored keyed state, per-key order), and the models
are batch-invariant (:func:`scoring.onnx_io.batch_invariant_score`), so the same mode gives the
same score, decision and reason codes.

Pure numpy, like :mod:`scoring.scorer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scoring.fields import MODE_FULL, MODE_SHED
from scoring.scorer import F64, BatchResult, Scorer

REPLAYABLE = (MODE_FULL, MODE_SHED)
"""Modes a replay re-uses. ``rules_only`` follows from model failures, which the models decide
again on the same features (a NaN model fails again), not from the load."""


def remembered_mode(degraded: bool, reason_codes: Sequence[str]) -> str | None:
    """The mode a published decision was scored in, if a replay should re-use it.

    >>> remembered_mode(False, ["rule:large_amount"])
    'full'
    >>> remembered_mode(True, ["feature:amount", "degraded:shed"])
    'shed'
    >>> remembered_mode(True, ["degraded:rules_only", "model_failed:mlp"]) is None
    True
    """
    if not degraded:
        return MODE_FULL
    return MODE_SHED if f"degraded:{MODE_SHED}" in reason_codes else None


@dataclass
class ScoredBatch:
    """Per-row outputs of a batch scored in one or more modes."""

    scores: dict[str, F64]
    probability: F64
    decision: npt.NDArray[np.object_]
    reasons: npt.NDArray[np.object_]
    modes: npt.NDArray[np.object_]
    parts: tuple[BatchResult, ...]
    """The result of each group of rows scored together (for the counters)."""
    replayed: int
    """Rows scored in their remembered mode."""


def _whole(result: BatchResult, rows: int, replayed: int) -> ScoredBatch:
    return ScoredBatch(
        dict(result.scores),
        result.probability,
        result.decision,
        result.reasons,
        np.full(rows, result.mode, dtype=object),
        (result,),
        replayed,
    )


def score_batch(
    scorer: Scorer, features: F64, lag_ms: float, remembered: Sequence[str | None]
) -> ScoredBatch:
    """Score ``features``; row ``i`` in mode ``remembered[i]`` when it is ``full`` or ``shed``,
    else by ``lag_ms`` under the scorer's shedding policy (one call per group of rows)."""
    rows = len(features)
    if len(remembered) != rows:
        raise ValueError(f"remembered: expected {rows} modes, found {len(remembered)}")
    if not any(remembered):  # the usual batch: nothing to replay
        return _whole(scorer.score(features, lag_ms), rows, 0)
    keys = [m if m in REPLAYABLE else None for m in remembered]
    if all(k is None for k in keys):
        return _whole(scorer.score(features, lag_ms), rows, 0)
    if len(set(keys)) == 1:
        return _whole(scorer.score(features, lag_ms, keys[0]), rows, rows)
    groups: dict[str | None, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    scores: dict[str, F64] = {}
    probability = np.empty(rows, dtype=np.float64)
    decision = np.empty(rows, dtype=object)
    reasons = np.empty(rows, dtype=object)
    modes = np.empty(rows, dtype=object)
    parts = []
    for key in sorted(groups, key=lambda k: k is not None):  # the live rows first
        index = np.asarray(groups[key])
        part = scorer.score(features[index], lag_ms, key)
        parts.append(part)
        for name, values in part.scores.items():
            scores.setdefault(name, np.full(rows, np.nan))[index] = values
        probability[index] = part.probability
        decision[index] = part.decision
        modes[index] = part.mode
        reasons[index] = part.reasons
    replayed = rows - len(groups.get(None, ()))
    return ScoredBatch(scores, probability, decision, reasons, modes, tuple(parts), replayed)
