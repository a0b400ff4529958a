"""Names shared by the scoring UDF and the decision step: decision classes, degraded modes, the
reason-code format and the score columns.

Deliberately free of heavy imports (no onnxruntime, pandas or pyflink.table): thread-mode
operators import it inside the TaskManager's embedded interpreter, where importing onnxruntime
hangs the operator's start.
"""

from __future__ import annotations

from scoring import stacking

CARD_FILE = "model_card.json"
"""A registry version's model card (``<registry>/<version>/model_card.json``)."""
APPROVE, STEP_UP, BLOCK = "approve", "step_up", "block"
SEVERITY = {APPROVE: 0, STEP_UP: 1, BLOCK: 2}
MODE_FULL, MODE_SHED, MODE_RULES = "full", "shed", "rules_only"
REASON_SEPARATOR = ";"
SCORE_PREFIX = "s_"
RESULT_NAMES = (
    "probability",
    "decision",
    "mode",
    "reasons",
    "model_version",
    *(SCORE_PREFIX + name for name in stacking.STACKED),
)


def split_reasons(text: str) -> list[str]:
    """Reason codes from the UDF's joined string.

    >>> split_reasons("rule:large_amount;feature:amount")
    ['rule:large_amount', 'feature:amount']
    """
    return [code for code in text.split(REASON_SEPARATOR) if code]
