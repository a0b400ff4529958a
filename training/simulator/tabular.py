"""A synthetic table of the ULB credit-card set's shape: ``Time, V1..V28, Amount, Class``.

The real set (284,807 card payments over two days, 492 frauds, PCA components V1..V28) cannot be
shipped here, so tests and ``bench/tabular.py`` use a table with the same columns, scale and
class balance, generated from a seed: V1..V28 are independent normal components with decreasing
variance (as PCA components are); a fraud shifts a few of them (V14, V12, V10, V17, V4, V11
most, as in the real set) by a random strength; a share of frauds is marked only in a non-linear
way (two components both large in magnitude, so trees and linear models differ) and a share not at
all; Amount is log-normal; Time is in seconds from the first payment, with a day/night rhythm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ULB_ROWS = 284_807
ULB_FRAUDS = 492
SECONDS = 172_800
COMPONENTS = 28
SHIFTS = {14: -3.0, 12: -2.2, 10: -1.8, 17: -2.2, 4: 1.8, 11: 1.5, 3: -1.2, 7: -1.2}
"""Component (1-based) -> shift of its mean, in units of its standard deviation, for a fraud."""
NONLINEAR_SHARE = 0.3
"""Share of frauds marked only by V2 and V5 both being large in magnitude (any sign)."""
HIDDEN_SHARE = 0.1
"""Share of frauds that look like genuine payments (no model can find them)."""


def ulb_like(rows: int = ULB_ROWS, frauds: int = ULB_FRAUDS, seed: int = 0) -> pd.DataFrame:
    """The table, sorted by ``Time``; deterministic per ``(rows, frauds, seed)``."""
    gen = np.random.default_rng(seed)
    hour_weight = 0.35 + 0.65 * np.sin(np.linspace(0.0, np.pi, 24)) ** 2
    hours = gen.choice(48, size=rows, p=np.tile(hour_weight, 2) / np.tile(hour_weight, 2).sum())
    time = np.sort(hours * 3_600 + gen.integers(0, 3_600, rows)).astype(np.float64)
    scale = np.linspace(2.0, 0.3, COMPONENTS)
    v = gen.normal(size=(rows, COMPONENTS)) * scale
    y = np.zeros(rows, dtype=np.int64)
    fraud = gen.choice(rows, size=frauds, replace=False)
    y[fraud] = 1
    kind = gen.random(frauds)
    nonlinear = fraud[kind < NONLINEAR_SHARE]
    linear = fraud[kind >= NONLINEAR_SHARE + HIDDEN_SHARE]
    for component, shift in SHIFTS.items():
        j = component - 1
        strength = gen.uniform(0.2, 1.6, len(linear))
        v[linear, j] += shift * scale[j] * strength
    for j in (1, 4):
        v[nonlinear, j] = (
            gen.choice([-1.0, 1.0], len(nonlinear))
            * gen.uniform(2.5, 4.0, len(nonlinear))
            * scale[j]
        )
    amount = np.round(np.exp(gen.normal(3.0, 1.3, rows)), 2)
    amount[fraud] = np.round(np.exp(gen.normal(3.5, 1.8, frauds)), 2)
    frame = pd.DataFrame({"Time": time})
    for j in range(COMPONENTS):
        frame[f"V{j + 1}"] = v[:, j]
    frame["Amount"] = amount
    frame["Class"] = y
    return frame
