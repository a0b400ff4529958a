"""The rule model: readable thresholds from the config, scored by the same code in training and
in the streaming job.

Each rule fires when ``feature op threshold`` holds and adds its ``weight`` as risk; the fired rules
combine as a noisy OR, ``score = 1 - prod(1 - weight)``, so the score is in [0, 1] and one strong
rule is enough to raise it. This module is pure numpy (no scikit-learn, no pyflink): the scoring UDF
imports :class:`RuleModel` and calls :meth:`RuleModel.score` on its feature vectors, and the fired
rules' names are the reason codes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.config import RuleSettings
from core.errors import ConfigError

Matrix = npt.NDArray[np.floating[Any]]
OPERATORS: Mapping[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Rule:
    """One rule: ``name`` fires when ``feature op threshold``; ``weight`` is its risk."""

    name: str
    feature: str
    op: str
    threshold: float
    weight: float

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ConfigError(
                f"training.rules.{self.name}.op: expected one of {sorted(OPERATORS)}, "
                f"found {self.op!r}"
            )
        if not 0.0 < self.weight < 1.0:
            raise ConfigError(
                f"training.rules.{self.name}.weight: expected a value in (0, 1), "
                f"found {self.weight}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The rule as the model card shows it."""
        return {
            "name": self.name,
            "feature": self.feature,
            "op": self.op,
            "threshold": self.threshold,
            "weight": self.weight,
        }

    def text(self) -> str:
        """The rule as a person reads it, e.g. ``amount >= 220.0 (weight 0.6)``."""
        return f"{self.feature} {self.op} {self.threshold} (weight {self.weight})"


@dataclass(frozen=True)
class RuleModel:
    """Rules over a known, ordered list of input features."""

    rules: tuple[Rule, ...]
    inputs: tuple[str, ...]

    def __post_init__(self) -> None:
        for rule in self.rules:
            if rule.feature not in self.inputs:
                raise ConfigError(
                    f"training.rules.{rule.name}.feature: expected a feature-set name, "
                    f"found {rule.feature!r}"
                )

    @classmethod
    def from_settings(
        cls, rules: Mapping[str, RuleSettings], inputs: Sequence[str], drop_unknown: bool = False
    ) -> RuleModel:
        """Rules from the ``training.rules`` settings; ``drop_unknown`` skips rules whose feature
        is not among ``inputs`` (a model restricted to a subset, e.g. the Handbook's 15)."""
        built = tuple(
            Rule(name, r.feature, r.op, r.threshold, r.weight)
            for name, r in rules.items()
            if not drop_unknown or r.feature in inputs
        )
        return cls(built, tuple(inputs))

    @classmethod
    def from_card(cls, card: Mapping[str, Any], inputs: Sequence[str]) -> RuleModel:
        """Rules as recorded in a model card (so scoring uses exactly the trained rules)."""
        fields = ("name", "feature", "op", "threshold", "weight")
        return cls(tuple(Rule(**{k: r[k] for k in fields}) for r in card["rules"]), tuple(inputs))

    def fired(self, x: Matrix) -> npt.NDArray[np.bool_]:
        """Which rules fire, one column per rule, for rows of ``x`` (columns = ``inputs``)."""
        out = np.zeros((x.shape[0], len(self.rules)), dtype=np.bool_)
        for j, rule in enumerate(self.rules):
            column = x[:, self.inputs.index(rule.feature)]
            out[:, j] = OPERATORS[rule.op](column, rule.threshold)
        return out

    def score(self, x: Matrix) -> npt.NDArray[np.float64]:
        """Noisy-OR risk of the fired rules, in [0, 1].

        >>> model = RuleModel((Rule("big", "amount", ">=", 220.0, 0.6),), ("amount",))
        >>> model.score(np.array([[10.0], [300.0]])).tolist()
        [0.0, 0.6]
        """
        weights = np.array([r.weight for r in self.rules], dtype=np.float64)
        keep = np.where(self.fired(x), 1.0 - weights, 1.0)
        return np.asarray(1.0 - keep.prod(axis=1), dtype=np.float64)

    def reasons(self, row: Sequence[float]) -> list[str]:
        """Names of the rules that fire for one feature vector (the decision's reason codes)."""
        fired = self.fired(np.asarray([row], dtype=np.float64))[0]
        return [rule.name for rule, hit in zip(self.rules, fired, strict=True) if hit]
