"""The report's figures: pandas frames (:mod:`riskstream.report.data`) in, plotly figures out.

Every builder returns a :class:`Panel`: a figure with a sentence on what it shows, or no figure
and the reason (:attr:`Panel.missing`), which the page prints in its place. Figures carry
aggregates only (time buckets, histogram bins, at most :data:`MAX_CURVE_POINTS` points of a
curve), so the page stays small whatever the size of the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from riskstream.report.data import (
    ENSEMBLE,
    FEATURE_PREFIX,
    MODEL_PREFIX,
    RunData,
    analytics_frame,
    dead_letters_frame,
    decisions_frame,
    labels_frame,
    predictions_frame,
)

MAX_BUCKETS = 120
BUCKET_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
"""Time-bucket widths the timelines choose from (the smallest giving at most MAX_BUCKETS)."""
MAX_CURVE_POINTS = 400
SCORE_BINS = 50
TOP_REASON_CODES = 15
PERCENTILES = (50, 95, 99)
CLASSES = ("approve", "step_up", "block")
COLORS = {"approve": "#2ca02c", "step_up": "#ff7f0e", "block": "#d62728"}
HEIGHT = 380
MS = 1_000


@dataclass(frozen=True)
class Panel:
    """One section of the report: a figure, or the reason there is none."""

    key: str
    title: str
    note: str
    """What the figure shows and where its data come from."""
    figure: Any = None
    """A ``plotly.graph_objects.Figure``, or None when the panel has no data."""
    missing: str | None = None
    """Why there is no figure (None when there is one)."""


def _empty(key: str, title: str, note: str, why: str) -> Panel:
    return Panel(key, title, note, None, why)


def _layout(fig: Any, *, x: str, y: str, **extra: Any) -> Any:
    fig.update_layout(
        template="plotly_white",
        height=HEIGHT,
        margin={"l": 60, "r": 30, "t": 30, "b": 50},
        xaxis_title=x,
        yaxis_title=y,
        legend={"orientation": "h", "y": -0.2},
        **extra,
    )
    return fig


def bucket_ms(first_ms: int, last_ms: int, max_buckets: int = MAX_BUCKETS) -> int:
    """The smallest width of :data:`BUCKET_STEPS_S` that cuts ``[first_ms, last_ms]`` into at
    most ``max_buckets`` buckets (milliseconds).

    >>> bucket_ms(0, 60_000)
    1000
    >>> bucket_ms(0, 3_600_000)
    60000
    """
    span = max(last_ms - first_ms, 0)
    for step in BUCKET_STEPS_S:
        if span // (step * MS) + 1 <= max_buckets:
            return step * MS
    return BUCKET_STEPS_S[-1] * MS * (span // (BUCKET_STEPS_S[-1] * MS * max_buckets) + 1)


def _buckets(times: pd.Series) -> tuple[pd.Series, int]:
    width = bucket_ms(int(times.min()), int(times.max()))
    return (times // width) * width, width


def _when(ms: Any) -> Any:
    return pd.to_datetime(ms, unit="ms", utc=True)


def _label_by_transaction(decisions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The first decision of each transaction with ``is_fraud`` (a fraud label arrived) and the
    fraud ``scenario``."""
    first = decisions.drop_duplicates("transaction_id", keep="first")
    known = labels[["transaction_id", "is_fraud", "scenario"]] if not labels.empty else None
    if known is None:
        return first.assign(is_fraud=False, scenario=None)
    joined = first.merge(known, on="transaction_id", how="left")
    joined["is_fraud"] = joined["is_fraud"].astype("boolean").fillna(False).astype(bool)
    return joined


def latency(decisions: pd.DataFrame) -> Panel:
    """Percentiles of the decisions' processing latency per processing-time bucket."""
    key, title = "latency", "Latency percentiles over time"
    note = (
        "processing_latency_ms of the decisions (the job's read of the payment to its decision), "
        f"p{', p'.join(map(str, PERCENTILES))} per bucket of processing time (received_time)."
    )
    if decisions.empty:
        return _empty(key, title, note, "no decisions: the decisions topic is empty")
    start, width = _buckets(decisions["received_time"])
    grouped = decisions.groupby(start)["processing_latency_ms"]
    fig = go.Figure()
    for p in PERCENTILES:
        series = grouped.quantile(p / 100)
        fig.add_trace(go.Scatter(x=_when(series.index), y=series.to_numpy(), name=f"p{p}"))
    note += f" Bucket: {width // MS} s."
    return Panel(key, title, note, _layout(fig, x="processing time (UTC)", y="latency (ms)"))


