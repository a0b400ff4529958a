"""Messy delivery: network latency, out-of-order and late arrivals, re-sends, malformed records.

Each transaction gets an ``arrival_time``; output is emitted in arrival order, so arrival order is
not event order. Shares are exact counts (sampled without replacement) of the original transactions.
"""

from __future__ import annotations

import numpy as np

from training.simulator.columns import (
    DELIVERY_CODE,
    I64,
    MALFORMED_KINDS,
    MS_PER_MIN,
    MS_PER_S,
    Delivery,
)

BASE_LATENCY_MS = (20, 800)  # every record: network and broker latency
OUT_OF_ORDER_MAX_SKIP = 5  # an out-of-order record arrives after up to this many later events
OUT_OF_ORDER_EXTRA_MS = (1, MS_PER_S)
LATE_MIN_MS = MS_PER_MIN  # late = an offline terminal uploading minutes to hours later
DUPLICATE_DELAY_MS = (100, 5 * MS_PER_MIN)  # a retry re-sends the same record
MALFORMED_DELAY_MS = (0, MS_PER_S)
VARIANT_RANGE = 2**31


def plan(
    gen: np.random.Generator,
    event_time: I64,
    *,
    out_of_order_share: float,
    late_share: float,
    late_max_ms: int,
    duplicate_share: float,
    malformed_share: float,
) -> Delivery:
    """Arrival-ordered delivery of transactions whose ``event_time`` is sorted ascending."""
    n = len(event_time)
    arrival = event_time + gen.integers(*BASE_LATENCY_MS, n)
    kind = np.zeros(n, dtype=np.int64)
    order = gen.permutation(n)
    late_count, ooo_count = round(late_share * n), round(out_of_order_share * n)
    late, ooo = order[:late_count], order[late_count : late_count + ooo_count]
    log_delay = gen.uniform(np.log(LATE_MIN_MS), np.log(max(late_max_ms, LATE_MIN_MS)), late_count)
    arrival[late] = event_time[late] + np.exp(log_delay).astype(np.int64)
    kind[late] = DELIVERY_CODE["late"]
    overtaken = np.minimum(ooo + gen.integers(1, OUT_OF_ORDER_MAX_SKIP + 1, ooo_count), n - 1)
    arrival[ooo] = (
        event_time[overtaken] + BASE_LATENCY_MS[1] + gen.integers(*OUT_OF_ORDER_EXTRA_MS, ooo_count)
    )
    kind[ooo] = DELIVERY_CODE["out_of_order"]

    dup = gen.choice(n, round(duplicate_share * n), replace=False)
    bad = gen.choice(n, round(malformed_share * n), replace=False)
    none = np.full(n + len(dup), -1, dtype=np.int64)
    delivery = Delivery(
        source=np.concatenate([np.arange(n), dup, bad]).astype(np.int64),
        arrival_time=np.concatenate(
            [
                arrival,
                arrival[dup] + gen.integers(*DUPLICATE_DELAY_MS, len(dup)),
                arrival[bad] + gen.integers(*MALFORMED_DELAY_MS, len(bad)),
            ]
        ).astype(np.int64),
        kind=np.concatenate(
            [
                kind,
                np.full(len(dup), DELIVERY_CODE["duplicate"]),
                np.full(len(bad), DELIVERY_CODE["malformed"]),
            ]
        ).astype(np.int64),
        malformed_kind=np.concatenate([none, gen.integers(0, len(MALFORMED_KINDS), len(bad))]),
        variant=np.concatenate([none, gen.integers(0, VARIANT_RANGE, len(bad))]),
    )
    return delivery.take(np.lexsort((delivery.kind, delivery.source, delivery.arrival_time)))
