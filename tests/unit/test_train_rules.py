"""The rule model: readable config, noisy-OR score, reasons, refusals naming the key."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import RuleSettings, load_settings
from core.errors import ConfigError
from schemas.feature_set import PAYMENT_FEATURES
from scoring.rules import RuleModel


def test_default_rules_use_feature_set_names() -> None:
    rules = RuleModel.from_settings(
        load_settings(environ={}).training.rules, PAYMENT_FEATURES.names
    )
    assert len(rules.rules) >= 5
    assert all(r.feature in PAYMENT_FEATURES.names for r in rules.rules)


def _rule(feature: str, threshold: float, weight: float) -> RuleSettings:
    return RuleSettings(feature=feature, op=">=", threshold=threshold, weight=weight)


def test_score_is_a_noisy_or_of_fired_rules() -> None:
    config = {
        "big": _rule("amount", 220.0, 0.6),
        "night": _rule("is_night", 1.0, 0.5),
    }
    model = RuleModel.from_settings(config, ("amount", "is_night"))
    x = np.array([[10.0, 0.0], [300.0, 0.0], [300.0, 1.0]])
    assert model.score(x).tolist() == pytest.approx([0.0, 0.6, 0.8])
    assert model.reasons([300.0, 1.0]) == ["big", "night"]


def test_unknown_feature_and_bad_operator_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"training.rules.typo.feature"):
        RuleModel.from_settings({"typo": _rule("amout", 1.0, 0.5)}, ("amount",))
    bad_op = {"training": {"rules": {"eq": {"feature": "amount", "op": "=="}}}}
    with pytest.raises(ConfigError, match=r"training\.rules\.eq\.op: expected one of >=, >, <=, <"):
        load_settings(overrides=bad_op, environ={})
    subset = RuleModel.from_settings(
        {"x": _rule("is_night", 1.0, 0.5)},
        ("amount",),
        drop_unknown=True,
    )
    assert subset.rules == ()