def throughput(decisions: pd.DataFrame) -> Panel:
    """Decisions (and degraded decisions) per second of processing time."""
    key, title = "throughput", "Throughput"
    note = "Decisions per second of processing time (received_time), and the degraded ones."
    if decisions.empty:
        return _empty(key, title, note, "no decisions: the decisions topic is empty")
    start, width = _buckets(decisions["received_time"])
    per_s = width / MS
    counts = decisions.groupby(start).size() / per_s
    degraded = decisions[decisions["degraded"]].groupby(start).size().reindex(counts.index)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=_when(counts.index), y=counts.to_numpy(), name="decisions/s"))
    fig.add_trace(
        go.Scatter(
            x=_when(counts.index),
            y=(degraded.fillna(0) / per_s).to_numpy(),
            name="degraded decisions/s",
        )
    )
    note += f" Bucket: {width // MS} s; the whole run: {len(decisions):,} decisions."
    return Panel(key, title, note, _layout(fig, x="processing time (UTC)", y="decisions per s"))


def decision_shares(
    decisions: pd.DataFrame,
    configured: Mapping[str, float],
    expected: Mapping[str, float] | None = None,
) -> Panel:
    """Shares of step-up and block per processing-time bucket against the configured shares
    (dashed) and the model's test-period shares (dotted, from its card)."""
    key, title = "shares", "Decision shares over time, with the configured rates"
    note = (
        "Share of step_up and block decisions per bucket of processing time; dashed: the "
        "configured shares (training.step_up_rate, training.block_rate); dotted: the model's "
        "test period (model card expected_decisions). Approve is the rest."
    )
    if decisions.empty:
        return _empty(key, title, note, "no decisions: the decisions topic is empty")
    start, width = _buckets(decisions["received_time"])
    table = pd.crosstab(start, decisions["decision"]).reindex(columns=list(CLASSES), fill_value=0)
    shares = table.div(table.sum(axis=1), axis=0) * 100
    x = _when(shares.index)
    fig = go.Figure()
    for verdict in ("step_up", "block"):
        color = COLORS[verdict]
        fig.add_trace(
            go.Scatter(x=x, y=shares[verdict].to_numpy(), name=verdict, line={"color": color})
        )
        for source, dash in ((configured, "dash"), (expected or {}, "dot")):
            if verdict in source:
                fig.add_hline(
                    y=100 * float(source[verdict]), line={"color": color, "dash": dash, "width": 1}
                )
    total = table.sum()
    overall = ", ".join(f"{k} {100 * total[k] / total.sum():.2f}%" for k in CLASSES)
    note += f" Bucket: {width // MS} s. The whole run: {overall}."
    return Panel(key, title, note, _layout(fig, x="processing time (UTC)", y="share (%)"))


def fraud_caught(decisions: pd.DataFrame, labels: pd.DataFrame) -> Panel:
    """Fraud-labelled payments caught (stepped up or blocked) and missed (approved), by the
    fraud scenario of their label."""
    key, title = "fraud", "Fraud caught and missed"
    note = (
        "Payments whose label is fraud (labels topic), by their first decision: caught = step_up "
        "or block, missed = approve; grouped by the label's scenario (simulated data)."
    )
    if decisions.empty:
        return _empty(key, title, note, "no decisions: the decisions topic is empty")
    joined = _label_by_transaction(decisions, labels)
    frauds = joined[joined["is_fraud"]]
    if frauds.empty:
        return _empty(key, title, note, "no decided payment has a fraud label")
    scenario = frauds["scenario"].fillna("(no scenario)")
    outcome = np.where(frauds["decision"] == "approve", "missed", "caught")
    table = pd.crosstab(scenario, outcome).reindex(columns=["caught", "missed"], fill_value=0)
    fig = go.Figure()
    for column, color in (("caught", "#1f77b4"), ("missed", "#d62728")):
        fig.add_trace(
            go.Bar(x=list(table.index), y=table[column].to_numpy(), name=column, marker_color=color)
        )
    caught, total = int(table["caught"].sum()), int(table.to_numpy().sum())
    note += f" In all: {caught} of {total} caught ({100 * caught / total:.1f}%)."
    return Panel(key, title, note, _layout(fig, x="scenario", y="payments", barmode="stack"))


