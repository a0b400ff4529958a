"""Everything the analytics job ships to Flink workers survives a pickle round trip."""

from __future__ import annotations

import pickle

import cloudpickle  # type: ignore[import-untyped]

from udfs.analytics.records import ScoredPayment, unscored
from udfs.analytics.stages import MerchantStage, ViewStage, merchant_key, routed_key
from udfs.analytics.windows import KeyWindows, WindowParams

PAYMENT = ScoredPayment("e1", 1_767_225_600_000, "m1", "5411", 12.5, "step_up", 0.7)


def test_functions_and_records_round_trip() -> None:
    params = WindowParams(allowed_lateness_ms=1234)
    for stage in (MerchantStage(params, "src"), ViewStage(params, "src")):
        copy = cloudpickle.loads(cloudpickle.dumps(stage))
        assert (copy.params, copy.source) == (params, "src")
    for selector in (merchant_key, routed_key, unscored):
        assert cloudpickle.loads(cloudpickle.dumps(selector)) is selector
    assert pickle.loads(pickle.dumps(PAYMENT)) == PAYMENT
    windows = KeyWindows(params.spec("merchant"), "m1", 1234, dedup=True)
    windows.add(PAYMENT, -1)
    assert pickle.loads(pickle.dumps(windows.snapshot())) == windows.snapshot()
    assert merchant_key(PAYMENT) == "m1" and routed_key(("mcc|5411", PAYMENT)) == "mcc|5411"
