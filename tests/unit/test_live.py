"""The live feed keeps the generator's event times: a warm start of history, then paced live
records, never re-stamped (issue 13, items 1 and 2)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pytest

from core.config import Settings, load_settings, replace
from core.errors import ConfigError, SchemaError
from riskstream.live import (
    HISTORY,
    OUT_OF_RANGE_FIELD,
    DecisionWatcher,
    LiveFeed,
    cut,
    history_ms,
    payments_per_day,
    placed,
    valid_payments,
)
from riskstream.simulate_kafka import merged_records
from riskstream.support.kafka_io import Outgoing
from schemas.feature_set import MS_PER_DAY, PAYMENT_FEATURES
from schemas.validation import decode_transaction
from training.simulator.columns import DELIVERY_CODE
from training.simulator.generate import Simulation, simulate

if TYPE_CHECKING:
    from riskstream.demo import DemoResult

END_MS = 1_796_000_000_000  # 2026-11-29T23:33:20Z: not midnight, so the cut falls mid-day
LIVE = 3_000
CARDS = 150
WORLD = {"profile": "realistic", "cards": CARDS, "merchants": 30, "seed": 5}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(environ={})


@pytest.fixture(scope="module")
def sim(settings: Settings) -> Simulation:
    world = replace(settings.simulator, **WORLD)
    return simulate(placed(world, END_MS, LIVE, HISTORY))


def _sent(settings: Settings, sim: Simulation, rate: float) -> tuple[list[Outgoing], LiveFeed]:
    """Every record a demo sends: the warm start's history, then the live feed's records."""
    schedule = cut(sim, LIVE, END_MS, HISTORY)
    kafka = settings.kafka
    history = merged_records(
        sim,
        kafka.topic("transactions"),
        kafka.topic("labels"),
        schedule.history_tx,
        schedule.history_labels,
    )
    feed = LiveFeed(settings, sim, rate, schedule)
    producer = _Producer()
    feed.send(producer)  # type: ignore[arg-type]  # the paced path, into a list
    return [*history, *producer.records], feed


class _Producer:
    """What :func:`produce_at_rate` calls on a confluent-kafka producer, recorded in a list."""

    def __init__(self) -> None:
        self.records: list[Outgoing] = []

    def produce(self, topic: str, value: bytes, key: bytes, timestamp: int, **_: Any) -> None:
        self.records.append((topic, value, key, timestamp))

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        return 0


def _payments(settings: Settings, records: list[Outgoing]) -> list[dict[str, Any]]:
    """Decoded well-formed payment records, with their Kafka timestamp."""
    out = []
    for topic, value, _key, stamp in records:
        if topic != settings.kafka.topic("transactions"):
            continue
        try:
            payment = decode_transaction(value)
        except SchemaError:
            continue  # a malformed record: the job dead-letters it
        out.append({**msgspec.structs.asdict(payment), "_stamp": stamp})
    return out


def _row(event_id: str) -> int:
    return int(event_id.rsplit("-", 1)[1])


def test_history_is_the_longest_window_plus_its_label_delay() -> None:
    reach = [f.window.length_ms + f.window.delay_ms for f in PAYMENT_FEATURES.features if f.window]
    assert history_ms() == max(reach) == HISTORY == 37 * MS_PER_DAY


@pytest.mark.parametrize("rate", [20_000.0, 200_000.0])
def test_no_card_gets_two_payments_closer_than_the_generator_made_them(
    settings: Settings, sim: Simulation, rate: float
) -> None:
    records, _ = _sent(settings, sim, rate)
    generated = sim.transactions.event_time
    by_card: dict[str, dict[int, int]] = defaultdict(dict)
    for payment in _payments(settings, records):
        row = _row(payment["event_id"])
        assert payment["event_time"] == generated[row], "an event time was re-stamped"
        assert payment["_stamp"] == payment["event_time"], "Kafka timestamp != event time"
        by_card[payment["card_id"]][row] = payment["event_time"]
    assert len(by_card) > 100
    pairs = 0
    for times in by_card.values():
        rows = sorted(times, key=lambda r: (times[r], r))
        for a, b in itertools.pairwise(rows):
            sent_gap = times[b] - times[a]
            assert sent_gap >= abs(int(generated[b]) - int(generated[a]))
            pairs += 1
    assert pairs > 5_000


def test_labels_flow_with_their_delays_after_their_payment(
    settings: Settings, sim: Simulation
) -> None:
    records, _ = _sent(settings, sim, 100_000.0)
    positions: dict[str, int] = {}
    labels = []
    for i, (topic, value, _key, stamp) in enumerate(records):
        document = json.loads(value) if topic == settings.kafka.topic("labels") else None
        if document is None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                positions.setdefault(json.loads(value)["event_id"], i)
            continue
        labels.append((i, document, stamp))
    assert len(labels) > 100
    generated = sim.transactions.event_time
    delays = dict(zip(sim.labels.transaction.tolist(), sim.labels.event_time.tolist(), strict=True))
    plan = sim.delivery
    first_arrival: dict[int, int] = {}
    for source, arrival in zip(plan.source.tolist(), plan.arrival_time.tolist(), strict=True):
        first_arrival.setdefault(source, arrival)
    for i, label, stamp in labels:
        row = _row(label["transaction_id"])
        assert label["event_time"] == stamp == delays[row]
        assert label["event_time"] - generated[row] > 0
        # a late payment (an offline terminal) may arrive after its label, as the generator meant
        if label["transaction_id"] in positions and label["event_time"] > first_arrival[row]:
            assert positions[label["transaction_id"]] < i, "a label before its payment"


def test_the_cut_replays_the_history_then_the_last_live_payments(
    settings: Settings, sim: Simulation
) -> None:
    schedule = cut(sim, LIVE, END_MS, HISTORY)
    arrival = sim.delivery.arrival_time
    assert len(schedule.live_tx) == LIVE
    assert schedule.live_from_ms - schedule.history_from_ms == HISTORY
    assert arrival[schedule.live_tx.stop - 1] <= END_MS < arrival[schedule.live_tx.stop]
    assert arrival[schedule.history_tx.start] >= schedule.history_from_ms
    assert arrival[schedule.history_tx.start - 1] < schedule.history_from_ms
    assert schedule.history_tx.stop == schedule.live_tx.start
    label_time = sim.labels.event_time
    assert label_time[schedule.live_labels.stop - 1] <= END_MS
    assert schedule.history_labels.stop == schedule.live_labels.start
    # every live payment's 37-day reach is inside what the warm start sent
    first_live = sim.delivery.source[schedule.live_tx.start]
    assert sim.transactions.event_time[first_live] - HISTORY >= schedule.history_from_ms - 1_000
    kinds = sim.delivery.kind[schedule.history_tx.start : schedule.history_tx.stop]
    assert valid_payments(sim, schedule.history_tx) < len(schedule.history_tx)
    assert (kinds == DELIVERY_CODE["malformed"]).any()


def test_the_placed_world_ends_on_the_end_day_and_keeps_the_hour_of_day(
    settings: Settings, sim: Simulation
) -> None:
    assert sim.start_ms % MS_PER_DAY == 0
    assert sim.end_ms - MS_PER_DAY <= END_MS < sim.end_ms
    hours = (sim.transactions.event_time % MS_PER_DAY) // 3_600_000
    assert 11 <= int(np.median(hours)) <= 15  # the generator's early-afternoon peak, in UTC
    assert payments_per_day(sim.settings) == CARDS * 2


def test_a_live_part_larger_than_the_world_is_refused(sim: Simulation) -> None:
    with pytest.raises(ConfigError, match="lower the rate or the seconds"):
        cut(sim, len(sim.delivery), END_MS, HISTORY)


def test_the_feed_registers_each_live_payment_once(settings: Settings, sim: Simulation) -> None:
    _records, feed = _sent(settings, sim, 100_000.0)
    schedule = cut(sim, LIVE, END_MS, HISTORY)
    assert feed.sent == LIVE
    rows = [_row(i) for i in feed.fraud]
    assert [feed.fraud[i] for i in feed.fraud] == sim.transactions.fraud[rows].tolist()
    # live = first well-formed delivery in the live part; a re-send of a history payment is not
    plan = sim.delivery
    sent = range(schedule.history_tx.start, schedule.live_tx.stop)
    well_formed = plan.kind[sent.start : sent.stop] != DELIVERY_CODE["malformed"]
    everything = set(plan.source[sent.start : sent.stop][well_formed].tolist())
    history = plan.source[schedule.history_tx.start : schedule.history_tx.stop]
    history_kinds = plan.kind[schedule.history_tx.start : schedule.history_tx.stop]
    decided_early = set(history[history_kinds != DELIVERY_CODE["malformed"]].tolist())
    assert set(rows) == everything - decided_early
    assert len(decided_early) == valid_payments(sim, schedule.history_tx)


def test_a_resend_of_a_history_payment_is_not_a_live_payment(
    settings: Settings, sim: Simulation
) -> None:
    plan = sim.delivery
    live_stop = int(np.searchsorted(plan.arrival_time, END_MS, side="right"))
    resends = np.flatnonzero(plan.kind[:live_stop] == DELIVERY_CODE["duplicate"])
    resend = int(resends[-1])
    original = int(np.flatnonzero(plan.source[:resend] == plan.source[resend])[0])
    assert plan.kind[original] != DELIVERY_CODE["malformed"]
    # cut between the original (history) and its re-send (live)
    schedule = cut(sim, live_stop - original - 1, END_MS, HISTORY)
    assert schedule.history_tx.stop == original + 1
    feed = LiveFeed(settings, sim, 1e9, schedule)
    feed.send(_Producer())  # type: ignore[arg-type]
    assert f"tx-{sim.run}-{int(plan.source[resend]):09d}" not in feed.sent_ms


def _decision(tx_id: str, verdict: str, **extra: object) -> dict[str, Any]:
    return {
        "transaction_id": tx_id,
        "decision": verdict,
        "degraded": False,
        "received_time": 1_000,
        "processing_latency_ms": 5,
        **extra,
    }


def test_the_watcher_counts_live_decisions_once_and_history_apart(settings: Settings) -> None:
    feed = LiveFeed(settings, None, 1.0)  # type: ignore[arg-type]  # never started
    feed.sent_ms.update({"a": 900, "b": 900, "c": 900})
    feed.fraud.update({"a": True, "b": True, "c": False})
    watcher = DecisionWatcher(settings, feed)
    watcher.record(_decision("old", "block"), 1_100)
    watcher.record(_decision("a", "block"), 1_100)
    watcher.record(_decision("a", "approve"), 1_200)  # a re-sent decision: ignored
    watcher.record(_decision("b", "approve"), 1_050)
    watcher.record(_decision("c", "step_up"), 1_300)
    assert watcher.history_decided == 1
    assert watcher.decided == 3
    assert dict(watcher.classes) == {"block": 1, "approve": 1, "step_up": 1}
    assert (watcher.caught, watcher.missed, watcher.blocked_fraud) == (1, 1, 1)
    assert watcher.latencies_ms == [200.0, 150.0, 400.0]
    assert watcher.ingest_latencies_ms == [100.0, 50.0, 300.0]  # from received_time
    assert watcher.stage_ms[0] == (100.0, 5.0, 95.0)  # to the job, in the job, output
    assert watcher.with_range_field == 0
    watcher.record(_decision("d", "approve", **{OUT_OF_RANGE_FIELD: ["amount"]}), 1_300)
    assert watcher.history_decided == 2  # "d" was never sent live
    feed.sent_ms.update({"e": 900, "f": 900})
    watcher.record(_decision("e", "approve", **{OUT_OF_RANGE_FIELD: ["amount"]}), 1_300)
    watcher.record(_decision("f", "approve", **{OUT_OF_RANGE_FIELD: []}), 1_300)
    assert (watcher.with_range_field, watcher.out_of_range) == (2, 1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--job", "skeleton"], "reads no payments"),
        (["--job", "scoring", "--from-savepoint", "/nowhere"], "has its state"),
        (["--job", "scoring", "--set-start"], "start_timestamp_ms"),
    ],
)
def test_run_refuses_a_warm_start_it_cannot_honour(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from riskstream.cli import main

    prefix = ["--set", "features.start_timestamp_ms=4000000000000"] if "--set-start" in argv else []
    argv = [a for a in argv if a != "--set-start"]
    assert main([*prefix, "run", *argv, "--warm-start"]) != 0
    assert message in capsys.readouterr().err


def _demo_result() -> DemoResult:
    """The summary of a healthy 60 s demo run at 200/s."""
    from riskstream.demo import DemoResult

    return DemoResult(
        model_version="v0001",
        went_live_utc="07:00:00 UTC",
        warm_start_s=80.0,
        history_payments=100_000,
        history_labels=6_000,
        live_seconds=60.0,
        live_days=4.0,
        sent=12_000,
        decided=10_000,
        classes={"approve": 9_870, "step_up": 110, "block": 20},
        configured={"approve": 0.988, "step_up": 0.01, "block": 0.002},
        expected={"block": 0.0021},
        degraded=0,
        frauds_sent=70,
        caught=50,
        missed=20,
        blocked_fraud=15,
        p50_ms=120.0,
        p99_ms=300.0,
        out_of_range=None,
        ingest_p50_ms=40.0,
        ingest_p99_ms=90.0,
        drain_seconds=2.0,
        live_payments=10_000,
    )


def test_the_summary_puts_each_share_next_to_the_configured_one() -> None:
    from riskstream.demo import summary_lines

    result = _demo_result()
    text = "\n".join(summary_lines(result))
    assert "block 20 = 0.20% (configured 0.20%, model's test period 0.21%)" in text
    assert "step_up 110 = 1.10% (configured 1.00%)" in text
    assert "caught 50 (71.43%), missed 20" in text
    assert "precision of blocks 75.00% (15 of 20 blocks are frauds)" in text
    assert "latency ingestion -> decision p50 40 ms  p99 90 ms" in text
    assert "end to end (sent -> decision in Kafka) p50 120 ms  p99 300 ms" in text
    assert "sent 12,000 payment records (200/s), decided 10,000 (161/s sustained" in text
    assert "saturated" not in text
    assert "live since 07:00:00 UTC" in text
    assert "out of training range" not in text
    ranged = dataclasses.replace(result, out_of_range=250)
    assert "out of training range: 250 (2.50%)" in "\n".join(summary_lines(ranged))


def test_a_saturated_demo_says_so_and_what_it_sustained() -> None:
    """`riskstream demo --rate 5000` outruns the job on this machine: the summary gives the rate
    it sustained, the backlog left, and latencies of what was decided (issue 16 item 8)."""
    from riskstream.demo import summary_lines

    result = dataclasses.replace(
        _demo_result(),
        live_days=100.0,
        sent=300_000,
        decided=64_000,
        classes={"approve": 63_000, "step_up": 900, "block": 100},
        expected={},
        degraded=30_000,
        frauds_sent=900,
        caught=100,
        missed=100,
        blocked_fraud=50,
        p50_ms=31_000.0,
        p99_ms=58_000.0,
        ingest_p50_ms=450.0,
        ingest_p99_ms=900.0,
        drain_seconds=20.0,
        live_payments=299_000,
    )
    text = "\n".join(summary_lines(result))
    assert (
        "(5,000/s), decided 64,000 (800/s sustained over the live part and 20 s of drain)" in text
    )
    assert "saturated: 235,000 of 299,000 live payments (78.60%) were not decided" in text
    assert "latency ingestion -> decision p50 450 ms  p99 900 ms" in text
    assert "p50 31,000 ms  p99 58,000 ms" in text
    nothing = dataclasses.replace(result, decided=0, ingest_p50_ms=float("nan"))
    assert "ingestion -> decision p50 n/a" in "\n".join(summary_lines(nothing))