def score_distribution(decisions: pd.DataFrame, labels: pd.DataFrame) -> Panel:
    """Histogram of the decisions' scores, fraud-labelled payments against the rest (share of
    each group per bin, log scale)."""
    key, title = "scores", "Score distribution by label"
    note = (
        f"The decision score in {SCORE_BINS} bins, as the share of each group: payments with a "
        "fraud label against all others (legit label or none yet); log scale."
    )
    if decisions.empty:
        return _empty(key, title, note, "no decisions: the decisions topic is empty")
    joined = _label_by_transaction(decisions, labels)
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure()
    for is_fraud, name, color in ((False, "no fraud label", "#1f77b4"), (True, "fraud", "#d62728")):
        scores = joined.loc[joined["is_fraud"] == is_fraud, "score"].to_numpy(dtype=float)
        if len(scores) == 0:
            continue
        counts, _ = np.histogram(np.clip(scores, 0.0, 1.0), bins=edges)
        fig.add_trace(
            go.Bar(
                x=centers,
                y=counts / len(scores),
                name=f"{name} ({len(scores):,})",
                marker_color=color,
                opacity=0.6,
                width=1.0 / SCORE_BINS,
            )
        )
    fig = _layout(fig, x="score", y="share of the group", barmode="overlay")
    fig.update_yaxes(type="log")
    return Panel(key, title, note, fig)


