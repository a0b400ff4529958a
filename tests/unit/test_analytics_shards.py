"""The sharded layout gives exactly the results of the per-key state machine, also across restores.

A small driver plays Flink: timers fire in time order when the watermark passes them (the shard
stage's first, their partials reach the merge stage before the watermark does), then the element
is processed. The reference is :class:`KeyWindows` per merchant and per view key (the semantics
the job had with one pickled value per key), driven the same way.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterable

from udfs.analytics.records import ScoredPayment
from udfs.analytics.shards import (
    NO_WATERMARK,
    MergeEntry,
    Partial,
    ShardWindows,
    Stored,
    ViewMerge,
    key_group,
    shard_keys,
    shard_of,
)
from udfs.analytics.windows import (
    ADDED,
    DUPLICATE,
    KEY_MERCHANT,
    TOO_LATE,
    KeyWindows,
    WindowParams,
    WindowResult,
)

T0 = 1_767_225_600_000
MIN = 60_000
PARAMS = WindowParams()
DECISIONS = (None, "approve", "step_up", "block")

Emitted = list[tuple[str, object]]


def payments(seed: int, n: int) -> list[tuple[ScoredPayment, int]]:
    """Payments with late, very late and duplicate deliveries, and the watermark each meets."""
    rng = random.Random(seed)
    out: list[tuple[ScoredPayment, int]] = []
    for i in range(n):
        t = T0 + rng.randrange(3 * 60 * MIN)
        decision = rng.choice(DECISIONS)
        score = None if decision is None else round(rng.random(), 6)
        p = ScoredPayment(
            f"e{i}", t, f"m{rng.randrange(7)}", f"{5411 + rng.randrange(3)}", 1 + i % 13,
            decision, score,
        )  # fmt: skip
        delay = rng.choice([0, 0, 0, 0, 2, 8, 30]) * MIN
        out.append((p, t + delay))
        if rng.random() < 0.05:
            out.append((p, t + delay + rng.choice([0, 5]) * MIN))  # a re-send
    out.sort(key=lambda pair: pair[1])
    watermark, arrivals = NO_WATERMARK, []
    for p, at in out:
        arrivals.append((p, watermark))
        watermark = max(watermark, at - 1)
    return arrivals


class Reference:
    """The previous layout: merchant KeyWindows with dedup, then view KeyWindows."""

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], KeyWindows] = {}
        self.out: Emitted = []

    def _windows(self, kind: str, key: str) -> KeyWindows:
        if (kind, key) not in self.keys:
            spec = PARAMS.spec(kind)
            self.keys[kind, key] = KeyWindows(
                spec, key, PARAMS.allowed_lateness_ms, dedup=kind == KEY_MERCHANT
            )
        return self.keys[kind, key]

    def advance(self, watermark: int) -> None:
        for kinds in ((KEY_MERCHANT,), ("mcc", "global")):
            for (kind, _), windows in sorted(self.keys.items()):
                if kind in kinds:
                    self.out += [("result", r) for r in windows.advance(watermark)]

    def process(self, p: ScoredPayment, watermark: int) -> None:
        outcome = self._windows(KEY_MERCHANT, p.merchant_id).add(p, watermark)
        if outcome.status == TOO_LATE:
            self.out.append(("late", p.event_id))
            return
        if outcome.status == DUPLICATE:
            return
        if outcome.result is not None:
            self.out.append(("result", outcome.result))
        for spec in PARAMS.specs()[1:]:
            view = self._windows(spec.key_kind, spec.key(p)).add(p, watermark)
            assert view.status == ADDED
            if view.result is not None:
                self.out.append(("result", view.result))


class Sharded:
    """The new layout, with the state a Flink checkpoint would hold kept explicitly."""

    def __init__(self, shards: int) -> None:
        self.keys = shard_keys(shards)
        self.memory: dict[int, ShardWindows] = {}
        self.stored: dict[int, dict[str, Stored]] = {k: {} for k in self.keys}
        self.floors: dict[int, int | None] = dict.fromkeys(self.keys)
        self.shard_timers: dict[int, set[int]] = {k: set() for k in self.keys}
        self.merges = {s.key_kind: ViewMerge(s, PARAMS.allowed_lateness_ms) for s in PARAMS.specs()}
        self.views: dict[str, dict[int, MergeEntry]] = {}
        self.view_timers: dict[str, set[int]] = {}
        self.view_floor = NO_WATERMARK
        self.out: Emitted = []

    def restart(self) -> None:
        """A failure: memory is gone, stored state (pickled, as in a checkpoint) survives."""
        self.memory = {}
        self.stored = pickle.loads(pickle.dumps(self.stored))

    def shard(self, key: int) -> ShardWindows:
        if key not in self.memory:
            stored = self.stored[key].items()
            self.memory[key] = ShardWindows(PARAMS).restore(stored, self.floors[key])
        return self.memory[key]

    def advance(self, watermark: int) -> None:
        partials: list[Partial] = []
        due = sorted((t, k) for k, ts in self.shard_timers.items() for t in ts if t <= watermark)
        for t, key in due:
            self.shard_timers[key].discard(t)
            fired = self.shard(key).on_timer(t)
            self.floors[key] = self.shard(key).floor
            for entry in fired.evicted:
                del self.stored[key][entry]
            self.out += [("result", r) for r in fired.results]
            partials += fired.partials
        for partial in partials:
            self.merge(partial, self.view_floor)
        self.view_floor = max(self.view_floor, watermark)
        for t, view in sorted((t, v) for v, ts in self.view_timers.items() for t in ts):
            if t > watermark:
                continue
            self.view_timers[view].discard(t)
            kind, _, view_key = view.partition("|")
            fire, close = self.merges[kind].starts_due(t)
            windows = self.views[view]
            if fire is not None and fire in windows and windows[fire][1] == 0:
                windows[fire] = (windows[fire][0], 1)
                self.out.append(
                    ("result", self.merges[kind].result(view_key, fire, windows[fire][0], 1))
                )
            if close is not None:
                windows.pop(close, None)

    def merge(self, partial: Partial, watermark: int) -> None:
        view = f"{partial.key_kind}|{partial.key}"
        windows = self.views.setdefault(view, {})
        entry, result, timers = self.merges[partial.key_kind].add(
            partial, windows.get(partial.window_start), watermark
        )
        windows[partial.window_start] = entry
        self.view_timers.setdefault(view, set()).update(timers)
        if result is not None:
            self.out.append(("result", result))

    def process(self, p: ScoredPayment, watermark: int) -> None:
        key = shard_of(p.merchant_id, self.keys)
        added = self.shard(key).add(p, watermark)
        if added.status == TOO_LATE:
            self.out.append(("late", p.event_id))
            return
        if added.status == DUPLICATE:
            return
        assert added.entry is not None
        self.stored[key][added.entry[0]] = added.entry[1]
        self.shard_timers[key].update(added.timers)
        self.out += [("result", r) for r in added.results]
        for partial in added.partials:
            self.merge(partial, max(self.view_floor, watermark))


def run(driver: Reference | Sharded, arrivals: Iterable[tuple[ScoredPayment, int]]) -> Emitted:
    for p, watermark in arrivals:
        driver.advance(watermark)
        driver.process(p, watermark)
    driver.advance(2**62)
    return driver.out


def canonical(out: Emitted) -> list[tuple[str, object]]:
    """Results per window in emission order (interleaving across windows may differ)."""

    def key(item: tuple[str, object]) -> tuple[object, ...]:
        value = item[1]
        if isinstance(value, WindowResult):
            return (item[0], value.window_id, value.revision)
        return (item[0], value)

    return sorted(out, key=lambda item: str(key(item)))


def test_sharded_results_equal_the_per_key_state_machine() -> None:
    arrivals = payments(seed=5, n=3000)
    expected = run(Reference(), arrivals)
    assert any(isinstance(v, WindowResult) and v.revision > 1 for _, v in expected)
    assert any(kind == "late" for kind, _ in expected)
    for shards in (1, 2, 5):
        assert canonical(run(Sharded(shards), arrivals)) == canonical(expected), shards


def test_a_restore_anywhere_changes_nothing() -> None:
    arrivals = payments(seed=8, n=1500)
    expected = canonical(run(Reference(), arrivals))
    rng = random.Random(2)
    restarts = set(rng.sample(range(len(arrivals)), 25))
    driver = Sharded(3)
    for i, (p, watermark) in enumerate(arrivals):
        driver.advance(watermark)
        if i in restarts:
            driver.restart()
        driver.process(p, watermark)
    driver.advance(2**62)
    assert canonical(driver.out) == expected


def test_after_a_restore_the_floor_keeps_closed_windows_closed() -> None:
    driver = Sharded(1)
    p = ScoredPayment("e1", T0 + 1_000, "m1", "5411", 5.0)
    driver.process(p, NO_WATERMARK)
    driver.advance(T0 + 2 * 60 * MIN)  # fired and closed, every view too
    driver.restart()
    driver.process(ScoredPayment("e2", T0 + 2_000, "m1", "5411", 1.0), NO_WATERMARK)
    assert driver.out[-1] == ("late", "e2")  # the timer service's watermark is MIN again
    assert all(not stored for stored in driver.stored.values())  # evicted by event time


def test_state_is_one_entry_per_open_payment_and_bounded_by_event_time() -> None:
    driver = Sharded(2)
    run(driver, payments(seed=1, n=800))
    assert all(not stored for stored in driver.stored.values())
    assert all(not shard.windows and not shard.entries for shard in driver.memory.values())
    assert all(not windows for windows in driver.views.values())


def test_shard_keys_spread_over_key_groups_and_merchants_hash_stably() -> None:
    keys = shard_keys(4)
    assert [key_group(k) for k in keys] == [0, 32, 64, 96]
    assert len(set(shard_keys(8))) == 8
    # Checked against KeyGroupRangeAssignment.assignToKeyGroup(Integer, 128) of flink-dist 2.2.1.
    assert [key_group(k) for k in (0, 1, 2, 312, 84)] == [94, 86, 127, 0, 64]
    assert shard_of("m1", keys) == shard_of("m1", shard_keys(4))
    assert {shard_of(f"m{i}", keys) for i in range(100)} == set(keys)
