"""The shapes study's tile cache (bench/shapes/tiles.py) against a brute-force count."""

from __future__ import annotations

import random

from bench.shapes.tiles import (
    DELAY_HOURS,
    LABEL_MARGIN_HOURS,
    MS_PER_HOUR,
    WINDOW_HOURS,
    TileCache,
)


def _brute(
    payments: list[tuple[str, int]],
    frauds: dict[str, tuple[str, int, int]],
    terminal: str,
    t: int,
) -> list[float]:
    end = t // MS_PER_HOUR - DELAY_HOURS
    known_before = t // MS_PER_HOUR - LABEL_MARGIN_HOURS
    out: list[float] = []
    for length in WINDOW_HOURS:
        start = end - length
        count = sum(
            1 for term, ts in payments if term == terminal and start <= ts // MS_PER_HOUR < end
        )
        fraud = sum(
            1
            for term, tx_time, label_time in frauds.values()
            if term == terminal
            and start <= tx_time // MS_PER_HOUR < end
            and label_time // MS_PER_HOUR < known_before
        )
        out += [float(count), min(1.0, fraud / count) if count else 0.0]
    return out


def test_tile_cache_matches_brute_force_counts() -> None:
    """Tiles arrive hour by hour (pruning as they go); payments are scored as the live job would,
    once the tiles their windows need have arrived; labels arrive early (gated by their time)."""
    rng = random.Random(3)
    hours = 45 * 24
    terminals = [f"term-{i}" for i in range(5)]
    payments = sorted(
        ((rng.choice(terminals), rng.randrange(hours * MS_PER_HOUR)) for _ in range(3_000)),
        key=lambda p: p[1],
    )
    cache = TileCache()
    frauds: dict[str, tuple[str, int, int]] = {}
    for i, (term, ts) in enumerate(payments[::37]):
        label_time = ts + rng.randrange(1, 10 * 24) * MS_PER_HOUR
        frauds[f"tx-{i}"] = (term, ts, label_time)
        assert cache.add_fraud(term, f"tx-{i}", ts, label_time)
    first = next(iter(frauds))
    assert not cache.add_fraud(frauds[first][0], first, frauds[first][1], 10**13)
    checked = 0
    for hour in range(hours):
        counts: dict[str, int] = {}
        for term, ts in payments:
            if ts // MS_PER_HOUR == hour:
                counts[term] = counts.get(term, 0) + 1
        cache.add_counts(hour, ";".join(f"{term}:{n}" for term, n in counts.items()))
        # A payment whose windows end at this hour's end, 7 days later.
        t = (hour + 1 + DELAY_HOURS) * MS_PER_HOUR + rng.randrange(MS_PER_HOUR)
        term = rng.choice(terminals)
        assert cache.values(term, t) == _brute(payments, frauds, term, t), hour
        checked += 1
    assert checked == hours


def test_unknown_terminal_has_zero_features() -> None:
    assert TileCache().values("nowhere", 10**12) == [0.0] * 6
