"""Benchmark: the streaming feature job on real Kafka (ingestion + validation + 3 keyed stages).

Starts a private single-node broker (free ports, temporary run dir), then:
1. **throughput**: pre-produces payments of 100k cards (Kafka timestamp = event time) and runs the
   job bounded on the mini-cluster; sustained events/s is taken from the records' ``computed_time``
   between the 10th and 90th percentile, so job start-up is excluded;
2. **latency**: runs the job unbounded and paces live payments at 5k events/s; added latency is
   ``computed_time - event_time`` (producer -> broker -> source -> validate -> card -> device ->
   terminal), plus end to end up to a consumer of the features topic;
3. **state size**: the bytes a Flink ValueState holds per card after 30 days of Handbook-rate
   history (2 payments/day), from the same pure functions the job runs.

Run from the repo root: ``python -m bench.features``; writes ``bench/results/features.json``.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import Consumer, Producer

from core.config import Settings, load_settings
from core.net import free_port
from features import card, device, terminal
from features.compute import FeaturePipeline
from features.output import EnrichedFeatures
from jobs import features as features_job
from jobs.env import create_env
from riskstream.infra import jars
from riskstream.infra.kafka import LocalKafka
from riskstream.support.factories import random_payment
from riskstream.support.topics import private_settings
from schemas.feature_set import MS_PER_DAY
from schemas.records import Transaction
from schemas.validation import decode_transaction

RESULTS = Path(__file__).parent / "results" / "features.json"
CARDS = 100_000
TERMINALS = 30_000
THROUGHPUT_EVENTS = 250_000
LATENCY_RATE_PER_S = 5_000
LATENCY_SECONDS = 20
WARMUP_EVENTS = 2_000
LOW_RATE_PER_S = 500
LOW_RATE_SECONDS = 10
TICK_S = 0.01
STATE_CARDS = 2_000
STATE_DAYS = 30
STATE_TX_PER_DAY = 2
BASE_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PARTITIONS = 2
PURE_EVENTS = 50_000
TARGETS = {"events_per_s": 20_000, "p99_ms": 10}
_DECODER = msgspec.json.Decoder(EnrichedFeatures)


def payment(rng: random.Random, i: int, t: int) -> Transaction:
    """A valid payment of card ``i % CARDS``; 40% online with one of the card's two devices."""
    return random_payment(
        rng,
        i % CARDS,
        t,
        terminals=TERMINALS,
        devices_per_card=2,
        prefix="b",
        source="bench",
        correlation_id=f"b-{i}",
    )


def job_settings(base: Settings, name: str) -> Settings:
    """``base`` with fresh topics for one run."""
    roles = dict.fromkeys(("transactions", "labels", "features", "dead_letter"), PARTITIONS)
    return private_settings(
        base, name, roles, features={"group_id": f"{name}-{uuid.uuid4().hex[:6]}"}
    )


def producer(settings: Settings) -> Producer:
    """A fast producer (small linger so paced latency is not batched away)."""
    return Producer({"bootstrap.servers": settings.kafka.bootstrap, "linger.ms": 1})


def consumer(settings: Settings, topic: str) -> Consumer:
    """A consumer of ``topic`` from the beginning."""
    c = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
        }
    )
    c.subscribe([topic])
    return c


def send(p: Producer, topic: str, tx: Transaction) -> None:
    """Produce with the Kafka timestamp set to the event time (what the watermarks read)."""
    while True:
        try:
            p.produce(
                topic, msgspec.json.encode(tx), key=tx.card_id.encode(), timestamp=tx.event_time
            )
            return
        except BufferError:
            p.poll(0.05)


