"""Per-terminal hourly tiles: the terminal features served from slowly changing counts.

Prototype for shape (a): the terminal features of the Handbook (payment count and fraud rate over
1, 7 and 30 days, in windows that end 7 days before the payment) computed from

* hourly payment-count tiles per terminal, counted in Java by a Flink SQL window aggregation over
  the transactions topic and delivered as ONE broadcast record per hour (``hour;term:n;term:n``),
* fraud labels (validated in Python, fraud only) delivered by broadcast one by one.

Tile-aligned definition (what a feature-set version bump would adopt): for a payment at ``t``, let
``E = floor((t - 7d) / 1h)``; the window of ``n`` hours covers the complete hours ``[E - n, E)``,
so it ends at the last full hour at or before ``t - 7d``. A fraud label counts if its payment's
hour is in the window and the label became known (label ``event_time``) before
``(floor(t / 1h) - 1) * 1h``: an hour of margin so that a label broadcast has arrived before any
payment that may count it, which makes the result independent of how the two inputs interleave
(replay = live). Count tiles for hour h are complete when they are emitted (after the watermark
passed the hour) and are first needed 7 days later.

The per-terminal cache keeps cumulative counts per hour, so a window is two bisections and a
subtraction whatever the terminal's traffic: a hot terminal costs the same as a quiet one.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

MS_PER_HOUR = 3_600_000
DELAY_HOURS = 7 * 24
WINDOW_HOURS = (24, 7 * 24, 30 * 24)
RETENTION_HOURS = DELAY_HOURS + WINDOW_HOURS[-1] + 48
"""Hours of tiles and labels kept behind the newest tile (the longest window, delay, margin)."""
LABEL_MARGIN_HOURS = 1


class TerminalTiles:
    """Cumulative hourly payment counts of one terminal, plus its fraud labels."""

    __slots__ = ("cum", "frauds", "hours")

    def __init__(self) -> None:
        self.hours: list[int] = []
        """Hour indices (epoch ms // 1h) with payments, ascending."""
        self.cum: list[int] = [0]
        """``cum[i]``: payments in the first ``i`` listed hours (``cum[0] = 0``)."""
        self.frauds: dict[str, tuple[int, int]] = {}
        """Payment id -> (payment hour, hour in which its first fraud label became known)."""

    def count_before(self, hour: int) -> int:
        """Payments in listed hours strictly before ``hour``."""
        return self.cum[bisect_left(self.hours, hour)]


class TileCache:
    """Python-side view of the broadcast state: every terminal's tiles, for O(log n) lookups."""

    def __init__(self) -> None:
        self.terminals: dict[str, TerminalTiles] = {}
        self.newest_hour = 0

    def add_counts(self, hour: int, payload: str) -> None:
        """Apply one hour's tile record (``term:n;term:n;...``); hours arrive in ascending order."""
        terminals = self.terminals
        for item in payload.split(";"):
            if not item:
                continue
            term, _, count = item.rpartition(":")
            tiles = terminals.get(term)
            if tiles is None:
                tiles = terminals[term] = TerminalTiles()
            if tiles.hours and tiles.hours[-1] >= hour:
                continue  # a replayed or out-of-order tile: counts are final, keep the first
            tiles.hours.append(hour)
            tiles.cum.append(tiles.cum[-1] + int(count))
        if hour > self.newest_hour:
            self.newest_hour = hour
            if hour % 24 == 0:
                self.prune(hour - RETENTION_HOURS)

    def add_fraud(self, terminal: str, tx_id: str, tx_time: int, label_time: int) -> bool:
        """Apply one fraud label; a payment counts once, from its earliest label. Returns whether
        the cache changed."""
        tiles = self.terminals.get(terminal)
        if tiles is None:
            tiles = self.terminals[terminal] = TerminalTiles()
        entry = (tx_time // MS_PER_HOUR, label_time // MS_PER_HOUR)
        known = tiles.frauds.get(tx_id)
        if known is not None and known[1] <= entry[1]:
            return False
        tiles.frauds[tx_id] = entry
        return True

    def prune(self, horizon_hour: int) -> None:
        """Drop hours and labels older than ``horizon_hour`` (keeps cumulative sums valid)."""
        for tiles in self.terminals.values():
            k = bisect_right(tiles.hours, horizon_hour)
            if k:
                del tiles.hours[:k]
                del tiles.cum[:k]
            for tx_id in [i for i, (h, _) in tiles.frauds.items() if h <= horizon_hour]:
                del tiles.frauds[tx_id]

    def values(self, terminal: str, t: int) -> list[float]:
        """(count, fraud rate) for 1, 7 and 30 days, the terminal feature order of today."""
        tiles = self.terminals.get(terminal)
        if tiles is None:
            return [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        end = (t // MS_PER_HOUR) - DELAY_HOURS  # first hour NOT in any window (E)
        known_before = (t // MS_PER_HOUR) - LABEL_MARGIN_HOURS  # label hour must be < this
        total_end = tiles.count_before(end)
        out: list[float] = []
        frauds = tiles.frauds
        for length in WINDOW_HOURS:
            start = end - length
            count = total_end - tiles.count_before(start)
            fraud = 0
            if frauds:
                for tx_hour, known_hour in frauds.values():
                    if start <= tx_hour < end and known_hour < known_before:
                        fraud += 1
            out += [float(count), min(1.0, fraud / count) if count else 0.0]
        return out
