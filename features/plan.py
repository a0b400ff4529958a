"""What each stage computes, read from the feature spec once at import.

A stage module asks for its key's features grouped by aggregation (:func:`stage_features`); a
feature whose aggregation the stage does not implement raises :class:`~core.errors.FeatureSpecError`
at import, so a spec the code cannot compute never reaches a job. Windows come from the spec,
never from constants in the stage modules.
"""

from __future__ import annotations

from collections.abc import Collection

from core.errors import FeatureSpecError
from schemas.feature_set import PAYMENT_FEATURES, Aggregation, Feature, FeatureSet, Key

StageFeatures = dict[Aggregation, tuple[Feature, ...]]


def stage_features(
    key: Key, handled: Collection[Aggregation], feature_set: FeatureSet = PAYMENT_FEATURES
) -> StageFeatures:
    """The features of ``key`` in ``feature_set``, grouped by aggregation (spec order kept)."""
    grouped: StageFeatures = {}
    for feature in feature_set.features_of(key):
        aggregation = feature.aggregation
        if aggregation is None or aggregation not in handled:
            raise FeatureSpecError(
                f"feature {feature.name}: the {key.value} stage computes "
                f"{sorted(a.value for a in handled)}, found {feature.base!r}"
            )
        grouped[aggregation] = (*grouped.get(aggregation, ()), feature)
    return grouped


def single(grouped: StageFeatures, aggregation: Aggregation) -> str | None:
    """The output name of the feature of a window-less aggregation, or ``None`` if the spec has
    none (names are unique, so a key has at most one)."""
    features = grouped.get(aggregation, ())
    return features[0].name if features else None


def windowed(grouped: StageFeatures, aggregation: Aggregation) -> dict[tuple[int, int], str]:
    """(window length ms, delay ms) -> output name, for the features of a windowed aggregation."""
    out: dict[tuple[int, int], str] = {}
    for feature in grouped.get(aggregation, ()):
        if feature.window is None:  # excluded by the spec's aggregation rules
            raise FeatureSpecError(f"feature {feature.name}: expected a window")
        out[(feature.window.length_ms, feature.window.delay_ms)] = feature.name
    return out
