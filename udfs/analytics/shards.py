"""The state layout that scales: per-shard windows over one stored entry per payment.

The per-payment stage is keyed by a *shard* of the merchants (``analytics.shards`` keys, spread
over the subtasks), not by merchant or by view, so no key (the global view!) takes every payment.
Per shard:

* **stored** (Flink MapState, one entry per counted payment): key ``"<merchant start>|<merchant>|
  <event_id>"`` (also the de-duplication key: an ``event_id`` counts once per merchant window),
  value :data:`Stored` = (event time, MCC, amount in cents, decision code, score units, the
  watermark it was counted at). Each payment costs one state write when counted and one delete
  when the last of its three windows closes; nothing is re-read per payment;
* **in memory** (:class:`ShardWindows`, rebuilt from the stored entries on the first access after
  a start or restore): the open windows' totals and revisions, which timer fires or closes what,
  and which entries to delete when. A window's revision is derived from the stored watermarks
  (fired at its timer if it had payments then, +1 per payment counted after it fired), so the
  rebuild gives back exactly the state before the failure;
* the **watermark floor** (Flink ValueState): the newest timer this shard processed. After a
  restore the timer service's watermark restarts at ``Long.MIN_VALUE`` until the sources emit
  again; ``max(current, floor)`` keeps windows that already closed closed.

Merchant windows complete in their shard (a merchant lives in one shard) and are emitted there.
MCC and global windows are emitted as per-shard :class:`Partial` totals (at the shard's fire timer,
then one delta per payment counted after it fired) and summed by a small merge stage keyed by view
(:class:`ViewMerge`), which sees ``shards`` partials per window instead of every payment.

Merchant windows nest in the view windows (``merchant_window_ms`` at most the views' sizes), so a
view never fires before the merchant windows inside it, and the merchant window alone decides
"too late" for all three views, as before.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from udfs.analytics.records import PaymentRow, ScoredPayment, payment_row
from udfs.analytics.windows import (
    ADDED,
    AMOUNT_SCALE,
    DECISION_CODES,
    DUPLICATE,
    GLOBAL_KEY,
    KEY_GLOBAL,
    KEY_KINDS,
    KEY_MCC,
    KEY_MERCHANT,
    SCORE_SCALE,
    TOO_LATE,
    TooLate,
    Totals,
    WindowId,
    WindowParams,
    WindowResult,
    WindowSpec,
)

SEP = "\x1f"
NO_WATERMARK = -(2**63)
MAX_PARALLELISM = 128
"""Flink's default maximum parallelism (key groups) for parallelism <= 85, which riskstream uses."""

Stored = tuple[int, str, int, int, int | None, int]
"""(event time, MCC, amount cents, decision code, score units or None, watermark when counted)."""

EMPTY = Totals()


def _murmur(code: int) -> int:
    """Flink's ``MathUtils.murmurHash`` of a Java int (what assigns a key to a key group)."""
    mask = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    h = rotl((code * 0xCC9E2D51) & mask, 15)
    h = rotl((h * 0x1B873593) & mask, 13)
    h = ((h * 5 + 0xE6546B64) & mask) ^ 4
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    signed = h - (1 << 32) if h & 0x80000000 else h
    return abs(signed) if signed != -(2**31) else 0


def key_group(key: int, max_parallelism: int = MAX_PARALLELISM) -> int:
    """The key group Flink puts the ``INT`` key ``key`` in (``Integer.hashCode`` is the value)."""
    return _murmur(key) % max_parallelism


def shard_keys(shards: int, max_parallelism: int = MAX_PARALLELISM) -> tuple[int, ...]:
    """One key per shard, in evenly spaced key groups: any parallelism dividing ``shards`` (and
    the key-group count) gets the same number of shards on every subtask, also after a rescale.

    >>> [key_group(k) for k in shard_keys(4)]
    [0, 32, 64, 96]
    """
    keys: list[int] = []
    for i in range(shards):
        wanted, candidate = i * max_parallelism // shards, 0
        while key_group(candidate, max_parallelism) != wanted or candidate in keys:
            candidate += 1
        keys.append(candidate)
    return tuple(keys)


def shard_of(merchant_id: str, keys: tuple[int, ...]) -> int:
    """The shard key of a merchant: a stable hash (not Python's salted ``hash``)."""
    return keys[zlib.crc32(merchant_id.encode()) % len(keys)]


def entry_key(start: int, merchant_id: str, event_id: str) -> str:
    """The stored entry's key: merchant window and event id (the de-duplication key)."""
    return f"{start}{SEP}{merchant_id}{SEP}{event_id}"


def entry_merchant(key: str) -> str:
    """The merchant of a stored entry's key."""
    return key.split(SEP, 2)[1]


@dataclass(frozen=True, slots=True)
class Partial:
    """A shard's contribution to one MCC or global window (summed by :class:`ViewMerge`)."""

    key_kind: str
    key: str
    window_start: int
    totals: Totals


