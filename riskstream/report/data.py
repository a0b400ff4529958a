"""A run's topics and the model registry as pandas frames, for the report's figures.

Each ``*_frame`` function turns decoded records (dicts, as the topics' JSON contracts have them)
into one frame with fixed columns, so the figure builders can be tested on synthetic frames.
:func:`load_run` reads the topics of ``settings`` to their end (read committed, as consumers
do) and the registry; a source that cannot be read, or that the run did not write, is kept
as an empty frame with the reason in :attr:`RunData.missing`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from core.config import Settings
from core.errors import RegistryError, ServiceError
from riskstream.support.kafka_io import read_to_end
from scoring.registry import CHAMPION, read_card, versions
from udfs.metrics import reason_label

_QUIET = logging.getLogger("riskstream.report.kafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False
METADATA_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 120.0
READ_IDLE_TIMEOUT_S = 30.0
MODEL_PREFIX = "model:"
"""Prediction-log columns of one model's score: ``model:<name>``."""
FEATURE_PREFIX = "feature:"
"""Prediction-log columns of one model input: ``feature:<name>``."""
ENSEMBLE = "ensemble"
"""The prediction log's ``score`` (the decision's score) as a model column."""

DECISION_COLUMNS = (
    "decision_id",
    "transaction_id",
    "transaction_time",
    "received_time",
    "decision",
    "score",
    "degraded",
    "processing_latency_ms",
    "reason_codes",
    "model_version",
)
LABEL_COLUMNS = ("transaction_id", "label", "label_type", "scenario", "event_time")
DEAD_LETTER_COLUMNS = ("record_type", "reason", "reason_label", "field", "topic", "received_time")
ANALYTICS_COLUMNS = (
    "window_kind",
    "window_size_ms",
    "key_kind",
    "key",
    "window_start",
    "window_end",
    "revision",
    "transactions",
    "approve",
    "step_up",
    "block",
    "mean_score",
)
TOPIC_ROLES = {
    "decisions": "decisions",
    "predictions": "predictions",
    "labels": "labels",
    "dead_letters": "dead_letter",
    "analytics": "analytics",
}
"""Source name in :class:`RunData` -> topic role in the settings."""


def decisions_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Decisions (decision.v1), the first of each ``decision_id`` (consumers keep the first)."""
    rows = [{c: r.get(c) for c in DECISION_COLUMNS} for r in records]
    frame = pd.DataFrame(rows, columns=list(DECISION_COLUMNS))
    frame = frame.drop_duplicates("decision_id", keep="first").reset_index(drop=True)
    frame["reason_codes"] = frame["reason_codes"].map(lambda c: list(c) if c else [])
    for column in ("transaction_time", "received_time", "processing_latency_ms"):
        frame[column] = pd.to_numeric(frame[column]).astype("int64")
    frame["score"] = pd.to_numeric(frame["score"]).astype("float64")
    frame["degraded"] = frame["degraded"].astype(bool)
    return frame


def predictions_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Prediction-log records (prediction_log.v1), first per ``decision_id``: ``transaction_id``,
    ``decision_id``, ``received_time`` (the record's event time), ``latency_ms``,
    ``model:<name>`` per model score (``model:ensemble`` = the decision's score) and
    ``feature:<name>`` per model input (NaN = missing)."""
    rows = []
    for r in records:
        row: dict[str, Any] = {
            "decision_id": r.get("decision_id"),
            "transaction_id": r.get("transaction_id"),
            "event_time": r.get("event_time"),
            "latency_ms": r.get("latency_ms"),
            "model_version": r.get("model_version"),
            f"{MODEL_PREFIX}{ENSEMBLE}": r.get("score"),
        }
        for name, value in (r.get("model_scores") or {}).items():
            row[f"{MODEL_PREFIX}{name}"] = value
        for name, value in (r.get("features") or {}).items():
            row[f"{FEATURE_PREFIX}{name}"] = value
        rows.append(row)
    base = ["decision_id", "transaction_id", "event_time", "latency_ms", "model_version"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=[*base, f"{MODEL_PREFIX}{ENSEMBLE}"])
    frame = frame.drop_duplicates("decision_id", keep="first").reset_index(drop=True)
    numeric = [c for c in frame.columns if c.startswith((MODEL_PREFIX, FEATURE_PREFIX))]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce").astype("float64")
    return frame


def labels_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Labels (label.v1), one per transaction: a fraud label wins over a legit one."""
    rows = [{c: r.get(c) for c in LABEL_COLUMNS} for r in records]
    frame = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    frame["is_fraud"] = frame["label"] == "fraud"
    frame = frame.sort_values("is_fraud", ascending=False, kind="stable")
    return frame.drop_duplicates("transaction_id", keep="first").reset_index(drop=True)


def dead_letters_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Dead letters (dead_letter.v1) with ``reason_label``, the fixed label of the metrics
    (``udfs.metrics.reason_label``: schema, future_event_time, ...)."""
    rows = [
        {**{c: r.get(c) for c in DEAD_LETTER_COLUMNS}, "reason_label": reason_label(r["reason"])}
        for r in records
        if r.get("reason") is not None
    ]
    return pd.DataFrame(rows, columns=list(DEAD_LETTER_COLUMNS))