def pr_curve(y: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]) -> tuple[Any, Any, float]:
    """Recall, precision (at each distinct score, highest first) and average precision.

    >>> r, p, ap = pr_curve(np.array([1, 0, 1]), np.array([0.9, 0.5, 0.1]))
    >>> p.round(3).tolist(), r.round(3).tolist(), round(ap, 3)
    ([1.0, 0.5, 0.667], [0.5, 0.5, 1.0], 0.833)
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores, hits = scores[order], y[order].astype(float)
    last = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(hits) - 1]  # end of each tie group
    tp = np.cumsum(hits)[last]
    predicted = last + 1
    positives = hits.sum()
    precision = tp / predicted
    recall = tp / positives
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return recall, precision, ap


def _thin(n: int, most: int = MAX_CURVE_POINTS) -> Any:
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int))


def precision_recall(
    predictions: pd.DataFrame, labels: pd.DataFrame, card: Mapping[str, Any] | None
) -> Panel:
    """Precision-recall curve of each model of the prediction log (its ``model_scores`` and the
    decision score) against the fraud labels, with each model's average precision on this run
    and on its test period (model card)."""
    key, title = "pr", "Precision-recall curve of each model"
    note = (
        "Each model's score in the prediction log (model_scores; ensemble = the decision score) "
        "against the labels: positive = a fraud label arrived, every other payment negative. "
        "Legend: average precision on this run, and on the model's test period (model card)."
    )
    columns = [c for c in predictions.columns if c.startswith(MODEL_PREFIX)]
    if predictions.empty or not columns:
        return _empty(key, title, note, "no prediction-log records")
    fraud = set(labels.loc[labels["is_fraud"], "transaction_id"]) if not labels.empty else set()
    first = predictions.drop_duplicates("transaction_id", keep="first")
    y = first["transaction_id"].isin(fraud).to_numpy()
    if not y.any():
        return _empty(key, title, note, "no scored payment has a fraud label")
    metrics = (card or {}).get("metrics", {})
    fig = go.Figure()
    for column in sorted(columns, key=lambda c: (c != f"{MODEL_PREFIX}{ENSEMBLE}", c)):
        name = column[len(MODEL_PREFIX) :]
        scores = first[column].to_numpy(dtype=float)
        scored = ~np.isnan(scores)
        if not y[scored].any():
            continue
        recall, precision, ap = pr_curve(y[scored], scores[scored])
        keep = _thin(len(recall))
        test_ap = metrics.get(name, {}).get("average_precision")
        tested = f", test period {test_ap:.3f}" if isinstance(test_ap, int | float) else ""
        fig.add_trace(
            go.Scatter(
                x=recall[keep],
                y=precision[keep],
                name=f"{name} (AP {ap:.3f}{tested})",
                mode="lines",
                line={"shape": "hv"},
            )
        )
    if not fig.data:
        return _empty(key, title, note, "no model scored a fraud-labelled payment")
    version = (card or {}).get("version")
    if version:
        note += f" Model card: {version}."
    fig = _layout(fig, x="recall", y="precision")
    fig.update_xaxes(range=[0, 1.02])
    fig.update_yaxes(range=[0, 1.05])
    return Panel(key, title, note, fig)


def reason_codes(decisions: pd.DataFrame, top: int = TOP_REASON_CODES) -> Panel:
    """The most frequent reason codes of the decisions, split by decision class."""
    key, title = "reasons", "Top reason codes"
    note = f"The {top} most frequent reason codes of the decisions, by decision class."
    if decisions.empty:
        return _empty(key, title, note, "no decisions: the decisions topic is empty")
    codes = decisions[["decision", "reason_codes"]].explode("reason_codes").dropna()
    if codes.empty:
        return _empty(key, title, note, "no decision carries a reason code")
    order = codes["reason_codes"].value_counts().head(top).index[::-1]
    table = pd.crosstab(codes["reason_codes"], codes["decision"]).reindex(
        index=order, columns=list(CLASSES), fill_value=0
    )
    fig = go.Figure()
    for verdict in CLASSES:
        fig.add_trace(
            go.Bar(
                y=list(table.index),
                x=table[verdict].to_numpy(),
                name=verdict,
                orientation="h",
                marker_color=COLORS[verdict],
            )
        )
    fig = _layout(fig, x="decisions", y="", barmode="stack")
    fig.update_layout(height=max(HEIGHT, 28 * len(order) + 120))
    fig.update_yaxes(automargin=True)  # room for the longest code
    return Panel(key, title, note, fig)


def dead_letters(frame: pd.DataFrame) -> Panel:
    """Dead letters by reason (the metrics' fixed reason labels) and record type."""
    key, title = "dead_letters", "Dead letters by reason"
    note = (
        "Records the job rejected (dead-letter topic), by the fixed reason label of the "
        "deadLetters metric (docs/observability.md) and record type; hover for the commonest "
        "reason text."
    )
    if frame.empty:
        return _empty(key, title, note, "no dead letters: the dead-letter topic is empty")
    table = pd.crosstab(frame["reason_label"], frame["record_type"])
    common = frame.groupby("reason_label")["reason"].agg(lambda s: s.value_counts().index[0])
    fig = go.Figure()
    for record_type in table.columns:
        fig.add_trace(
            go.Bar(
                x=list(table.index),
                y=table[record_type].to_numpy(),
                name=str(record_type),
                hovertext=[str(common[label])[:200] for label in table.index],
            )
        )
    note += f" In all: {len(frame):,}."
    return Panel(key, title, note, _layout(fig, x="reason", y="records", barmode="stack"))


def feature_drift(predictions: pd.DataFrame, card: Mapping[str, Any] | None) -> Panel:
    """Share of each model input outside its training range (the card's quantile range), against
    the share expected from the training data."""
    key, title = "drift", "Feature drift: inputs outside their training range"
    ranges = ((card or {}).get("feature_ranges") or {}).get("features") or {}
    quantiles: Sequence[float] = ((card or {}).get("feature_ranges") or {}).get("quantiles", ())
    note = (
        "Share of the prediction log's feature values outside the training range of the model "
        "card (feature_ranges: the training data's quantiles); dashed: the share expected "
        "without drift."
    )
    if predictions.empty:
        return _empty(key, title, note, "no prediction-log records")
    if card is None:
        return _empty(key, title, note, "the registry has no card of the model that decided")
    if not ranges:
        return _empty(key, title, note, "the model card records no feature ranges")
    names, shares = [], []
    for name, bounds in ranges.items():
        column = f"{FEATURE_PREFIX}{name}"
        if column not in predictions.columns:
            continue
        values = predictions[column].dropna().to_numpy(dtype=float)
        if len(values) == 0:
            continue
        outside = (values < float(bounds["low"])) | (values > float(bounds["high"]))
        names.append(name)
        shares.append(100 * outside.mean())
    if not names:
        return _empty(key, title, note, "the prediction log has none of the card's features")
    fig = go.Figure(go.Bar(x=names, y=shares, name="outside the training range"))
    if len(quantiles) == 2:
        fig.add_hline(y=100 * (1 - (quantiles[1] - quantiles[0])), line={"dash": "dash"})
    note += f" Model card: {(card or {}).get('version')}."
    fig = _layout(fig, x="", y="share outside (%)")
    fig.update_layout(height=HEIGHT + 120, margin={"b": 170})
    fig.update_xaxes(tickangle=-45)
    return Panel(key, title, note, fig)


def windowed_analytics(analytics: pd.DataFrame) -> Panel:
    """Payments per window and their mean score, from the analytics topic's global windows (or
    the windows of its commonest key kind, summed)."""
    key, title = "analytics", "Windowed analytics: payments and mean score per window"
    note = (
        "The analytics topic (newest revision of each window), in event time: payments per "
        "window (bars) and their mean score (line, right axis)."
    )
    if analytics.empty:
        return _empty(key, title, note, "no window results: the analytics topic is empty")
    kinds = analytics["key_kind"].value_counts()
    kind = "global" if "global" in kinds.index else str(kinds.index[0])
    chosen = analytics[analytics["key_kind"] == kind]
    size = int(chosen["window_size_ms"].min())
    chosen = chosen[chosen["window_size_ms"] == size].copy()
    chosen["weighted"] = chosen["mean_score"].fillna(0.0) * chosen["transactions"]
    per = chosen.groupby("window_start")[["transactions", "weighted"]].sum()
    mean = (per["weighted"] / per["transactions"].where(per["transactions"] > 0)).to_numpy()
    x = _when(per.index)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=x, y=per["transactions"].to_numpy(), name="payments"))
    fig.add_trace(go.Scatter(x=x, y=mean, name="mean score", mode="lines"), secondary_y=True)
    fig = _layout(fig, x="window start (event time, UTC)", y="payments")
    fig.update_yaxes(title_text="mean score", secondary_y=True)
    note += f" Windows: key kind {kind}, {size // MS} s long, {len(per):,} of them."
    return Panel(key, title, note, fig)