def _bump(sums: list[int], cents: int, decision: int, units: int | None) -> None:
    """Count one payment into running sums laid out like :class:`Totals` (in place: no copy)."""
    sums[0] += 1
    sums[1] += cents
    if decision:
        sums[1 + decision] += 1  # APPROVE, STEP_UP, BLOCK = 1, 2, 3 -> fields 2, 3, 4
    if units is not None:
        sums[5] += 1
        sums[6] += units


@dataclass(slots=True)
class _Open:
    """One open window in memory: running sums, payments counted before/after it fired, and what
    the merge stage has not been sent yet (views only)."""

    sums: list[int] = field(default_factory=lambda: [0] * 7)
    before: int = 0
    after: int = 0
    fired: bool = False
    unsent: list[int] = field(default_factory=lambda: [0] * 7)

    @property
    def revision(self) -> int:
        """Results emitted so far: one at the fire timer (if it had payments), one per update."""
        return (1 if self.fired and self.before else 0) + self.after

    @property
    def totals(self) -> Totals:
        """The window's totals."""
        return Totals(*self.sums)

    def take_unsent(self) -> Totals:
        """What the merge stage has not seen yet; afterwards nothing is pending."""
        pending = Totals(*self.unsent)
        self.unsent = [0] * 7
        return pending


@dataclass(frozen=True, slots=True)
class Added:
    """What :meth:`ShardWindows.add` did, and what the Flink stage must do about it."""

    status: str
    entry: tuple[str, Stored] | None = None
    results: tuple[WindowResult, ...] = ()
    partials: tuple[Partial, ...] = ()
    timers: tuple[int, ...] = ()
    too_late: TooLate | None = None


_DUPLICATE = Added(DUPLICATE)


@dataclass(frozen=True, slots=True)
class Fired:
    """What one timer did: merchant results, view partials, stored entries to delete."""

    results: tuple[WindowResult, ...]
    partials: tuple[Partial, ...]
    evicted: tuple[str, ...]


@dataclass
class ShardWindows:
    """The open windows of one shard (all three families), held in memory over stored entries."""

    params: WindowParams
    floor: int = NO_WATERMARK
    windows: dict[WindowId, _Open] = field(default_factory=dict)
    entries: set[str] = field(default_factory=set)
    fires: dict[int, list[WindowId]] = field(default_factory=dict)
    closes: dict[int, list[WindowId]] = field(default_factory=dict)
    evictions: dict[int, list[str]] = field(default_factory=dict)
    timers: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._specs = self.params.specs()
        self._sizes = tuple(spec.size_ms for spec in self._specs)
        self._lateness = self.params.allowed_lateness_ms

    def watermark(self, current: int) -> int:
        """The watermark to decide with: the timer service's, never below the restored floor."""
        return current if current > self.floor else self.floor

    def add(self, p: ScoredPayment, current_watermark: int) -> Added:
        """Count ``p`` (or refuse it as a duplicate or too late) at the given watermark."""
        return self.add_row(payment_row(p), current_watermark)

    def add_row(self, row: PaymentRow, current_watermark: int) -> Added:
        """:meth:`add` of a payment as a :data:`PaymentRow` (what the Flink stage receives)."""
        event_id, event_time, merchant_id, mcc, amount, decision, score = row
        watermark = current_watermark if current_watermark > self.floor else self.floor
        size = self._sizes[0]
        start = event_time - event_time % size
        closes = start + size - 1 + self._lateness
        if closes <= watermark:
            late = TooLate(
                KEY_MERCHANT,
                merchant_id,
                start,
                start + size,
                watermark,
                watermark - event_time,
                watermark - closes,
            )
            return Added(TOO_LATE, too_late=late)
        key = f"{start}{SEP}{merchant_id}{SEP}{event_id}"  # entry_key, inlined
        if key in self.entries:
            return _DUPLICATE
        units = None if score is None else round(score * SCORE_SCALE)
        cents = round(amount * AMOUNT_SCALE)
        stored: Stored = (event_time, mcc, cents, DECISION_CODES[decision], units, watermark)
        results, partials, timers = self._count(key, merchant_id, stored, emit=True)
        return Added(ADDED, (key, stored), results, partials, timers)

    def _count(
        self, key: str, merchant_id: str, stored: Stored, emit: bool
    ) -> tuple[tuple[WindowResult, ...], tuple[Partial, ...], tuple[int, ...]]:
        event_time, mcc, cents, decision, units, watermark = stored
        self.entries.add(key)
        results: list[WindowResult] = []
        partials: list[Partial] = []
        timers: list[int] = []
        last_close = NO_WATERMARK
        for kind, size, window_key in (
            (KEY_MERCHANT, self._sizes[0], merchant_id),
            (KEY_MCC, self._sizes[1], mcc),
            (KEY_GLOBAL, self._sizes[2], GLOBAL_KEY),
        ):
            start = event_time - event_time % size
            fire = start + size - 1
            close = fire + self._lateness
            wid = (kind, window_key, start)
            window = self.windows.get(wid)
            if window is None:
                window = self.windows[wid] = _Open()
                self.fires.setdefault(fire, []).append(wid)
                self.closes.setdefault(close, []).append(wid)
                for t in (fire, close):
                    if t not in self.timers:
                        self.timers.add(t)
                        timers.append(t)
            _bump(window.sums, cents, decision, units)
            if watermark >= fire:
                window.after += 1
                if emit:
                    if kind == KEY_MERCHANT:
                        results.append(self._result(wid, window))
                    else:
                        one = EMPTY.count(cents, decision, units)
                        partials.append(Partial(kind, window_key, start, one))
            else:
                window.before += 1
                if kind != KEY_MERCHANT:
                    _bump(window.unsent, cents, decision, units)
            last_close = max(last_close, close)
        self.evictions.setdefault(last_close, []).append(key)
        return tuple(results), tuple(partials), tuple(timers)

    def _result(self, wid: WindowId, window: _Open) -> WindowResult:
        kind, key, start = wid
        size = self._sizes[KEY_KINDS.index(kind)]
        return WindowResult(kind, key, start, start + size, window.revision, window.totals)

    def on_timer(self, timestamp: int) -> Fired:
        """Fire the windows due at ``timestamp``, evict the ones that close, free their entries."""
        self.floor = max(self.floor, timestamp)
        self.timers.discard(timestamp)
        results: list[WindowResult] = []
        partials: list[Partial] = []
        for wid in self.fires.pop(timestamp, ()):
            window = self.windows.get(wid)
            if window is None or window.fired:
                continue
            window.fired = True
            if not window.before:
                continue  # only late payments: each was emitted when it came
            if wid[0] == KEY_MERCHANT:
                results.append(self._result(wid, window))
            else:
                partials.append(Partial(wid[0], wid[1], wid[2], window.take_unsent()))
        for wid in self.closes.pop(timestamp, ()):
            self.windows.pop(wid, None)
        evicted = tuple(self.evictions.pop(timestamp, ()))
        self.entries.difference_update(evicted)
        return Fired(tuple(results), tuple(partials), evicted)

    def restore(self, stored: Iterable[tuple[str, Stored]], floor: int | None) -> ShardWindows:
        """Rebuild the memory from the stored entries and floor (after a start or a restore).

        A window whose fire time is at or below the floor has fired (its timer ran, and timers of
        one key run in time order); everything else follows from the stored watermarks.
        """
        self.floor = NO_WATERMARK if floor is None else floor
        for key, entry in stored:
            self._count(key, entry_merchant(key), tuple(entry), emit=False)  # type: ignore[arg-type]
        for fire, wids in self.fires.items():
            if fire <= self.floor:
                for wid in wids:
                    self.windows[wid].fired = True
                    self.windows[wid].unsent = [0] * 7
        self.timers = set(self.fires) | set(self.closes)  # Flink restored these timers itself
        return self


