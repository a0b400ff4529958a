"""Scoring policy around the registry's models: full ensemble, circuit breaker, load shedding.

Pure numpy + onnxruntime (no pyflink), so it is tested without a JVM and wrapped by the vectorized
UDF in :mod:`udfs.score_udf`. For each Arrow batch of feature vectors it decides:

- **full**: rules + every learned model -> ensemble probability -> thresholds;
- **shed** (processing lag above the latency budget): only the rules and the fast models run; the
  decision is the strictest of each fast model's score against that model's own thresholds (cut
  in training on its out-of-fold scores, :attr:`LoadedModels.fast_thresholds`) and the rules'
  fallback decision; decisions are marked degraded. Full scoring returns once the lag falls below
  ``recover_ratio`` x budget (hysteresis, so it does not flap);
- **rules only** (a model raised or returned NaN): the batch is decided by the rules' fallback
  thresholds and marked degraded; after ``breaker_failures`` failing batches in a row the failing
  model is skipped for ``breaker_cooldown_ms`` (open circuit), then tried again. Each opening is
  logged once (logger ``scoring.scorer``, WARNING) with the model and the cause of its last
  failure (exception type and message, or the NaN / wrong-shaped output), so ``model_failed:<m>``
  reason codes can be traced to a cause without a log line per batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core.config import ScoringSettings
from core.errors import ConfigError
from scoring import stacking
from scoring.columns import codes
from scoring.explain import LinearExplainer
from scoring.fields import DECISIONS, MODE_FULL, MODE_RULES, MODE_SHED
from scoring.onnx_io import batch_invariant_score, ensemble_probability
from scoring.reasons import reason_strings
from scoring.registry import LoadedModels
from scoring.thresholds import Thresholds

F64 = npt.NDArray[np.float64]

TOP_FEATURES = 2

LOG = logging.getLogger(__name__)


_DEFAULTS = ScoringSettings()
"""The defaults live in the settings model (``scoring`` section), nowhere else."""


@dataclass(frozen=True)
class ScoringPolicy:
    """Knobs of the degraded modes (from ``scoring`` settings)."""

    latency_budget_ms: int = _DEFAULTS.latency_budget_ms
    recover_ratio: float = _DEFAULTS.recover_ratio
    fast_models: tuple[str, ...] = _DEFAULTS.fast_models
    breaker_failures: int = _DEFAULTS.breaker_failures
    breaker_cooldown_ms: int = _DEFAULTS.breaker_cooldown_ms
    fallback_step_up: float = _DEFAULTS.fallback_step_up
    fallback_block: float = _DEFAULTS.fallback_block

    @classmethod
    def from_settings(cls, scoring: ScoringSettings) -> ScoringPolicy:
        """The policy of the ``scoring`` settings section."""
        return cls(
            latency_budget_ms=scoring.latency_budget_ms,
            recover_ratio=scoring.recover_ratio,
            fast_models=scoring.fast_models,
            breaker_failures=scoring.breaker_failures,
            breaker_cooldown_ms=scoring.breaker_cooldown_ms,
            fallback_step_up=scoring.fallback_step_up,
            fallback_block=scoring.fallback_block,
        )


@dataclass
class BatchResult:
    """Per-row outputs of one batch, plus what happened to the batch as a whole."""

    scores: dict[str, F64]
    probability: F64
    decision: npt.NDArray[np.object_]
    reasons: npt.NDArray[np.object_]
    """One joined reason-code string per row (:func:`scoring.reasons.reason_strings`)."""
    mode: str
    failed_models: tuple[str, ...] = ()
    """Models that raised or returned NaN on this batch."""
    open_circuits: tuple[str, ...] = ()
    """Models skipped because their circuit breaker is open after repeated failures."""

    @property
    def degraded(self) -> bool:
        """Whether the batch was decided without the full ensemble."""
        return self.mode != MODE_FULL


@dataclass
class _Breaker:
    consecutive: int = 0
    open_until_ms: float = 0.0


def failure_cause(exc: BaseException | None, values: F64 | None, rows: int) -> str:
    """Why a model's batch failed, for the log: the exception, or what was wrong with its output.

    >>> failure_cause(ValueError("bad input"), None, 3)
    'ValueError: bad input'
    >>> failure_cause(None, np.array([0.1, np.nan]), 2)
    'returned 1 non-finite score(s) of 2'
    """
    if exc is not None:
        return f"{type(exc).__name__}: {exc}"
    if values is None:
        return "returned nothing"
    if values.shape != (rows,):
        return f"returned shape {values.shape}, expected ({rows},)"
    return f"returned {int((~np.isfinite(values)).sum())} non-finite score(s) of {rows}"


@dataclass
class Scorer:
    """Scores batches with the champion models under the degraded-mode policy."""

    models: LoadedModels
    policy: ScoringPolicy
    clock_ms: Callable[[], float] = field(default=lambda: time.time() * 1000.0)
    shedding: bool = False
    breakers: dict[str, _Breaker] = field(default_factory=dict)
    explainer: LinearExplainer | None = None
    _ensemble_failing: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = [m for m in self.policy.fast_models if m not in stacking.LEARNED]
        if unknown:
            raise ConfigError(
                f"scoring.fast_models: {unknown} are not models of the registry; "
                f"choose from {list(stacking.LEARNED)}"
            )

    @property
    def fallback(self) -> Thresholds:
        """Thresholds on the rules' score used when the models cannot decide."""
        return Thresholds(step_up=self.policy.fallback_step_up, block=self.policy.fallback_block)

    def update_shedding(self, lag_ms: float) -> bool:
        """Enter shedding above the budget, leave it below ``recover_ratio`` x budget."""
        budget = self.policy.latency_budget_ms
        if self.shedding and lag_ms < budget * self.policy.recover_ratio:
            self.shedding = False
        elif not self.shedding and lag_ms > budget:
            self.shedding = True
        return self.shedding

    def score(self, features: F64, lag_ms: float, replay_mode: str | None = None) -> BatchResult:
        """Score rows of full feature-set vectors (``PAYMENT_FEATURES`` order).

        ``replay_mode`` (``full`` or ``shed``) scores the rows as they were scored the first
        time (:mod:`scoring.replay`) instead of by their lag; it leaves the shedding state alone.
        """
        if replay_mode is None:
            shedding = self.update_shedding(lag_ms)
        elif replay_mode in (MODE_FULL, MODE_SHED):
            shedding = replay_mode == MODE_SHED
        else:
            raise ValueError(
                f"replay_mode: expected {MODE_FULL!r} or {MODE_SHED!r}, found {replay_mode!r}"
            )
        x = self.models.model_inputs(features)
        rules = self.models.rules.score(x)
        fired = self.models.rules.fired(x)
        scores: dict[str, F64] = {
            stacking.RULES: rules,
            **stacking.derived_scores(x, self.models.inputs),
        }
        wanted = self.policy.fast_models if shedding else stacking.LEARNED
        failed, open_circuits = [], []
        for name in stacking.LEARNED:
            if name not in wanted or not self._closed(name):
                scores[name] = np.full(len(x), np.nan)
                if name in wanted:
                    open_circuits.append(name)
                continue
            result = self._run(name, x)
            if result is None:
                failed.append(name)
                scores[name] = np.full(len(x), np.nan)
            else:
                scores[name] = result
        full = not shedding and all(np.isfinite(scores[n]).all() for n in stacking.LEARNED)
        if full:
            probability = self._ensemble(scores)
            if probability is None:
                failed.append(stacking.ENSEMBLE)
                full = False
        if full and probability is not None:
            mode, decision = MODE_FULL, self.models.thresholds.decide(probability)
        elif shedding and not failed and not open_circuits:
            mode = MODE_SHED
            probability = self._fast_probability(scores, rules)
            decision = self._fast_decision(scores, rules)
        else:
            mode, probability = MODE_RULES, rules
            decision = self.fallback.decide(rules)
        reasons = self._reasons(x, fired, mode, tuple(failed), tuple(open_circuits))
        return BatchResult(
            scores, probability, decision, reasons, mode, tuple(failed), tuple(open_circuits)
        )

    def _closed(self, name: str) -> bool:
        breaker = self.breakers.get(name)
        return breaker is None or self.clock_ms() >= breaker.open_until_ms

    def _run(self, name: str, x: npt.NDArray[np.float32]) -> F64 | None:
        breaker = self.breakers.setdefault(name, _Breaker())
        error: Exception | None = None
        try:
            values: F64 | None = batch_invariant_score(name, self.models.sessions[name], x)
        except Exception as exc:  # any model failure must degrade the decision, never stop the job
            values, error = None, exc
        if values is None or values.shape != (len(x),) or not np.isfinite(values).all():
            breaker.consecutive += 1
            if breaker.consecutive >= self.policy.breaker_failures:
                breaker.open_until_ms = self.clock_ms() + self.policy.breaker_cooldown_ms
                breaker.consecutive = 0
                LOG.warning(
                    "model %s (registry %s) failed %d batches in a row, circuit open for %d ms; "
                    "last failure: %s",
                    name,
                    self.models.version,
                    self.policy.breaker_failures,
                    self.policy.breaker_cooldown_ms,
                    failure_cause(error, values, len(x)),
                    exc_info=error,
                )
            return None
        breaker.consecutive = 0
        return values

    def _ensemble(self, scores: Mapping[str, F64]) -> F64 | None:
        rows = len(scores[stacking.RULES])
        error: Exception | None = None
        try:
            p: F64 | None = ensemble_probability(self.models.sessions[stacking.ENSEMBLE], scores)
        except Exception as exc:  # as in _run: degrade, never stop
            p, error = None, exc
        if p is not None and p.shape == (rows,) and np.isfinite(p).all():
            self._ensemble_failing = False
            return p
        if not self._ensemble_failing:  # once per run of failures: the ensemble has no breaker
            self._ensemble_failing = True
            LOG.warning(
                "ensemble (registry %s) failed, batches decided by the rules until it recovers: %s",
                self.models.version,
                failure_cause(error, p, rows),
                exc_info=error,
            )
        return None

    def _fast_probability(self, scores: Mapping[str, F64], rules: F64) -> F64:
        fast = [scores[m] for m in self.policy.fast_models if np.isfinite(scores[m]).all()]
        return np.maximum.reduce(fast) if fast else rules

    def _fast_decision(self, scores: Mapping[str, F64], rules: F64) -> npt.NDArray[np.object_]:
        """The strictest of each fast model's decision, on that model's own thresholds, and the
        rules' fallback: a fast model's probability is not on the ensemble's scale."""
        decision = self.fallback.decide(rules)
        for name in self.policy.fast_models:
            if np.isfinite(scores[name]).all():
                own = self.models.thresholds_of(name).decide(scores[name])
                decision = _stricter(own, decision)
        return decision

    def _reasons(
        self,
        x: npt.NDArray[np.float32],
        fired: npt.NDArray[np.bool_],
        mode: str,
        failed: Sequence[str],
        open_circuits: Sequence[str],
    ) -> npt.NDArray[np.object_]:
        names = [rule.name for rule in self.models.rules.rules]
        explainer = self.explainer
        top = explainer.top_indices(x, TOP_FEATURES) if explainer is not None else None
        extra = (
            [
                f"degraded:{mode}",
                *(f"model_failed:{m}" for m in failed),
                *(f"circuit_open:{m}" for m in open_circuits),
            ]
            if mode != MODE_FULL
            else []
        )
        features = explainer.names if explainer is not None else ()
        return reason_strings(fired, names, top, features, extra)


def _stricter(a: npt.NDArray[np.object_], b: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Row-wise the more severe of two decision arrays (a decision's code is its severity)."""
    return np.where(codes(a, DECISIONS) >= codes(b, DECISIONS), a, b)


def scores_row(result: BatchResult, i: int) -> dict[str, Any]:
    """Model name -> score of row ``i`` (NaN becomes None, for JSON)."""
    return {
        name: (None if not np.isfinite(values[i]) else float(values[i]))
        for name, values in result.scores.items()
    }
