"""The report page: one self-contained HTML file, plotly.js inlined (it opens with no network).

Each panel is a ``<section>`` with its title and note, then either a plot (``div.plot``, drawn by
plotly) or a ``p.no-data`` paragraph saying plainly why the plot has no data.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import plotly.io as pio
from plotly.offline import get_plotlyjs

from riskstream.report.data import RunData
from riskstream.report.figures import Panel

STYLE = """
body { font-family: sans-serif; margin: 24px auto; max-width: 1180px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
p.note { color: #555; font-size: 0.9em; margin: 4px 0; }
p.no-data { background: #fff4e5; border: 1px solid #f0b86e; padding: 10px; }
"""


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _span(run: RunData) -> str:
    if run.decisions.empty:
        return "no decisions"
    first, last = run.decisions["received_time"].min(), run.decisions["received_time"].max()

    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    return f"{when(int(first))} to {when(int(last))} ({(last - first) / 1000:.0f} s)"


def summary_rows(run: RunData) -> list[tuple[str, Any]]:
    """The run summary: what each source held."""
    fraud = int(run.labels["is_fraud"].sum()) if not run.labels.empty else 0
    served = ", ".join(run.served_versions) or "none"
    return [
        ("decisions (first per decision_id)", f"{len(run.decisions):,}"),
        ("decided payments", f"{run.decisions['transaction_id'].nunique():,}"),
        ("processing time", _span(run)),
        ("prediction-log records", f"{len(run.predictions):,}"),
        ("labels (fraud)", f"{len(run.labels):,} ({fraud:,})"),
        ("dead letters", f"{len(run.dead_letters):,}"),
        ("analytics windows (newest revisions)", f"{len(run.analytics):,}"),
        ("models that decided", served),
        ("champion in the registry", run.champion or "none"),
        *((f"topic of {source}", topic) for source, topic in run.topics.items()),
    ]


def registry_rows(run: RunData) -> list[list[Any]]:
    """One row per model card: version, stage, creation, training data and test metrics."""
    rows = []
    for card in run.cards:
        metrics = card.get("metrics", {}).get("ensemble", {})
        thresholds = card.get("thresholds", {})
        rows.append(
            [
                card.get("version"),
                card.get("stage"),
                card.get("created_utc"),
                (card.get("training") or {}).get("data", ""),
                metrics.get("average_precision", float("nan")),
                metrics.get("auc_roc", float("nan")),
                thresholds.get("step_up", float("nan")),
                thresholds.get("block", float("nan")),
            ]
        )
    return rows


def _section(panel: Panel) -> str:
    parts = [
        f'<section id="{panel.key}"><h2>{html.escape(panel.title)}</h2>',
        f'<p class="note">{html.escape(panel.note)}</p>',
    ]
    if panel.figure is None:
        parts.append(f'<p class="no-data">No data: {html.escape(panel.missing or "")}</p>')
    else:
        div = pio.to_html(
            panel.figure,
            full_html=False,
            include_plotlyjs=False,
            div_id=f"plot-{panel.key}",
            config={"displaylogo": False, "responsive": True},
        )
        parts.append(f'<div class="plot" data-panel="{panel.key}">{div}</div>')
    parts.append("</section>")
    return "\n".join(parts)


def render(run: RunData, panels: Sequence[Panel], title: str = "riskstream run report") -> str:
    """The whole page."""
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    drawn = sum(p.figure is not None for p in panels)
    index = "".join(
        f'<li><a href="#{p.key}">{html.escape(p.title)}</a>'
        + (" (no data)" if p.figure is None else "")
        + "</li>"
        for p in panels
    )
    sections = "\n".join(_section(p) for p in panels)
    registry = (
        _table(
            ["version", "stage", "created", "trained on", "test AP", "test AUC", "step-up at",
             "block at"],
            registry_rows(run),
        )
        if run.cards
        else f'<p class="no-data">No data: {html.escape(run.missing.get("registry", ""))}</p>'
    )  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>{html.escape(title)}</h1>
<p class="note">Written {created}; {drawn} of {len(panels)} plots have data.</p>
{_table(["", ""], summary_rows(run))}
<h2>Model registry</h2>
{registry}
<ul>{index}</ul>
{sections}
</body></html>
"""
