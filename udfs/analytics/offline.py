"""The same windows over a finished list of events: what the stream's final revisions must equal.

Plain Python over :mod:`udfs.analytics.windows` (the same assignment and aggregation the stream
uses). Each ``event_id`` counts once, as in the stream's merchant windows.
"""

from __future__ import annotations

from collections.abc import Iterable

from udfs.analytics.records import ScoredPayment
from udfs.analytics.windows import Totals, WindowId, WindowParams


def final_windows(
    payments: Iterable[ScoredPayment], params: WindowParams
) -> dict[WindowId, Totals]:
    """Totals of every window of every view over ``payments`` (first copy of an id wins)."""
    seen: set[str] = set()
    totals: dict[WindowId, Totals] = {}
    empty = Totals()
    specs = params.specs()
    for p in payments:
        if p.event_id in seen:
            continue
        seen.add(p.event_id)
        for spec in specs:
            wid = spec.window_id(p)
            totals[wid] = totals.get(wid, empty).add(p)
    return totals
