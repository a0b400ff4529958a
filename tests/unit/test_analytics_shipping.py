"""Everything the analytics job ships to Flink workers survives a pickle round trip."""

from __future__ import annotations

import pickle

import cloudpickle  # type: ignore[import-untyped]

from udfs.analytics.records import ScoredPayment, payment_row, row_payment, unscored, unscored_row
from udfs.analytics.shards import Partial, ShardWindows
from udfs.analytics.stages import MergeStage, ShardKey, ShardStage, view_key
from udfs.analytics.windows import Totals, WindowParams

PAYMENT = ScoredPayment("e1", 1_767_225_600_000, "m1", "5411", 12.5, "step_up", 0.7)


def test_functions_and_records_round_trip() -> None:
    params = WindowParams(allowed_lateness_ms=1234)
    for stage in (ShardStage(params, "src", ShardKey(2)), MergeStage(params, "src")):
        copy = cloudpickle.loads(cloudpickle.dumps(stage))
        assert (copy.params, copy.source) == (params, "src")
    for selector in (view_key, unscored, unscored_row, payment_row):
        assert cloudpickle.loads(cloudpickle.dumps(selector)) is selector
    key = ShardKey(4)
    row = payment_row(PAYMENT)
    assert cloudpickle.loads(cloudpickle.dumps(key))(row) == key(row)
    assert pickle.loads(pickle.dumps(PAYMENT)) == PAYMENT
    assert pickle.loads(pickle.dumps(row)) == row  # what crosses the exchange
    assert row_payment(row) == PAYMENT
    shard = ShardWindows(params)
    added = shard.add(PAYMENT, -1)
    assert added.entry is not None
    assert pickle.loads(pickle.dumps(added.entry)) == added.entry  # the stored MapState value
    partial = Partial("mcc", "5411", 0, Totals(1, 1250))
    assert pickle.loads(pickle.dumps(partial)) == partial
    assert view_key(partial) == "mcc|5411"
