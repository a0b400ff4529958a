"""The support library's pieces that need no broker: waiting and the record factories."""

from __future__ import annotations

import random
import time

import jsonschema
import msgspec
import pytest

from core.errors import ServiceError
from riskstream.infra.process import wait_until
from riskstream.support.factories import label_for, payment, random_payment
from schemas.validation import decode, json_schema


def test_wait_until_returns_the_first_truthy_value() -> None:
    answers = iter([0, [], "found"])
    assert wait_until(lambda: next(answers), 5, "an answer", poll_s=0.01) == "found"


def test_wait_until_raises_naming_what_it_waited_for() -> None:
    started = time.monotonic()
    with pytest.raises(ServiceError, match=r"timed out after 0 s waiting for the moon"):
        wait_until(lambda: False, 0.2, "the moon", poll_s=0.05)
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize("device", [None, "dev-1"])
def test_factory_payments_and_labels_meet_their_contracts(device: str | None) -> None:
    tx = payment("tx-1", 1_000, device=device, amount=12.5)
    for kind, record in (("transaction", tx), ("label", label_for(tx, 2_000))):
        data = msgspec.json.encode(record)
        assert decode(kind, data) == record
        jsonschema.validate(msgspec.json.decode(data), json_schema(kind))
    assert tx.channel == ("online" if device else "card_present")
    legit = label_for(tx, 3_000, label="legit")
    assert (legit.label, legit.label_type) == ("legit", "confirmed_legitimate")


def test_random_payments_are_valid_and_reproducible_but_for_their_ids() -> None:
    rng, rng_again = random.Random(3), random.Random(3)
    first = [random_payment(rng, c, 5, terminals=40) for c in range(20)]
    again = [random_payment(rng_again, c, 5, terminals=40) for c in range(20)]
    assert all(decode("transaction", msgspec.json.encode(tx)) == tx for tx in first)
    strip = [msgspec.structs.replace(tx, event_id="x") for tx in first]
    assert strip == [msgspec.structs.replace(tx, event_id="x") for tx in again]
    assert {tx.channel for tx in first} == {"online", "card_present"}
