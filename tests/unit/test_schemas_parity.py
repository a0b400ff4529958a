"""Property test: msgspec records and JSON Schema files accept and reject the same documents.

Documents are generated from the JSON Schema files themselves (valid ones), then mutated: a field
removed, an unknown field added, a value replaced by one of another JSON type, or pushed just out of
range. Policy on both sides: unknown fields rejected, ``null`` only where declared.

One documented difference is excluded from generation: JSON Schema counts ``3.0`` as an integer
while msgspec (and the contract) require an integer token, so integral floats are never generated.
"""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import SchemaError
from schemas.validation import RECORD_TYPES, decode, json_schema

MAX_EXAMPLES = 300
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
NON_INTEGRAL_FLOATS = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda x: not x.is_integer()
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), NON_INTEGRAL_FLOATS, TEXT)
ANY_JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=5,
)
PATTERN_STRATEGIES = {
    "^[0-9]{4}$": st.from_regex(r"\A[0-9]{4}\Z"),
    "^[A-Z]{3}$": st.from_regex(r"\A[A-Z]{3}\Z"),
    "^[A-Z]{2}$": st.from_regex(r"\A[A-Z]{2}\Z"),
}


def _numbers(schema: dict[str, Any], integer: bool) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    ints = st.integers(
        min_value=None if low is None else math.ceil(low),
        max_value=None if high is None else math.floor(high),
    )
    if integer:
        return ints
    return ints | st.floats(low, high, allow_nan=False, allow_infinity=False).filter(
        lambda x: not x.is_integer()
    )


def valid_value(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for values matching the subset of JSON Schema our contracts use."""
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    options: list[st.SearchStrategy[Any]] = []
    for kind in kinds:
        if kind == "null":
            options.append(st.none())
        elif kind == "boolean":
            options.append(st.booleans())
        elif kind in ("integer", "number"):
            options.append(_numbers(schema, kind == "integer"))
        elif kind == "string" and "pattern" in schema:
            options.append(PATTERN_STRATEGIES[schema["pattern"]])
        elif kind == "string":
            options.append(
                st.text(
                    st.characters(codec="utf-8"),
                    min_size=schema.get("minLength", 0),
                    max_size=min(schema.get("maxLength", 20), 20),
                )
            )
        elif kind == "array":
            options.append(
                st.lists(valid_value(schema["items"]), max_size=schema.get("maxItems", 4))
            )
        elif kind == "object":
            options.append(valid_object(schema))
    return st.one_of(options)


def valid_object(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with every required property and some optional ones (or free-form maps)."""
    if "properties" not in schema:
        return st.dictionaries(TEXT, valid_value(schema["additionalProperties"]), max_size=4)
    required = {
        key: valid_value(sub)
        for key, sub in schema["properties"].items()
        if key in schema["required"]
    }
    optional = {
        key: valid_value(sub)
        for key, sub in schema["properties"].items()
        if key not in schema["required"]
    }
    return st.fixed_dictionaries(required, optional=optional)


def out_of_range(schema: dict[str, Any]) -> list[Any]:
    """Values just outside the declared bounds of one property."""
    bad: list[Any] = []
    if "minimum" in schema:
        bad += [schema["minimum"] - 1, schema["minimum"] - 0.5]
    if "maximum" in schema:
        bad += [schema["maximum"] + 1, schema["maximum"] + 0.5]
    if schema.get("minLength", 0) > 0:
        bad.append("")
    if "maxLength" in schema:
        bad.append("x" * (schema["maxLength"] + 1))
    if "enum" in schema:
        bad.append(str(schema["enum"][0]).upper() + "_")
    return bad


@st.composite
def documents(draw: st.DrawFn, record_type: str) -> dict[str, Any]:
    """A valid-looking document of ``record_type``, possibly mutated to break one rule."""
    schema = json_schema(record_type)
    doc: dict[str, Any] = draw(valid_object(schema))
    props = schema["properties"]
    mutation = draw(st.sampled_from(["none", "none", "drop", "extra", "retype", "range"]))
    key = draw(st.sampled_from(sorted(props)))
    if mutation == "drop":
        doc.pop(key, None)
    elif mutation == "extra":
        doc[draw(TEXT.filter(lambda k: k not in props))] = draw(ANY_JSON)
    elif mutation == "retype":
        doc[key] = draw(ANY_JSON)
    elif mutation == "range" and (bad := out_of_range(props[key])):
        doc[key] = draw(st.sampled_from(bad))
    return doc


def _msgspec_accepts(record_type: str, raw: bytes) -> bool:
    try:
        decode(record_type, raw)
    except SchemaError:
        return False
    return True


def _jsonschema_accepts(record_type: str, raw: bytes) -> bool:
    validator = jsonschema.Draft202012Validator(json_schema(record_type))
    return bool(validator.is_valid(json.loads(raw)))


@pytest.mark.parametrize("record_type", sorted(RECORD_TYPES))
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_msgspec_and_json_schema_agree(record_type: str, data: st.DataObject) -> None:
    doc = data.draw(documents(record_type))
    raw = json.dumps(doc, allow_nan=False).encode()
    assert _msgspec_accepts(record_type, raw) == _jsonschema_accepts(record_type, raw), raw


@pytest.mark.parametrize("record_type", sorted(RECORD_TYPES))
def test_schema_files_are_valid_draft_2020_12(record_type: str) -> None:
    schema = json_schema(record_type)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert {"event_id", "event_time", "schema_version", "source", "correlation_id"} <= set(
        schema["required"]
    )


def test_schema_files_match_struct_fields() -> None:
    for record_type, struct in RECORD_TYPES.items():
        assert tuple(json_schema(record_type)["properties"]) == struct.__struct_fields__


def _satisfy_cross_field_rules(record_type: str, doc: dict[str, Any]) -> dict[str, Any]:
    if record_type == "transaction" and doc["channel"] == "online" and doc["device_id"] is None:
        doc["device_id"] = "dev-1"
    if record_type == "label":
        doc["label_type"] = "chargeback" if doc["label"] == "fraud" else "confirmed_legitimate"
    return doc


@pytest.mark.parametrize("record_type", sorted(RECORD_TYPES))
@settings(max_examples=MAX_EXAMPLES // 3, deadline=None)
@given(data=st.data())
def test_unmutated_documents_are_accepted_by_both(record_type: str, data: st.DataObject) -> None:
    doc = data.draw(valid_object(json_schema(record_type)))
    raw = json.dumps(_satisfy_cross_field_rules(record_type, doc), allow_nan=False).encode()
    assert _msgspec_accepts(record_type, raw), raw
    assert _jsonschema_accepts(record_type, raw), raw
