"""The registry refuses what it must: tampered files, a foreign feature set, a missing champion;
and promote / rollback move the stages as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import ModelContractError, RegistryError
from riskstream.cli import main
from scoring.registry import (
    CARD_FILE,
    CHAMPION,
    RETIRED,
    champion,
    load_champion,
    load_version,
    read_card,
    versions,
)
from training import registry


def _edit_card(root: Path, folder: str, **changes: object) -> None:
    path = root / folder / CARD_FILE
    card = json.loads(path.read_text("utf-8"))
    card["feature_set"] |= changes
    path.write_text(json.dumps(card), "utf-8")


def test_tampered_onnx_file_is_refused(
    tmp_path: Path, fresh_registry: Callable[[Path], Path]
) -> None:
    root = fresh_registry(tmp_path)
    target = root / "v0001" / "gradient_boosting.onnx"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=r"gradient_boosting.onnx: checksum mismatch"):
        load_version(root, "v0001")


def test_card_with_another_feature_set_version_is_refused(
    tmp_path: Path, fresh_registry: Callable[[Path], Path]
) -> None:
    root = fresh_registry(tmp_path)
    _edit_card(root, "v0001", version=99)
    with pytest.raises(ModelContractError, match=r"feature set payment_features v99"):
        load_version(root, "v0001")
    with pytest.raises(ModelContractError):
        registry.promote(root, "v0001")


def test_card_with_another_feature_hash_is_refused(
    tmp_path: Path, fresh_registry: Callable[[Path], Path]
) -> None:
    root = fresh_registry(tmp_path)
    _edit_card(root, "v0001", spec_hash="0" * 64)
    with pytest.raises(ModelContractError, match="spec_hash differs"):
        load_version(root, "v0001")


def test_no_champion_and_unknown_version_are_clear_errors(
    tmp_path: Path, fresh_registry: Callable[[Path], Path]
) -> None:
    root = fresh_registry(tmp_path)
    with pytest.raises(RegistryError, match="no champion"):
        load_champion(root)
    with pytest.raises(RegistryError, match="no model version 'v0042'"):
        read_card(root, "v0042")


def test_promote_and_rollback(tmp_path: Path, fresh_registry: Callable[[Path], Path]) -> None:
    root = fresh_registry(tmp_path)
    second = root / "v0002"
    (root / "v0001").rename(second)
    fresh = fresh_registry(tmp_path / "again")
    (fresh / "v0001").rename(root / "v0001")
    card = json.loads((second / CARD_FILE).read_text("utf-8"))
    card["version"] = "v0002"
    (second / CARD_FILE).write_text(json.dumps(card), "utf-8")

    assert registry.promote(root, "v0001") is None
    assert load_champion(root).version == "v0001"
    assert registry.promote(root, "v0002") == "v0001"
    stages = {v: read_card(root, v)["stage"] for v in versions(root)}
    assert stages == {"v0001": RETIRED, "v0002": CHAMPION}
    assert registry.rollback(root) == ("v0002", "v0001")
    assert champion(root) == "v0001"
    assert read_card(root, "v0002")["stage"] == RETIRED
    with pytest.raises(RegistryError, match="only version ever promoted"):
        registry.rollback(root)


def test_models_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fresh_registry: Callable[[Path], Path]
) -> None:
    root = fresh_registry(tmp_path)
    assert main(["models", "--registry", str(root), "list"]) == 0
    assert "| v0001 | candidate |" in capsys.readouterr().out
    here = ["--set", "scoring.profile=handbook", "--set", "training.min_block_tail=1"]
    assert main([*here, "models", "--registry", str(root), "promote", "v0001"]) == 0
    assert main(["models", "--registry", str(root), "show"]) == 0
    shown = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert shown["stage"] == "champion"
    assert main(["models", "--registry", str(root), "rollback"]) == 2
    assert "only version ever promoted" in capsys.readouterr().err


def test_registry_holds_no_pickles(tmp_path: Path, fresh_registry: Callable[[Path], Path]) -> None:
    root = fresh_registry(tmp_path)
    suffixes = {p.suffix for p in (root / "v0001").iterdir()}
    assert suffixes == {".onnx", ".json", ".txt"}


def test_loader_imports_neither_sklearn_nor_skl2onnx_nor_pyflink() -> None:
    code = (
        "import sys, scoring.registry, scoring.scorer; "
        "print(sorted(m for m in ('sklearn', 'skl2onnx', 'pyflink') if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]"
