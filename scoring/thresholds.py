"""Decision thresholds (approve / step_up / block) on the ensemble probability: numpy only, so the
scoring job applies exactly the thresholds training chose."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds on the ensemble probability: block >= block, step_up >= step_up."""

    step_up: float
    block: float

    def to_dict(self) -> dict[str, float]:
        """The thresholds as the model card stores them."""
        return {"step_up": self.step_up, "block": self.block}

    def decide(self, p: F64) -> npt.NDArray[np.object_]:
        """approve / step_up / block for each probability."""
        out = np.full(len(p), "approve", dtype=object)
        out[p >= self.step_up] = "step_up"
        out[p >= self.block] = "block"
        return out


def choose_thresholds(scores: F64, block_rate: float, step_up_rate: float) -> Thresholds:
    """Thresholds that block the top ``block_rate`` share and step up the next ``step_up_rate``.

    Chosen on training (out-of-fold) scores, never on the test set.

    >>> t = choose_thresholds(np.linspace(0.0, 1.0, 1001), 0.01, 0.04)
    >>> round(t.step_up, 3), round(t.block, 3)
    (0.95, 0.99)
    """
    block = float(np.quantile(scores, 1.0 - block_rate))
    step_up = float(np.quantile(scores, 1.0 - block_rate - step_up_rate))
    return Thresholds(step_up=min(step_up, block), block=block)
