"""The feature set contract: derived names, validation at definition, golden JSON, stable hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle

import pytest

from core.errors import FeatureSpecError
from schemas.feature_set import (
    AGGREGATION_RULES,
    MISSING,
    MS_PER_DAY,
    PAYMENT_FEATURES,
    Aggregation,
    Dtype,
    Feature,
    FeatureSet,
    Key,
    PaymentFeatureValues,
    Window,
)

HANDBOOK = (
    "amount",
    "is_weekend",
    "is_night",
    *(f"tx_count_by_card_{n}d" for n in (1, 7, 30)),
    *(f"amount_mean_by_card_{n}d" for n in (1, 7, 30)),
    *(f"tx_count_by_terminal_{n}d_delay7d" for n in (1, 7, 30)),
    *(f"fraud_rate_by_terminal_{n}d_delay7d" for n in (1, 7, 30)),
)


def test_names_are_derived_from_key_and_window() -> None:
    assert Feature("amount_sum", Dtype.FLOAT, Key.CARD, "x", Window(3_600_000)).name == (
        "amount_sum_by_card_1h"
    )
    delayed = Window(7 * MS_PER_DAY, 7 * MS_PER_DAY)
    assert Feature("fraud_rate", Dtype.FLOAT, Key.TERMINAL, "x", delayed).name == (
        "fraud_rate_by_terminal_7d_delay7d"
    )
    assert Feature("amount", Dtype.FLOAT, Key.EVENT, "x").name == "amount"


def test_contains_the_fifteen_handbook_features_and_the_extras() -> None:
    names = PAYMENT_FEATURES.names
    assert len(HANDBOOK) == 15
    assert set(HANDBOOK) <= set(names)
    for extra in (
        "amount_sum_by_card_1h",
        "amount_mean_by_card_30d",
        "amount_ratio_by_card_30d",
        "seconds_since_prev_by_card",
        "km_from_prev_cp_by_card",
        "kmh_from_prev_cp_by_card",
        "km_from_usual_by_card_30d",
        "is_new_mcc_by_card",
        "is_new_device_by_card",
        "hour_of_day",
        "distinct_cards_by_device_1d",
        "fraud_seen_by_device",
    ):
        assert extra in names


@pytest.mark.parametrize(
    "build",
    [
        lambda: Window(0),
        lambda: Window(10, -1),
        lambda: Feature("Bad-Name", Dtype.FLOAT, Key.CARD, "x"),
        lambda: Feature("amount", Dtype.FLOAT, Key.CARD, "two\nlines"),
        lambda: Feature("amount", Dtype.FLOAT, Key.EVENT, "x", Window(10)),
        lambda: Feature("amount_median", Dtype.FLOAT, Key.CARD, "x", Window(10)),
        lambda: Feature("fraud_rate", Dtype.FLOAT, Key.CARD, "x", Window(10)),
        lambda: Feature("tx_count", Dtype.INT, Key.CARD, "x"),
        lambda: Feature("is_new_mcc", Dtype.BOOL, Key.CARD, "x", Window(10)),
        lambda: Feature("amount_sum", Dtype.FLOAT, Key.CARD, "x", Window(10, 5)),
        lambda: FeatureSet("fs", 1, ()),
        lambda: FeatureSet("fs", 0, (Feature("a", Dtype.FLOAT, Key.EVENT, "x"),)),
        lambda: FeatureSet(
            "fs",
            1,
            (Feature("a", Dtype.FLOAT, Key.EVENT, "x"), Feature("a", Dtype.INT, Key.EVENT, "y")),
        ),
    ],
)
def test_invalid_definitions_raise(build: object) -> None:
    with pytest.raises(FeatureSpecError):
        build()  # type: ignore[operator]


def test_golden_json_matches_the_definition() -> None:
    """Regenerate with ``python -m schemas.feature_set`` after a deliberate change."""
    stored = PAYMENT_FEATURES.json_path.read_text(encoding="utf-8")
    assert stored == PAYMENT_FEATURES.to_json()
    document = json.loads(stored)
    assert document["spec_hash"] == PAYMENT_FEATURES.spec_hash()
    assert [f["name"] for f in document["features"]] == list(PAYMENT_FEATURES.names)


def test_hash_is_stable_and_sensitive_to_every_definition() -> None:
    name, version, features = (
        PAYMENT_FEATURES.name,
        PAYMENT_FEATURES.version,
        PAYMENT_FEATURES.features,
    )
    rebuilt = FeatureSet(name, version, features)
    assert rebuilt.spec_hash() == PAYMENT_FEATURES.spec_hash()
    changed_meaning = dataclasses.replace(features[0], meaning="other")
    changed = FeatureSet(name, version, (changed_meaning, *features[1:]))
    assert changed.spec_hash() != PAYMENT_FEATURES.spec_hash()
    bumped = FeatureSet(name, version + 1, features)
    assert bumped.spec_hash() != PAYMENT_FEATURES.spec_hash()


def test_every_keyed_feature_carries_a_known_aggregation_and_its_window() -> None:
    for feature in PAYMENT_FEATURES.features:
        aggregation = feature.aggregation
        assert aggregation is not None, feature.name
        rule = AGGREGATION_RULES[aggregation]
        assert feature.key in rule.keys
        assert (feature.window is not None) == rule.windowed
    assert set(AGGREGATION_RULES) == set(Aggregation)
    delayed = Window(7 * MS_PER_DAY, 7 * MS_PER_DAY)
    terminal = Feature(Aggregation.TX_COUNT, Dtype.INT, Key.TERMINAL, "x", delayed)
    assert terminal.aggregation is Aggregation.TX_COUNT and terminal.base == "tx_count"
    column = Feature("v17", Dtype.FLOAT, Key.EVENT, "a training table's column")
    assert column.aggregation is None and column.name == "v17"
    named_like_a_count = Feature("tx_count", Dtype.FLOAT, Key.EVENT, "a column called tx_count")
    assert named_like_a_count.aggregation is None


def test_the_values_struct_is_set_by_name_in_feature_set_order() -> None:
    values = PaymentFeatureValues()
    assert values.vector() == (MISSING,) * len(PAYMENT_FEATURES.names)
    values.amount_sum_by_card_1h = 12.5  # type: ignore[attr-defined]
    assert values.as_dict()["amount_sum_by_card_1h"] == 12.5
    assert list(values.as_dict()) == list(PAYMENT_FEATURES.names)
    position = PAYMENT_FEATURES.names.index("amount_sum_by_card_1h")
    assert values.vector()[position] == 12.5
    with pytest.raises(AttributeError):
        values.amount_sum_by_card_1y = 1.0  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(values)) == values


def test_every_stored_version_is_a_consistent_rendering() -> None:
    """Earlier versions' files stay as the record of what their models computed: each file's
    stored hash is the hash of its body, and the current version's file is among them."""
    files = sorted(
        PAYMENT_FEATURES.json_path.parent.glob(f"feature_set.{PAYMENT_FEATURES.name}.v*.json")
    )
    assert PAYMENT_FEATURES.json_path in files
    for path in files:
        document = json.loads(path.read_text(encoding="utf-8"))
        body = {k: v for k, v in document.items() if k != "spec_hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        assert hashlib.sha256(canonical.encode("utf-8")).hexdigest() == document["spec_hash"], path
        assert path.name == f"feature_set.{document['name']}.v{document['version']}.json"
