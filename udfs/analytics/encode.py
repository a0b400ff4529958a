"""Output records: window results as ``WindowAnalytics`` JSON, too-late events, newest revisions.

A window result's ``event_id`` names the window and revision (re-sends keep it, so consumers can
de-duplicate); its ``correlation_id`` names the window only, shared by all its revisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from schemas.records import DecisionCounts, WindowAnalytics
from udfs.analytics.records import LateEvent, ScoredPayment
from udfs.analytics.windows import TooLate, WindowId, WindowResult

WINDOW_KIND: Literal["tumbling"] = "tumbling"
SCHEMA_V1: Literal[1] = 1


def window_record(result: WindowResult, source: str) -> WindowAnalytics:
    """The contract record of one window result."""
    t = result.totals
    window = f"{result.key_kind}:{result.key}:{result.window_start}"
    return WindowAnalytics(
        event_id=f"{window}:r{result.revision}",
        event_time=result.window_end - 1,
        schema_version=SCHEMA_V1,
        source=source,
        correlation_id=window,
        window_kind=WINDOW_KIND,
        window_size_ms=result.window_end - result.window_start,
        key_kind=result.key_kind,
        key=result.key,
        window_start=result.window_start,
        window_end=result.window_end,
        revision=result.revision,
        transactions=t.transactions,
        amount_sum=t.amount_sum,
        decisions=DecisionCounts(approve=t.approve, step_up=t.step_up, block=t.block),
        mean_score=t.mean_score,
    )


def window_json(result: WindowResult, source: str) -> str:
    """A window result as ``window_analytics.v1`` JSON."""
    return msgspec.json.encode(window_record(result, source)).decode()


def late_record(
    p: ScoredPayment, late: TooLate, allowed_lateness_ms: int, source: str
) -> LateEvent:
    """The late-events record of a payment that came too late."""
    return LateEvent(
        event_id=p.event_id,
        event_time=p.event_time,
        merchant_id=p.merchant_id,
        mcc=p.mcc,
        amount=p.amount,
        decision=p.decision,
        score=p.score,
        key_kind=late.key_kind,
        key=late.key,
        window_start=late.window_start,
        window_end=late.window_end,
        watermark=late.watermark,
        late_by_ms=late.late_by_ms,
        allowed_lateness_ms=allowed_lateness_ms,
        closed_since_ms=late.closed_since_ms,
        source=source,
    )


def late_json(p: ScoredPayment, late: TooLate, allowed_lateness_ms: int, source: str) -> str:
    """A too-late payment as late-events JSON."""
    return msgspec.json.encode(late_record(p, late, allowed_lateness_ms, source)).decode()


def decode_window(raw: bytes | str) -> WindowAnalytics:
    """Parse one analytics-topic record."""
    return msgspec.json.decode(raw, type=WindowAnalytics)


def decode_late(raw: bytes | str) -> LateEvent:
    """Parse one late-events record."""
    return msgspec.json.decode(raw, type=LateEvent)


def latest_revisions(records: Iterable[WindowAnalytics]) -> dict[WindowId, WindowAnalytics]:
    """Keep the highest revision per window: what a consumer of the analytics topic does."""
    latest: dict[WindowId, WindowAnalytics] = {}
    for r in records:
        wid = (r.key_kind, r.key, r.window_start)
        if wid not in latest or latest[wid].revision < r.revision:
            latest[wid] = r
    return latest
