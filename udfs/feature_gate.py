"""The scoring stage's gate on enriched features: refuse, as dead letters, records computed for
another feature set than the loaded model was trained on.

Each enriched record carries the hash of the feature-set spec that computed it
(:data:`features.output.FEATURE_SET_HASH`); a model card records the hash it was trained on.
A record whose hash differs is not scored (its numbers would be read under the wrong names or
windows): it goes to the dead-letter topic with the reason and field ``$.feature_set_hash``.
Everything else becomes a row of :func:`udfs.feature_rows.row_type` for the Table API.

A light module, like :mod:`udfs.feature_rows`: it runs in thread mode in the TaskManager's
embedded interpreter, so it never imports the scoring stack (onnxruntime, pandas).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import OutputTag, ProcessFunction

from features import output
from features.output import EnrichedFeatures
from udfs.feature_rows import record_row
from udfs.ingest import dead_letter_json

REFUSED_TAG = OutputTag("refused-features", Types.STRING())
"""Dead letters (JSON) of enriched records the model cannot score."""
RECORD_TYPE = "features"
HASH_FIELD = "$.feature_set_hash"


def hash_mismatch(found: str, expected: str, model_version: str) -> str | None:
    """Why a record of feature-set hash ``found`` cannot be scored by model ``model_version``,
    trained on hash ``expected``; None when they agree.

    >>> hash_mismatch("abc", "abc", "v0001") is None
    True
    >>> hash_mismatch("0123456789abcdef", "fedcba9876543210", "v0001")[:67]
    'feature-set hash mismatch: the record has 0123456789ab, model v0001'
    """
    if found == expected:
        return None
    return (
        f"feature-set hash mismatch: the record has {found[:12]}, model {model_version} was "
        f"trained on {expected[:12]}; recompute the features with the model's code or deploy a "
        "model trained on this feature set"
    )


class FeatureRows(ProcessFunction):  # type: ignore[misc]
    """Enriched record (JSON) -> row for scoring, or a dead letter on :data:`REFUSED_TAG`."""

    def __init__(
        self,
        expected_hash: str,
        model_version: str,
        *,
        topic: str,
        source: str,
        max_bytes: int,
    ) -> None:
        self.expected_hash = expected_hash
        self.model_version = model_version
        self.topic = topic
        self.source = source
        self.max_bytes = max_bytes

    def process_element(
        self, value: str | bytes | EnrichedFeatures, ctx: ProcessFunction.Context
    ) -> Iterator[Any]:
        """The row of ``value``, or its dead letter when its hash or its JSON is wrong.

        ``value`` is the enriched record's JSON, or the record itself when the feature stage
        hands it over as a structure (then nothing is decoded here)."""
        record: EnrichedFeatures | None = None
        field: str | None = None
        try:
            record = value if isinstance(value, EnrichedFeatures) else output.decode(value)
            reason = hash_mismatch(record.feature_set_hash, self.expected_hash, self.model_version)
            if reason is None:
                yield record_row(record)
                return
            field = HASH_FIELD
        except (ValueError, KeyError) as exc:  # msgspec errors are ValueErrors; KeyError: a name
            reason = f"enriched features: {type(exc).__name__}: {exc}"
        yield (
            REFUSED_TAG,
            dead_letter_json(
                output.encode(value).decode() if isinstance(value, EnrichedFeatures) else value,
                record_type=RECORD_TYPE,
                reason=reason,
                field=field,
                topic=self.topic,
                source=self.source,
                record_time=record.event_time if record is not None else None,
                max_bytes=self.max_bytes,
            ),
        )