SOURCES = {
    "latency": "decisions",
    "throughput": "decisions",
    "shares": "decisions",
    "fraud": "labels",
    "scores": "decisions",
    "pr": "predictions",
    "reasons": "decisions",
    "dead_letters": "dead_letters",
    "drift": "predictions",
    "analytics": "analytics",
}
"""Panel key -> the source whose absence explains an empty panel."""


def panels_order() -> list[Panel]:
    """The panels of a run with no data, in page order (their keys and titles)."""
    empty = RunData(
        decisions_frame([]),
        predictions_frame([]),
        labels_frame([]),
        dead_letters_frame([]),
        analytics_frame([]),
        cards=[],
        champion=None,
        configured={},
    )
    return panels(empty)


def panels(run: RunData) -> list[Panel]:
    """Every panel of the report, in page order; a source the run lacks names its reason."""
    card = run.card(run.served_versions[0] if run.served_versions else run.champion)
    expected = {
        k: float(v)
        for k, v in ((card or {}).get("expected_decisions") or {}).items()
        if k in CLASSES and isinstance(v, int | float)
    }
    built = [
        latency(run.decisions),
        throughput(run.decisions),
        decision_shares(run.decisions, run.configured, expected),
        fraud_caught(run.decisions, run.labels),
        score_distribution(run.decisions, run.labels),
        precision_recall(run.predictions, run.labels, card),
        reason_codes(run.decisions),
        dead_letters(run.dead_letters),
        feature_drift(run.predictions, card),
        windowed_analytics(run.analytics),
    ]
    out = []
    for panel in built:
        why = run.missing.get(SOURCES[panel.key])
        if panel.figure is None and why is not None:
            out.append(Panel(panel.key, panel.title, panel.note, None, f"{panel.missing} ({why})"))
        else:
            out.append(panel)
    return out
