"""One place for each default: the shipped YAML and the docs reference are generated from the
settings model, every field is documented, and the shipped file loads to the model's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel

from core.config import Settings, field_type, iter_fields, load_settings, to_document
from core.config_doc import BEGIN, DOCS_FILE, END, render_yaml, shipped_yaml, with_reference

ROOT = Path(__file__).resolve().parents[2]
STALE = "stale: run `make config-docs` and commit the result"


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """``model`` and every model its fields hold (sections, topic and rule entries)."""
    found = [model]
    for name in model.model_fields:
        kind = field_type(model, name)
        for candidate in (kind, *get_args(kind)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found += _models(candidate)
    return found


def test_the_shipped_yaml_is_generated_from_the_model() -> None:
    assert shipped_yaml() == render_yaml(), f"core/resources/riskstream.yaml is {STALE}"


def test_the_docs_reference_is_generated_from_the_model() -> None:
    document = (ROOT / DOCS_FILE).read_text("utf-8")
    assert BEGIN in document and END in document
    assert document == with_reference(document), f"{DOCS_FILE} reference is {STALE}"


def test_every_field_and_section_is_documented() -> None:
    undocumented = [
        f"{model.__name__}.{name}"
        for model in _models(Settings)
        for name, info in model.model_fields.items()
        if not (info.description or "").strip()
        and not (model is Settings and (field_type(model, name).__doc__ or "").strip())
    ]
    assert undocumented == []
    yaml_text = shipped_yaml()
    for path, _ in iter_fields():
        section, key = path.split(".")
        assert f"  {key}:" in yaml_text or f"# {key}:" in yaml_text, path
        assert f"`{section}.{key}`" in (ROOT / DOCS_FILE).read_text("utf-8"), path


def test_the_shipped_yaml_loads_to_the_defaults(tmp_path: Path) -> None:
    shipped = tmp_path / "riskstream.yaml"
    shipped.write_text(shipped_yaml())
    assert load_settings(shipped, environ={}) == Settings.model_validate({})
    document = yaml.safe_load(shipped_yaml())
    assert document == to_document(Settings.model_validate({}))


def test_effective_settings_render_and_load_back(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"kafka": {"port": 19092, "bootstrap_servers": "a:1,b:2"}},
        environ={"RISKSTREAM__SCORING__FAST_MODELS": "mlp"},
    )
    shown = tmp_path / "shown.yaml"
    shown.write_text(render_yaml(settings, comments=False))
    assert load_settings(shown, environ={}) == settings
