"""Conversion parity for every model class we ship (skl2onnx once failed on HistGradientBoosting),
and the parity gate that fails a training run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from core.errors import ModelContractError
from schemas.feature_set import PAYMENT_FEATURES
from training import export, models

ROWS = 2_000
SEED = 11


def _data() -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    gen = np.random.default_rng(SEED)
    n = len(PAYMENT_FEATURES.names)
    x = gen.normal(size=(ROWS, n)).astype(np.float32)
    x[:, 0] = np.round(gen.exponential(60.0, ROWS), 2).astype(np.float32)  # amounts, 2 decimals
    y = ((x[:, 0] > 150) | (x[:, 1] + x[:, 2] > 2.5)).astype(np.int64)
    return x, y


@pytest.mark.parametrize("name", models.LEARNED)
def test_conversion_parity(name: str) -> None:
    x, y = _data()
    model = models.fit(name, x, y, SEED)
    blob = export.to_onnx(name, model, PAYMENT_FEATURES.names, PAYMENT_FEATURES)
    found = export.onnx_score(name, export.session(blob), x)
    gap = export.check_parity(name, models.predict(name, model, x), found)
    assert gap <= export.PARITY_TOLERANCE


def test_ensemble_conversion_parity_and_metadata() -> None:
    x, y = _data()
    scores = {
        name: models.predict(name, models.fit(name, x, y, SEED), x) for name in models.LEARNED
    }
    scores[models.RULES] = (x[:, 0] > 200).astype(np.float64) * 0.6
    scores |= models.derived_scores(x, PAYMENT_FEATURES.names)
    stack = models.stack_inputs(scores)
    stacker = models.stacker(SEED).fit(stack, y)
    blob = export.to_onnx(
        models.ENSEMBLE, stacker, models.STACKED, PAYMENT_FEATURES, export.STACK_INPUT_NAME
    )
    found = export.onnx_score(models.ENSEMBLE, export.session(blob), stack)
    assert export.check_parity(models.ENSEMBLE, stacker.predict_proba(stack)[:, 1], found) <= 1e-5
    props = {p.key: p.value for p in onnx.load_from_string(blob).metadata_props}
    assert props["riskstream.feature_set_hash"] == PAYMENT_FEATURES.spec_hash()
    assert props["riskstream.feature_set_version"] == str(PAYMENT_FEATURES.version)
    opsets = {o.domain: o.version for o in onnx.load_from_string(blob).opset_import}
    assert opsets.get("", opsets.get("ai.onnx")) == export.TARGET_OPSET[""]


def test_onnx_input_is_float32_over_the_ordered_features() -> None:
    x, y = _data()
    model = models.fit(models.LOGISTIC, x, y, SEED)
    sess = export.session(
        export.to_onnx(models.LOGISTIC, model, PAYMENT_FEATURES.names, PAYMENT_FEATURES)
    )
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type, inp.shape[1]) == (
        export.INPUT_NAME,
        "tensor(float)",
        len(PAYMENT_FEATURES.names),
    )
    assert [o.name for o in sess.get_outputs()] == ["label", export.PROBABILITIES]


def test_parity_gate_fails_the_run() -> None:
    with pytest.raises(
        ModelContractError, match=r"max \|p_sklearn - p_onnx\| <= 1e-05, found 0.002"
    ):
        export.check_parity("mlp", np.array([0.5, 0.1]), np.array([0.5, 0.102]))