MergeEntry = tuple[Totals, int]
"""A view window in the merge stage: totals over all shards so far, revisions emitted."""


@dataclass(frozen=True)
class ViewMerge:
    """Sums the shards' :class:`Partial` s of one view family into revisioned window results."""

    spec: WindowSpec
    allowed_lateness_ms: int

    def fire_at(self, start: int) -> int:
        """When the window starting at ``start`` fires."""
        return start + self.spec.size_ms - 1

    def close_at(self, start: int) -> int:
        """When it closes and is evicted."""
        return self.fire_at(start) + self.allowed_lateness_ms

    def add(
        self, partial: Partial, entry: MergeEntry | None, watermark: int
    ) -> tuple[MergeEntry, WindowResult | None, tuple[int, ...]]:
        """Add a partial: the new entry, a result if the window has fired, timers if it is new."""
        start = partial.window_start
        fire, close = self.fire_at(start), self.close_at(start)
        timers: tuple[int, ...] = ()
        if entry is None:
            timers = (fire, close) if watermark < fire else (close,)
        totals, revision = (EMPTY, 0) if entry is None else entry
        totals = totals.plus(partial.totals)
        result = None
        if watermark >= fire:
            revision += 1
            result = self.result(partial.key, start, totals, revision)
        return (totals, revision), result, timers

    def result(self, key: str, start: int, totals: Totals, revision: int) -> WindowResult:
        """The window result of one revision."""
        return WindowResult(
            self.spec.key_kind, key, start, start + self.spec.size_ms, revision, totals
        )

    def starts_due(self, timestamp: int) -> tuple[int | None, int | None]:
        """(start of the window firing at ``timestamp``, start of the one closing), if aligned."""

        def aligned(start: int) -> int | None:
            return start if start == self.spec.start(start) else None

        fire = aligned(timestamp + 1 - self.spec.size_ms)
        close = aligned(timestamp + 1 - self.spec.size_ms - self.allowed_lateness_ms)
        return fire, close
