"""Tumbling event-time windows with allowed lateness, revisions and eviction: the pure logic.

Written once and used by the Flink stages (:mod:`udfs.analytics.stages`) and by the offline
computation (:mod:`udfs.analytics.offline`). Semantics, per key and window ``[start, end)``:

* **fire**: when the watermark reaches ``end - 1`` the window emits revision 1;
* **update**: an event for a window that already fired, arriving while the watermark is below
  ``end - 1 + allowed_lateness``, is added and the window emits its totals again with revision + 1
  (the new revision supersedes, i.e. retracts, every earlier one);
* **too late**: an event whose window has passed ``end - 1 + allowed_lateness`` is not added; the
  caller routes it to the late output. That is also when the window's state is evicted, so state
  lives exactly ``size + allowed_lateness`` of event time (the same rule as Flink's own windows).

Sums are integers (amount in cents, score in 1e-12 units), so totals never depend on arrival order:
every revision and the offline computation are bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.config import AnalyticsSettings
from core.errors import ConfigError
from udfs.analytics.records import ScoredPayment

KEY_MERCHANT = "merchant"
KEY_MCC = "mcc"
KEY_GLOBAL = "global"
KEY_KINDS = (KEY_MERCHANT, KEY_MCC, KEY_GLOBAL)
GLOBAL_KEY = "all"
AMOUNT_SCALE = 100
SCORE_SCALE = 10**12

WindowId = tuple[str, str, int]
"""(key kind, key, window start) names one window."""

UNSCORED, APPROVE, STEP_UP, BLOCK = 0, 1, 2, 3
DECISION_CODES = {None: UNSCORED, "approve": APPROVE, "step_up": STEP_UP, "block": BLOCK}
"""A payment's decision as a small integer (what the window state stores)."""


def scaled(p: ScoredPayment) -> tuple[int, int, int | None]:
    """``p``'s amount in cents, decision code and score in 1e-12 units (``None``: not scored).

    >>> scaled(ScoredPayment("e", 0, "m", "5411", 12.345, "block", 0.5))
    (1234, 3, 500000000000)
    """
    score = None if p.score is None else round(p.score * SCORE_SCALE)
    return round(p.amount * AMOUNT_SCALE), DECISION_CODES[p.decision], score


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """One family of tumbling windows: what keys it and how long each window is."""

    key_kind: str
    size_ms: int

    def __post_init__(self) -> None:
        if self.key_kind not in KEY_KINDS:
            raise ConfigError(
                f"window key kind: expected one of {KEY_KINDS}, found {self.key_kind}"
            )
        if self.size_ms <= 0:
            raise ConfigError(f"{self.key_kind} window size: expected > 0 ms, found {self.size_ms}")

    def start(self, event_time: int) -> int:
        """Start of the window holding ``event_time``.

        >>> WindowSpec("global", 60_000).start(125_000)
        120000
        """
        return event_time - event_time % self.size_ms

    def key(self, payment: ScoredPayment) -> str:
        """The key of ``payment`` in this family."""
        if self.key_kind == KEY_MERCHANT:
            return payment.merchant_id
        if self.key_kind == KEY_MCC:
            return payment.mcc
        return GLOBAL_KEY

    def window_id(self, payment: ScoredPayment) -> WindowId:
        """The window ``payment`` belongs to in this family."""
        return self.key_kind, self.key(payment), self.start(payment.event_time)


_DEFAULTS = AnalyticsSettings()
"""The defaults live in the settings model (``analytics`` section), nowhere else."""


@dataclass(frozen=True)
class WindowParams:
    """The three views and the allowed lateness (from the ``analytics`` settings)."""

    merchant_window_ms: int = _DEFAULTS.merchant_window_ms
    mcc_window_ms: int = _DEFAULTS.mcc_window_ms
    global_window_ms: int = _DEFAULTS.global_window_ms
    allowed_lateness_ms: int = _DEFAULTS.allowed_lateness_ms

    @classmethod
    def from_settings(cls, analytics: AnalyticsSettings) -> WindowParams:
        """The parameters of the ``analytics`` settings section."""
        return cls(
            merchant_window_ms=analytics.merchant_window_ms,
            mcc_window_ms=analytics.mcc_window_ms,
            global_window_ms=analytics.global_window_ms,
            allowed_lateness_ms=analytics.allowed_lateness_ms,
        )

    def __post_init__(self) -> None:
        if self.allowed_lateness_ms < 0:
            raise ConfigError(
                f"analytics.allowed_lateness_ms: expected >= 0, found {self.allowed_lateness_ms}"
            )
        self.specs()  # validates the sizes
        if self.merchant_window_ms > min(self.mcc_window_ms, self.global_window_ms):
            # The merchant stage decides "too late" for every view; a view with shorter windows
            # than the merchant's could close before it and count an event only partly.
            raise ConfigError(
                "analytics.merchant_window_ms: expected at most the mcc and global window sizes, "
                f"found {self.merchant_window_ms} > "
                f"{min(self.mcc_window_ms, self.global_window_ms)}"
            )

    def specs(self) -> tuple[WindowSpec, WindowSpec, WindowSpec]:
        """Merchant, MCC and global window families, in that order."""
        return (
            WindowSpec(KEY_MERCHANT, self.merchant_window_ms),
            WindowSpec(KEY_MCC, self.mcc_window_ms),
            WindowSpec(KEY_GLOBAL, self.global_window_ms),
        )

    def spec(self, key_kind: str) -> WindowSpec:
        """The family of ``key_kind``."""
        return self.specs()[KEY_KINDS.index(key_kind)]