def read_all(c: Consumer, count: int, timeout_s: float) -> list[tuple[int, EnrichedFeatures]]:
    """(receive wall ms, record) for ``count`` records or until ``timeout_s``."""
    out: list[tuple[int, EnrichedFeatures]] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count and time.monotonic() < deadline:
        for message in c.consume(1000, 0.5):
            value = message.value()
            if message.error() is None and value is not None:
                out.append((time.time_ns() // 1_000_000, _DECODER.decode(value)))
    return out


def _descendants(pid: int) -> list[int]:
    """Pids of all descendants of ``pid`` (the py4j gateway JVM that hosts the mini-cluster)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def children_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process's descendants.

    CPU time, unlike wall time, does not stretch when other work shares the machine, so events per
    CPU-second is a load-independent measure of what the job costs.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _descendants(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def pure_logic_cpu_us() -> dict[str, float]:
    """CPU microseconds per event of validation and of the feature logic, outside Flink."""
    rng = random.Random(4)
    events = [payment(rng, i, BASE_TIME_MS + i * 10_000) for i in range(PURE_EVENTS)]
    payloads = [msgspec.json.encode(tx) for tx in events]
    started = time.process_time()
    for payload in payloads:
        decode_transaction(payload)
    validate = time.process_time() - started
    pipeline = FeaturePipeline()
    started = time.process_time()
    for tx in events:
        pipeline.transaction(tx)
    logic = time.process_time() - started
    return {
        "validate_cpu_us_per_event": round(validate / PURE_EVENTS * 1e6, 1),
        "features_cpu_us_per_event": round(logic / PURE_EVENTS * 1e6, 1),
    }


def throughput(base: Settings) -> dict[str, Any]:
    """Sustained events/s of the bounded job over pre-produced payments."""
    settings = job_settings(base, "tput")
    rng = random.Random(1)
    p = producer(settings)
    topic = settings.kafka.topic("transactions")
    span = 30 * MS_PER_DAY
    started = time.perf_counter()
    for i in range(THROUGHPUT_EVENTS):
        t = BASE_TIME_MS + i * span // THROUGHPUT_EVENTS + rng.randrange(-2000, 2000)
        send(p, topic, payment(rng, i, t))
        if i % 10_000 == 0:
            p.poll(0)
    p.flush(120)
    produce_s = time.perf_counter() - started
    started, cpu_before = time.perf_counter(), children_cpu_s()
    features_job.main(settings, bounded=True)
    job_s, job_cpu_s = time.perf_counter() - started, children_cpu_s() - cpu_before
    records = read_all(consumer(settings, settings.kafka.topic("features")), THROUGHPUT_EVENTS, 120)
    times = sorted(r.computed_time for _, r in records)
    lo, hi = times[len(times) // 10], times[len(times) * 9 // 10]
    steady = sum(1 for t in times if lo <= t <= hi)
    return {
        "events": THROUGHPUT_EVENTS,
        "cards": CARDS,
        "outputs": len(records),
        "produce_s": round(produce_s, 2),
        "job_wall_s_incl_startup": round(job_s, 2),
        "steady_events": steady,
        "steady_s": round((hi - lo) / 1000, 3),
        "events_per_s": round(steady / max((hi - lo) / 1000, 1e-3)),
        "job_cpu_s_incl_startup": round(job_cpu_s, 1),
        "events_per_cpu_s": round(THROUGHPUT_EVENTS / max(job_cpu_s, 1e-3)),
    }


def _pct(values: list[int], q: float) -> float:
    """The q-quantile of sorted ``values`` (-1 if empty)."""
    return float(values[min(len(values) - 1, int(q * len(values)))]) if values else -1.0


def _paced(
    p: Producer, c: Consumer, topic: str, rng: random.Random, *, first: int, rate: int, seconds: int
) -> dict[str, Any]:
    """Produce live payments at ``rate``/s for ``seconds`` and measure their latencies."""
    total = rate * seconds
    results: list[tuple[int, EnrichedFeatures]] = []
    reader = threading.Thread(target=lambda: results.extend(read_all(c, total, seconds + 60)))
    reader.start()
    per_tick = max(1, int(rate * TICK_S))
    start = time.perf_counter()
    for tick in range(total // per_tick):
        for j in range(per_tick):
            send(p, topic, payment(rng, first + tick * per_tick + j, time.time_ns() // 1_000_000))
        p.poll(0)
        delay = start + (tick + 1) * TICK_S - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    p.flush(30)
    achieved = total / (time.perf_counter() - start)
    reader.join()
    computed = sorted(r.computed_time - r.event_time for _, r in results)
    end_to_end = sorted(received - r.event_time for received, r in results)
    return {
        "rate_per_s_target": rate,
        "rate_per_s_achieved": round(achieved),
        "outputs": len(results),
        "p50_ms": _pct(computed, 0.5),
        "p99_ms": _pct(computed, 0.99),
        "max_ms": _pct(computed, 1.0),
        "end_to_end_p50_ms": _pct(end_to_end, 0.5),
        "end_to_end_p99_ms": _pct(end_to_end, 0.99),
    }


def latency(base: Settings) -> dict[str, Any]:
    """Added latency of live payments at a low rate and at the target rate, on one running job."""
    settings = job_settings(base, "lat")
    env = create_env(settings)
    sources = features_job.FeatureSources(
        features_job.kafka_source(settings, "transactions"),
        features_job.kafka_source(settings, "labels"),
    )
    sinks = features_job.FeatureSinks(
        features_job.kafka_sink(settings, "features"),
        features_job.kafka_sink(settings, "dead_letter"),
    )
    features_job.build(env, sources, sinks, settings)
    client = env.execute_async("bench-features-latency")
    rng = random.Random(2)
    p = producer(settings)
    topic = settings.kafka.topic("transactions")
    c = consumer(settings, settings.kafka.topic("features"))
    try:
        for i in range(WARMUP_EVENTS):
            send(p, topic, payment(rng, i, time.time_ns() // 1_000_000))
        p.flush(30)
        warm = read_all(c, WARMUP_EVENTS, 120)
        low = _paced(
            p, c, topic, rng, first=WARMUP_EVENTS, rate=LOW_RATE_PER_S, seconds=LOW_RATE_SECONDS
        )
        first = WARMUP_EVENTS + LOW_RATE_PER_S * LOW_RATE_SECONDS
        target = _paced(
            p, c, topic, rng, first=first, rate=LATENCY_RATE_PER_S, seconds=LATENCY_SECONDS
        )
    finally:
        c.close()
        client.cancel().result()
    return {"warmup_outputs": len(warm), "low_rate": low, **target}


def state_size() -> dict[str, Any]:
    """Bytes held in ValueState (pickled msgpack blobs) after 30 days at Handbook rate."""
    rng = random.Random(3)
    pipeline = FeaturePipeline()
    events = []
    for c in range(STATE_CARDS):
        for _ in range(STATE_DAYS * STATE_TX_PER_DAY):
            events.append(payment(rng, c, BASE_TIME_MS + rng.randrange(STATE_DAYS * MS_PER_DAY)))
    events.sort(key=lambda tx: tx.event_time)
    for tx in events:
        pipeline.transaction(tx)

    def stored(blob: bytes) -> int:
        return len(pickle.dumps(blob))

    card_bytes = sum(stored(card.encode(s)) for s in pipeline.cards.values())
    device_bytes = sum(stored(device.encode(s)) for s in pipeline.devices.values())
    terminal_bytes = sum(stored(terminal.encode(s)) for s in pipeline.terminals.values())
    return {
        "cards": STATE_CARDS,
        "payments_per_card": STATE_DAYS * STATE_TX_PER_DAY,
        "card_bytes_per_card": round(card_bytes / STATE_CARDS),
        "device_bytes_per_card": round(device_bytes / STATE_CARDS),
        "terminal_bytes_per_card": round(terminal_bytes / STATE_CARDS),
        "bytes_per_card": round((card_bytes + device_bytes + terminal_bytes) / STATE_CARDS),
        "note": "serialized value bytes; RocksDB adds key bytes and per-entry overhead",
    }


def main() -> None:
    """Start a private broker, run the three measurements, print and write the results."""
    load_before = [round(x, 2) for x in os.getloadavg()]
    sizes = state_size()
    pure = pure_logic_cpu_us()
    with tempfile.TemporaryDirectory(prefix="riskstream-bench-") as run_dir:
        settings = load_settings(
            overrides={
                "paths": {"run_dir": run_dir},
                "kafka": {"port": free_port(), "controller_port": free_port()},
                "flink": {"local_rest_port": free_port()},
                "checkpoint": {"interval_ms": 10_000},
            },
            environ={},
        )
        jars.ensure_jars(settings)
        broker = LocalKafka(settings)
        broker.start()
        try:
            tput = throughput(settings)
            lat = latency(settings)
        finally:
            broker.stop()
    result = {
        "figures": {
            "events_per_s": tput["events_per_s"],
            "p50_ms": lat["p50_ms"],
            "p99_ms": lat["p99_ms"],
            "bytes_per_card": sizes["bytes_per_card"],
        },
        "target": TARGETS,
        "runs": {"throughput": tput, "latency": lat, "state": sizes, "pure_python": pure},
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": load_before,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": "the machine is shared: other sessions' jobs ran concurrently",
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("sustained events/s (ingest + features)", tput["events_per_s"], TARGETS["events_per_s"]),
        (f"p50 added latency ms @ {lat['rate_per_s_achieved']}/s", lat["p50_ms"], "-"),
        (
            f"p99 added latency ms @ {lat['rate_per_s_achieved']}/s",
            lat["p99_ms"],
            TARGETS["p99_ms"],
        ),
        ("end-to-end p99 ms (to a consumer)", lat["end_to_end_p99_ms"], "-"),
        (
            f"p50 / p99 ms @ {lat['low_rate']['rate_per_s_achieved']}/s",
            (f"{lat['low_rate']['p50_ms']:.0f}/{lat['low_rate']['p99_ms']:.0f}"),
            "-",
        ),
        ("state bytes per card (30 d, 2/day)", sizes["bytes_per_card"], "-"),
        ("job events per CPU-second (load-independent)", tput["events_per_cpu_s"], "-"),
        ("validate CPU us/event (pure Python)", pure["validate_cpu_us_per_event"], "-"),
        ("features CPU us/event (pure Python)", pure["features_cpu_us_per_event"], "-"),
    ]
    print(f"{'measure':<45} {'value':>12} {'target':>8}")
    for name, value, target in rows:
        print(f"{name:<45} {value:>12} {target!s:>8}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
