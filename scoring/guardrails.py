"""Guardrails on the live decisions: training ranges, decision shares and a safe mode.

The model card says what the champion was trained on: each input's training range (0.1% and
99.9% quantiles, ``feature_ranges``) and the decision shares it expects on unseen traffic
(``expected_decisions``). The decision step calls :meth:`Guardrails.observe` once per payment:

- **out of range**: the inputs of the payment outside their training range (a field of the
  decision, ``out_of_range_features``);
- **windows**: tumbling windows of ``window_ms`` of event time (the clock is the latest event
  time seen, so a replay of the same records in the same order gives the same windows) count the
  model's block and step-up decisions and the payments with any input out of range; a closed
  window's shares are what the gauges show;
- **safe mode**: a window of at least ``min_rows`` decisions is *judged*. When the model's block
  share exceeds ``trip_multiple`` x the expected block share in consecutive judged windows
  covering ``trip_ms``, the safe mode starts: every block becomes a step-up, marked degraded with
  the reason code :data:`SAFE_MODE_REASON`. It ends when the model's block share (measured before
  the safe mode, so it does not clear itself) stays at or below ``recover_multiple`` x expected
  for ``trip_ms``; windows with too few rows change nothing (hysteresis, no flapping);
- **alerts**: entering and leaving the safe mode, and a share of out-of-range payments above
  ``out_of_range_share`` for ``trip_ms``, each produce one :class:`schemas.records.GuardrailAlert`.

Pure Python: no pyflink, numpy or onnxruntime (the decision step runs in the TaskManager's
embedded interpreter, where importing onnxruntime hangs an operator's start). The state is plain
memory of one parallel instance: a restart starts with empty windows and the safe mode off.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from core.config import GuardrailSettings
from core.errors import RegistryError
from schemas.records import SCHEMA_VERSION, DecisionClass, GuardrailAlert, GuardrailAlertKind
from scoring.fields import BLOCK, CARD_FILE, STEP_UP

SAFE_MODE_REASON = "guardrail:safe_mode"
"""Reason code of a decision the safe mode turned from block into step-up."""
SAFE_MODE_ON: GuardrailAlertKind = "safe_mode_on"
SAFE_MODE_OFF: GuardrailAlertKind = "safe_mode_off"
OUT_OF_RANGE: GuardrailAlertKind = "out_of_range"
TOP_ALERT_FEATURES = 10
"""Out-of-range features named in an alert (the most frequent of the window)."""
ALERT_NAMESPACE = uuid.UUID("0b7f5a8e-4f0e-4c1d-9a39-6a1c9e0f2d41")
_DEFAULTS = GuardrailSettings()


@dataclass(frozen=True)
class GuardrailPolicy:
    """The knobs of the guardrails (``guardrails`` settings)."""

    window_ms: int = _DEFAULTS.window_ms
    min_rows: int = _DEFAULTS.min_rows
    trip_multiple: float = _DEFAULTS.trip_multiple
    trip_ms: int = _DEFAULTS.trip_ms
    recover_multiple: float = _DEFAULTS.recover_multiple
    out_of_range_share: float = _DEFAULTS.out_of_range_share

    @classmethod
    def from_settings(cls, s: GuardrailSettings) -> GuardrailPolicy:
        """The policy of the ``guardrails`` settings section."""
        return cls(
            window_ms=s.window_ms,
            min_rows=s.min_rows,
            trip_multiple=s.trip_multiple,
            trip_ms=s.trip_ms,
            recover_multiple=s.recover_multiple,
            out_of_range_share=s.out_of_range_share,
        )


@dataclass(frozen=True)
class ModelLimits:
    """What a model card says about the world its model was trained on."""

    model_version: str
    ranges: tuple[tuple[str, float, float], ...]
    """(input, low, high): the training range of each input (0.1% and 99.9% quantiles)."""
    expected_block: float
    """Block share the card expects (test period; the out-of-fold share if that is 0)."""
    expected_step_up: float
    rules_never_fired: tuple[str, ...] = ()

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> ModelLimits:
        """Limits of a model card; a card without the guardrail fields gives empty limits (no
        ranges, expected shares 0: nothing is judged)."""
        features = card.get("feature_ranges", {}).get("features", {})
        order = [n for n in card.get("inputs", features) if n in features]
        ranges = tuple((n, float(features[n]["low"]), float(features[n]["high"])) for n in order)
        expected = card.get("expected_decisions", {})
        fallback = expected.get("train_out_of_fold", {})

        def share(name: str) -> float:
            value = float(expected.get(name) or 0.0)
            return value if value > 0.0 else float(fallback.get(name) or 0.0)

        return cls(
            model_version=str(card["version"]),
            ranges=ranges,
            expected_block=share(BLOCK),
            expected_step_up=share(STEP_UP),
            rules_never_fired=tuple(card.get("rules_never_fired", ())),
        )


def read_limits(registry: Path, version: str) -> ModelLimits:
    """The limits in the model card of ``version`` (a JSON read: no model is loaded)."""
    path = registry / version / CARD_FILE
    try:
        card = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"guardrails: cannot read model card {path}: {exc}") from exc
    return ModelLimits.from_card(card)


def out_of_range(
    features: Mapping[str, float | None], ranges: Sequence[tuple[str, float, float]]
) -> list[str]:
    """The inputs outside ``[low, high]``; a missing or non-finite value is outside too (the
    model never saw one).

    >>> out_of_range({"amount": 900.0, "hour": 3.0}, [("amount", 1.0, 400.0), ("hour", 0, 23)])
    ['amount']
    """
    out = []
    for name, low, high in ranges:
        value = features.get(name)
        if value is None or not (low <= value <= high):  # NaN fails both comparisons
            out.append(name)
    return out


@dataclass
class Window:
    """Counts of one tumbling window of event time."""

    start_ms: int
    rows: int = 0
    blocks: int = 0
    step_ups: int = 0
    out_of_range_rows: int = 0
    features: Counter[str] = field(default_factory=Counter)

    def add(self, decision: str, outside: Sequence[str]) -> None:
        """Count one decision (the model's, before the safe mode) and its out-of-range inputs."""
        self.rows += 1
        self.blocks += decision == BLOCK
        self.step_ups += decision == STEP_UP
        if outside:
            self.out_of_range_rows += 1
            self.features.update(outside)

    def share(self, count: int) -> float:
        """``count`` as a share of the window's rows (0 when empty)."""
        return count / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class Verdict:
    """What the guardrails make of one decision."""

    decision: DecisionClass
    """The decision to emit (a block becomes a step-up in safe mode)."""
    safe_mode: bool
    """Whether the safe mode changed this decision."""
    out_of_range: list[str]
    alerts: tuple[GuardrailAlert, ...] = ()
    """Alerts raised by the window this decision closed."""


@dataclass
class Guardrails:
    """The guardrail state of one parallel instance of the decision step."""

    policy: GuardrailPolicy
    load: Callable[[str], ModelLimits]
    """Model version -> its limits (read from the registry when a new version shows up)."""
    source: str
    subtask: int = 0
    limits: ModelLimits | None = None
    window: Window | None = None
    last: Window | None = None
    """The last closed window (what the gauges show)."""
    safe_mode: bool = False
    hot_ms: int = 0
    calm_ms: int = 0
    range_hot_ms: int = 0
    range_alerted: bool = False
    safe_mode_decisions: int = 0
    """Blocks turned into step-ups so far."""

    def observe(
        self,
        event_time_ms: int,
        model_version: str,
        decision: str,
        features: Mapping[str, float | None],
        full: bool = True,
    ) -> Verdict:
        """Account for one decision of the model and return the decision to emit.

        ``full``: the champion decided it in full mode. A degraded decision (shed: fast models
        on their own thresholds; rules only) is not the champion's, so the windows do not count
        it: a shed stretch, e.g. a warm start's catch-up, neither trips nor clears the safe mode
        (it did trip it, and at the demo's density no judged window ever cleared it). The safe
        mode still turns its blocks into step-ups."""
        limits = self.limits
        if limits is None or limits.model_version != model_version:
            limits = self._switch(self.load(model_version))
        alerts = self._advance(event_time_ms, limits)
        outside = out_of_range(features, limits.ranges)
        window = self.window
        if window is not None and full:
            window.add(decision, outside)
        if self.safe_mode and decision == BLOCK:
            self.safe_mode_decisions += 1
            return Verdict("step_up", True, outside, alerts)
        return Verdict(cast(DecisionClass, decision), False, outside, alerts)

    @property
    def gauges(self) -> dict[str, float]:
        """Shares of the last closed window and the safe-mode flag (0 before any window)."""
        last = self.last or Window(0)
        return {
            "block": last.share(last.blocks),
            "step_up": last.share(last.step_ups),
            "out_of_range": last.share(last.out_of_range_rows),
            "rows": float(last.rows),
            "safe_mode": float(self.safe_mode),
        }

    def _switch(self, limits: ModelLimits) -> ModelLimits:
        """A new model: its own expectations, fresh windows, safe mode off."""
        self.limits = limits
        self.window = self.last = None
        self.safe_mode = self.range_alerted = False
        self.hot_ms = self.calm_ms = self.range_hot_ms = 0
        return limits

    def _advance(self, event_time_ms: int, limits: ModelLimits) -> tuple[GuardrailAlert, ...]:
        """Move the window clock to ``event_time_ms`` (never back); judge the window it closes."""
        size = self.policy.window_ms
        start = event_time_ms - event_time_ms % size
        window = self.window
        if window is None:
            self.window = Window(start)
            return ()
        if start <= window.start_ms:
            return ()  # same window, or a late payment: it counts in the open window
        self.last = window
        self.window = Window(start)
        return self._judge(window, limits)

    def _judge(self, window: Window, limits: ModelLimits) -> tuple[GuardrailAlert, ...]:
        p = self.policy
        if window.rows < p.min_rows:
            return ()
        alerts = []
        size = p.window_ms
        block = window.share(window.blocks)
        if limits.expected_block > 0.0:
            if not self.safe_mode:
                hot = block > p.trip_multiple * limits.expected_block
                self.hot_ms = self.hot_ms + size if hot else 0
                if hot and self.hot_ms >= p.trip_ms:
                    self.safe_mode, self.calm_ms = True, 0
                    alerts.append(self._alert(SAFE_MODE_ON, window, limits, self.hot_ms))
            else:
                calm = block <= p.recover_multiple * limits.expected_block
                self.calm_ms = self.calm_ms + size if calm else 0
                if calm and self.calm_ms >= p.trip_ms:
                    self.safe_mode, self.hot_ms = False, 0
                    alerts.append(self._alert(SAFE_MODE_OFF, window, limits, self.calm_ms))
        if limits.ranges:
            wide = window.share(window.out_of_range_rows) > p.out_of_range_share
            self.range_hot_ms = self.range_hot_ms + size if wide else 0
            if not wide:
                self.range_alerted = False
            elif self.range_hot_ms >= p.trip_ms and not self.range_alerted:
                self.range_alerted = True
                alerts.append(self._alert(OUT_OF_RANGE, window, limits, self.range_hot_ms))
        return tuple(alerts)

    def _alert(
        self, kind: GuardrailAlertKind, window: Window, limits: ModelLimits, held_ms: int
    ) -> GuardrailAlert:
        p = self.policy
        end = window.start_ms + p.window_ms
        ident = str(
            uuid.uuid5(
                ALERT_NAMESPACE, f"{limits.model_version}|{self.subtask}|{kind}|{window.start_ms}"
            )
        )
        top = dict(window.features.most_common(TOP_ALERT_FEATURES))
        return GuardrailAlert(
            event_id=ident,
            event_time=end,
            schema_version=SCHEMA_VERSION,
            source=self.source,
            correlation_id=ident,
            kind=kind,
            safe_mode=self.safe_mode,
            model_version=limits.model_version,
            subtask=self.subtask,
            window_start=window.start_ms,
            window_end=end,
            rows=window.rows,
            block_share=window.share(window.blocks),
            step_up_share=window.share(window.step_ups),
            out_of_range_share=window.share(window.out_of_range_rows),
            expected_block_share=min(limits.expected_block, 1.0),
            expected_step_up_share=min(limits.expected_step_up, 1.0),
            trip_multiple=p.trip_multiple,
            held_ms=held_ms,
            out_of_range_features=top,
            message=_message(kind, window, limits, held_ms, p),
        )


def _message(
    kind: GuardrailAlertKind, window: Window, limits: ModelLimits, held_ms: int, p: GuardrailPolicy
) -> str:
    block, outside = window.share(window.blocks), window.share(window.out_of_range_rows)
    minutes = f"{held_ms / 60_000:.3g} min of event time"
    expected = f"{limits.expected_block:.3%}"
    if kind == SAFE_MODE_ON:
        return (
            f"model {limits.model_version} blocked {block:.2%} of payments for {minutes}, more "
            f"than {p.trip_multiple:g} x the {expected} its card expects: safe mode on (blocks "
            f"become step-ups, marked degraded {SAFE_MODE_REASON})"
        )
    if kind == SAFE_MODE_OFF:
        return (
            f"model {limits.model_version} blocked {block:.2%} of payments, at most "
            f"{p.recover_multiple:g} x the expected {expected}, for {minutes}: safe mode off"
        )
    names = ", ".join(n for n, _ in window.features.most_common(TOP_ALERT_FEATURES)) or "none"
    return (
        f"{outside:.1%} of payments had a feature outside model {limits.model_version}'s "
        f"training range for {minutes} (above {p.out_of_range_share:.0%}); most often: {names}"
    )


def share_ppm(share: float) -> int:
    """A share as integer parts per million (the gauges are Java longs).

    >>> share_ppm(0.0025), share_ppm(float("nan"))
    (2500, 0)
    """
    return round(share * 1_000_000) if math.isfinite(share) else 0
