"""State blobs: the packed layout 2 round-trips, and layout-1 blobs of earlier releases (in
checkpoints and savepoints taken before issue 16) still decode to the same state."""

from __future__ import annotations

import random

import pytest

from features import card, device, packed, stages, terminal
from features.compute import FeaturePipeline
from features.events import haversine_km
from features.params import FeatureParams
from tests.unit.features_helpers import MIN, T0, D, H, Label, Tx, online

EVENTS: list[Tx | Label] = [
    Tx("a", T0, amount=10.5, mcc="5411", latitude=48.85, longitude=2.35),
    online("b", T0 + H, "d1", card_id="c1", amount=99.99, mcc="5999"),
    Tx("c", T0 + 2 * H, amount=3.25, mcc="5411", latitude=48.86, longitude=2.36),
    online("e", T0 + 30 * MIN, "d1", card_id="c2", amount=7.0, mcc="5812"),
    Label(T0 + 3 * H, "b", T0 + H, device_id="d1"),
]
"""The events the layout-1 blobs below were written from (by main at 3233c76)."""
LEGACY_CARD = bytes.fromhex(
    "99cf000001a19c8f4f0093cf000001a19c217200cf000001a19c586080cf000001a19c8f4f0093cb4025000000"
    "000000cb4058ff5c28f5c28fcb400a00000000000092cf000001a19c217200cf000001a19c8f4f0092cb40486c"
    "cccccccccdcb40486e147ae147ae92cb4002cccccccccccdcb4002e147ae147ae182a43534313192cf000001a1"
    "9c217200cf000001a19c8f4f00a43539393992cf000001a19c586080cf000001a19c58608081a2643192cf0000"
    "01a19c586080cf000001a19c58608083a161cf000001a19c217200a162cf000001a19c586080a163cf000001a1"
    "9c8f4f00"
)
LEGACY_DEVICE = bytes.fromhex(
    "94cf000001a19c58608092cf000001a19c3ce940cf000001a19c58608092a26332a26331cf000001a19cc63d80"
)
LEGACY_TERMINAL = bytes.fromhex(
    "93cf000001a19c8f4f0094cf000001a19c217200cf000001a19c3ce940cf000001a19c586080cf000001a19c8f"
    "4f0081a16292cf000001a19c586080cf000001a19cc63d80"
)
LATER: list[Tx | Label] = [
    Tx("f", T0 + 9 * D, amount=5.0, mcc="5999", latitude=48.0, longitude=2.0),
    online("g", T0 + 9 * D + H, "d1", card_id="c1", amount=1.0, mcc="5411"),
]


def _pipeline(events: list[Tx | Label]) -> FeaturePipeline:
    pipeline = FeaturePipeline(FeatureParams())
    for event in events:
        if isinstance(event, Label):
            pipeline.label(event)
        else:
            pipeline.transaction(event)
    return pipeline


def test_layout_1_blobs_decode_to_the_state_the_same_events_build() -> None:
    built = _pipeline(EVENTS)
    assert packed.layout(LEGACY_CARD) == packed.LEGACY_LAYOUT
    assert card.decode(LEGACY_CARD) == built.cards["c1"]
    assert device.decode(LEGACY_DEVICE) == built.devices["d1"]
    assert terminal.decode(LEGACY_TERMINAL) == built.terminals["t1"]


def test_a_state_restored_from_layout_1_computes_what_an_uninterrupted_run_does() -> None:
    uninterrupted = _pipeline(EVENTS)
    restored = _pipeline([])
    restored.cards["c1"] = card.decode(LEGACY_CARD)
    restored.devices["d1"] = device.decode(LEGACY_DEVICE)
    restored.terminals["t1"] = terminal.decode(LEGACY_TERMINAL)
    for event in LATER:
        assert isinstance(event, Tx)
        assert restored.transaction(event) == uninterrupted.transaction(event)


def test_new_blobs_carry_layout_2_and_round_trip() -> None:
    built = _pipeline(EVENTS + LATER)
    for module, state in (
        (card, built.cards["c1"]),
        (device, built.devices["d1"]),
        (terminal, built.terminals["t1"]),
    ):
        blob = module.encode(state)
        assert blob[0] == packed.MARK and packed.layout(blob) == module.LAYOUT == 2
        assert module.decode(blob) == state
        assert module.decode(module.encode(module.decode(None))) == module.decode(None)


@pytest.mark.parametrize("seed", range(5))
def test_the_card_stage_distances_are_haversine_km_bit_for_bit(seed: int) -> None:
    """The card stage writes the haversine out (one cos per payment): same operations, same bits."""
    rng = random.Random(seed)
    state, params = card.CardState(), FeatureParams()
    previous: tuple[float, float] | None = None
    for i in range(200):
        lat, lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        tx = Tx(f"e{i}", T0 + i * MIN, latitude=lat, longitude=lon)
        values, _ = stages.card_stage(state, tx, params)
        if previous is not None:
            assert values.as_dict()["km_from_prev_cp_by_card"] == haversine_km(*previous, lat, lon)
        previous = (lat, lon)