@dataclass(frozen=True, slots=True)
class Totals:
    """The aggregates of one window; ``add`` returns a new value."""

    transactions: int = 0
    amount_cents: int = 0
    approve: int = 0
    step_up: int = 0
    block: int = 0
    scored: int = 0
    score_units: int = 0

    def add(self, p: ScoredPayment) -> Totals:
        """These totals with ``p`` counted."""
        return self.count(*scaled(p))

    def count(self, amount_cents: int, decision: int, score_units: int | None) -> Totals:
        """These totals with one payment counted, in the integer units :func:`scaled` gives."""
        return Totals(
            self.transactions + 1,
            self.amount_cents + amount_cents,
            self.approve + (decision == APPROVE),
            self.step_up + (decision == STEP_UP),
            self.block + (decision == BLOCK),
            self.scored + (score_units is not None),
            self.score_units + (score_units or 0),
        )

    def plus(self, other: Totals) -> Totals:
        """The sum of two windows' (or two shards') totals."""
        return Totals(
            self.transactions + other.transactions,
            self.amount_cents + other.amount_cents,
            self.approve + other.approve,
            self.step_up + other.step_up,
            self.block + other.block,
            self.scored + other.scored,
            self.score_units + other.score_units,
        )

    @property
    def unscored(self) -> int:
        """Transactions without a decision (counted, in no class)."""
        return self.transactions - self.approve - self.step_up - self.block

    @property
    def amount_sum(self) -> float:
        """Total amount."""
        return self.amount_cents / AMOUNT_SCALE

    @property
    def mean_score(self) -> float | None:
        """Mean score of the scored transactions; ``None`` when none was scored."""
        return self.score_units / self.scored / SCORE_SCALE if self.scored else None


@dataclass(frozen=True, slots=True)
class WindowState:
    """One open window: totals, how many results it has emitted, and the ids it counted."""

    totals: Totals = Totals()
    revision: int = 0
    event_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One (re)firing of a window; a higher revision supersedes the lower ones."""

    key_kind: str
    key: str
    window_start: int
    window_end: int
    revision: int
    totals: Totals

    @property
    def window_id(self) -> WindowId:
        """Which window this result is about."""
        return self.key_kind, self.key, self.window_start


@dataclass(frozen=True, slots=True)
class TooLate:
    """Why an event was not counted: its window closed before it arrived."""

    key_kind: str
    key: str
    window_start: int
    window_end: int
    watermark: int
    late_by_ms: int
    closed_since_ms: int


ADDED = "added"
DUPLICATE = "duplicate"
TOO_LATE = "too_late"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :meth:`KeyWindows.add` did: status, a result to emit now, timers to register."""

    status: str
    result: WindowResult | None = None
    timers: tuple[int, ...] = ()
    too_late: TooLate | None = None


@dataclass
class KeyWindows:
    """The open windows of one key (the one state blob per key), keyed by window start.

    ``dedup`` makes a window count each ``event_id`` once (used where all copies of an event meet:
    the merchant windows; downstream views only see what the merchant windows counted).
    """

    spec: WindowSpec
    key: str
    allowed_lateness_ms: int
    dedup: bool = False
    windows: dict[int, WindowState] = field(default_factory=dict)

    def fire_at(self, start: int) -> int:
        """Event time at which the window starting at ``start`` first fires."""
        return start + self.spec.size_ms - 1

    def close_at(self, start: int) -> int:
        """Event time at which the window closes for good and its state is evicted."""
        return self.fire_at(start) + self.allowed_lateness_ms

    def add(self, p: ScoredPayment, watermark: int) -> Outcome:
        """Count ``p`` given the current watermark; see the module doc for the rules."""
        start = self.spec.start(p.event_time)
        end = start + self.spec.size_ms
        if self.close_at(start) <= watermark:
            late = TooLate(
                self.spec.key_kind,
                self.key,
                start,
                end,
                watermark,
                watermark - p.event_time,
                watermark - self.close_at(start),
            )
            return Outcome(TOO_LATE, too_late=late)
        window = self.windows.get(start)
        timers: tuple[int, ...] = ()
        if window is None:
            window = WindowState()
            fire = self.fire_at(start)
            timers = (fire, self.close_at(start)) if watermark < fire else (self.close_at(start),)
        if self.dedup and p.event_id in window.event_ids:
            return Outcome(DUPLICATE)
        window = replace(
            window,
            totals=window.totals.add(p),
            event_ids=window.event_ids | {p.event_id} if self.dedup else window.event_ids,
        )
        result = None
        if watermark >= self.fire_at(start):
            window = replace(window, revision=window.revision + 1)
            result = self._result(start, window)
        self.windows[start] = window
        return Outcome(ADDED, result, timers)

    def advance(self, watermark: int) -> list[WindowResult]:
        """Fire the windows the watermark completed and evict the ones it closed."""
        results: list[WindowResult] = []
        for start in sorted(self.windows):
            window = self.windows[start]
            if window.revision == 0 and self.fire_at(start) <= watermark:
                window = replace(window, revision=1)
                self.windows[start] = window
                results.append(self._result(start, window))
            if self.close_at(start) <= watermark:
                del self.windows[start]
        return results

    def _result(self, start: int, window: WindowState) -> WindowResult:
        end = start + self.spec.size_ms
        return WindowResult(
            self.spec.key_kind, self.key, start, end, window.revision, window.totals
        )

    def snapshot(self) -> dict[int, WindowState] | None:
        """The state to store (``None`` when no window is open, so the state can be cleared)."""
        return dict(self.windows) if self.windows else None

    def load(self, windows: dict[int, WindowState] | None) -> KeyWindows:
        """Replace the open windows with a stored snapshot."""
        self.windows = dict(windows) if windows else {}
        return self
