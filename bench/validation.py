"""Benchmark: transaction validations per second on one core (target: >= 200k/s).

Decodes a pool of distinct, valid transaction JSON documents (card-present and online) with
:func:`schemas.validation.decode_transaction`, best of several rounds, single thread.
Run from the repo root: ``python -m bench.validation``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import msgspec

from schemas.validation import decode_transaction

RESULTS = Path(__file__).parent / "results" / "validation.json"
POOL_SIZE = 10_000
ROUNDS = 7
TARGET_PER_S = 200_000
BASE_TIME_MS = 1_522_540_800_000


def _pool() -> list[bytes]:
    """Distinct valid documents, so no cache can help."""
    docs = []
    for i in range(POOL_SIZE):
        online = i % 3 == 0
        docs.append(
            msgspec.json.encode(
                {
                    "event_id": f"tx-bench-{i:09d}",
                    "event_time": BASE_TIME_MS + i * 1_000,
                    "schema_version": 1,
                    "source": "bench",
                    "correlation_id": f"tx-bench-{i:09d}",
                    "card_id": f"card-{i % 5_000:07d}",
                    "customer_id": f"cust-{i % 5_000:07d}",
                    "merchant_id": f"merch-{i % 700:06d}",
                    "terminal_id": f"term-{i % 1_000:06d}",
                    "mcc": "5411",
                    "amount": round(5 + (i % 997) * 0.37, 2),
                    "currency": "EUR",
                    "channel": "online" if online else "card_present",
                    "latitude": 50.8 + (i % 100) / 1_000,
                    "longitude": 4.3 + (i % 100) / 1_000,
                    "device_id": f"dev-{i:08d}" if online else None,
                    "country": "BE",
                }
            )
        )
    return docs


def measure() -> dict[str, Any]:
    """Best-of-``ROUNDS`` validations per second over the pool."""
    pool = _pool()
    best = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for raw in pool:
            decode_transaction(raw)
        best = max(best, len(pool) / (time.perf_counter() - start))
    return {
        "figures": {"validations_per_s": round(best)},
        "target": {"validations_per_s": TARGET_PER_S},
        "meets_target": best >= TARGET_PER_S,
        "setup": {
            "documents": POOL_SIZE,
            "rounds": ROUNDS,
            "mean_document_bytes": round(sum(map(len, pool)) / len(pool)),
            "python": platform.python_version(),
            "msgspec": msgspec.__version__,
            "machine": platform.machine(),
        },
    }


def main() -> None:
    """Run, print a table, write the JSON result."""
    result = measure()
    print(f"{'metric':<28}{'measured':>14}{'target':>14}")
    print(
        f"{'validations_per_s':<28}{result['figures']['validations_per_s']:>14,}{TARGET_PER_S:>14,}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