def analytics_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Window analytics (window_analytics.v1), the newest revision of each window, with the
    decision counts as ``approve``, ``step_up`` and ``block``."""
    rows = []
    for r in records:
        counts = r.get("decisions") or {}
        row = {c: r.get(c) for c in ANALYTICS_COLUMNS if c not in ("approve", "step_up", "block")}
        rows.append(row | {k: counts.get(k, 0) for k in ("approve", "step_up", "block")})
    frame = pd.DataFrame(rows, columns=list(ANALYTICS_COLUMNS))
    window = ["window_kind", "window_size_ms", "key_kind", "key", "window_start"]
    frame = frame.sort_values("revision", kind="stable").drop_duplicates(window, keep="last")
    return frame.sort_values("window_start", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class RunData:
    """What the report draws: one frame per source, the registry's cards and the settings'
    configured decision shares."""

    decisions: pd.DataFrame
    predictions: pd.DataFrame
    labels: pd.DataFrame
    dead_letters: pd.DataFrame
    analytics: pd.DataFrame
    cards: list[dict[str, Any]]
    """Every model card of the registry, oldest first."""
    champion: str | None
    configured: dict[str, float]
    """The decision shares the thresholds are chosen for (training.block_rate, step_up_rate)."""
    topics: dict[str, str] = field(default_factory=dict)
    """Source -> the topic it was read from."""
    missing: dict[str, str] = field(default_factory=dict)
    """Source -> why it has no data (unreadable topic, not written by this run)."""

    def card(self, version: str | None) -> dict[str, Any] | None:
        """The card of ``version`` if the registry has it."""
        return next((c for c in self.cards if c.get("version") == version), None)

    @property
    def served_versions(self) -> list[str]:
        """Model versions named by the decisions, in order of first use."""
        return list(dict.fromkeys(self.decisions["model_version"].dropna()))


def configured_shares(settings: Settings) -> dict[str, float]:
    """The target decision shares of ``settings.training``."""
    t = settings.training
    return {
        "approve": 1.0 - t.block_rate - t.step_up_rate,
        "step_up": t.step_up_rate,
        "block": t.block_rate,
    }


def registry_cards(registry: Path) -> tuple[list[dict[str, Any]], str | None]:
    """Every readable model card of ``registry`` (oldest first) and the champion's version (of
    the readable cards, the one whose stage is champion; None if not exactly one)."""
    cards = []
    for version in versions(registry):
        try:
            cards.append(read_card(registry, version))
        except RegistryError:
            continue
    champions = [c["version"] for c in cards if c.get("stage") == CHAMPION]
    return cards, champions[0] if len(champions) == 1 else None


def _read_json(settings: Settings, topic: str) -> list[dict[str, Any]]:
    records = read_to_end(
        settings, topic, timeout_s=READ_TIMEOUT_S, idle_timeout_s=READ_IDLE_TIMEOUT_S
    )
    out = []
    for record in records:
        if record.value is None:
            continue
        try:
            value = json.loads(record.value)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


BUILDERS = {
    "decisions": decisions_frame,
    "predictions": predictions_frame,
    "labels": labels_frame,
    "dead_letters": dead_letters_frame,
    "analytics": analytics_frame,
}


def broker_topics(settings: Settings, timeout_s: float = METADATA_TIMEOUT_S) -> set[str]:
    """The topic names the brokers of ``settings`` hold; :class:`ServiceError` if none answers."""
    conf: dict[str, Any] = {**settings.kafka.client_config(), "logger": _QUIET}
    try:
        metadata = AdminClient(conf).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise ServiceError(
            f"report: no Kafka broker answered at {settings.kafka.bootstrap} within "
            f"{timeout_s:.0f} s (is it running? `riskstream kafka start`): {exc}"
        ) from exc
    return set(metadata.topics)


def load_run(settings: Settings) -> RunData:
    """Read the run of ``settings``: its decisions, prediction-log, labels, dead-letter and
    analytics topics, and the registry it served from. :class:`ServiceError` if no broker
    answers; a topic that does not exist is a source without data."""
    frames: dict[str, pd.DataFrame] = {}
    topics: dict[str, str] = {}
    missing: dict[str, str] = {}
    existing = broker_topics(settings)
    for source, role in TOPIC_ROLES.items():
        topic = settings.kafka.topic(role)
        topics[source] = topic
        records: list[dict[str, Any]] = []
        if source == "analytics" and not settings.scoring.analytics:
            missing[source] = "the run's scoring job had its analytics off (scoring.analytics)"
        elif topic not in existing:
            missing[source] = f"topic {topic!r} does not exist at {settings.kafka.bootstrap}"
        else:
            try:
                records = _read_json(settings, topic)
            except ServiceError as exc:
                missing[source] = f"topic {topic!r} could not be read: {exc}"
            if not records and source not in missing:
                missing[source] = f"topic {topic!r} holds no records"
        frames[source] = BUILDERS[source](records)
    cards, best = registry_cards(settings.registry)
    if not cards:
        missing["registry"] = f"no model card in {settings.registry}"
    return RunData(
        decisions=frames["decisions"],
        predictions=frames["predictions"],
        labels=frames["labels"],
        dead_letters=frames["dead_letters"],
        analytics=frames["analytics"],
        cards=cards,
        champion=best,
        configured=configured_shares(settings),
        topics=topics,
        missing=missing,
    )
