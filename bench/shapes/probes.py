"""Mechanics probes for the hot-path builder: each answers one PyFlink 2.2 question with a
measured fact.

``python -m bench.shapes.probes [NAME ...]`` (names: kafka, broadcast, rows, pandas, sinks, chain;
default all) runs each variant as its own small job (:mod:`bench.shapes.probe_jobs`) on a
mini-cluster in thread mode, on a private broker where Kafka is involved, prints what each found
and writes ``bench/results/shapes-probes.json``.

1. kafka: Kafka SQL table (format raw, metadata partition/offset/timestamp) -> ``to_data_stream``
   vs ``KafkaSource`` with SimpleStringSchema / ByteArraySchema: per-record cost, tombstones and
   empty values, per-partition watermarks, a clamping computed column, ``scan.bounded.mode``, SASL
   options and whether the secret shows in logs, errors or the REST API.
2. broadcast: KeyedBroadcastProcessFunction: broadcast state put/get, event-time timers.
3. rows: Row conversion cost by width from a thread-mode map into the Table API.
4. pandas: a pandas UDF over packed float64 vectors (BYTES) returning a ROW, by batch settings.
5. sinks: Kafka sinks (DataStream at-least-once / exactly-once, Table raw exactly-once via a
   StreamStatementSet attached to the DataStream job).
6. chain: one Python map vs two chained, a side output per record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.common import bench_settings, private_broker, write_results
from bench.shapes.study import create_topic
from core.config import Settings
from core.net import free_port
from riskstream.infra.kafka import LocalKafka

JOB_SCRIPT = Path(__file__).with_name("probe_jobs.py")
PROBES = ("kafka", "broadcast", "rows", "pandas", "sinks", "chain")
MS_PER_DAY = 86_400_000
PERF_RECORDS = 200_000
EDGE_RECORDS = 200
SASL_USER = "probe"
EXECUTION_PLAN = "== Optimized Execution Plan =="
FUTURE_AHEAD_MS = 30 * 60_000
"""Less than the broker's default log.message.timestamp.after.max.ms (1 h in Kafka 4.x)."""


class SaslKafka(LocalKafka):
    """The project's local broker plus a SASL_PLAINTEXT (PLAIN) listener with one user."""

    def __init__(self, settings: Settings, sasl_port: int, password: str) -> None:
        super().__init__(settings)
        self.sasl_port = sasl_port
        self.password = password

    def _write_config(self) -> None:
        super()._write_config()
        host = self.kafka.host
        lines = dict(
            line.split("=", 1) for line in self.properties.read_text().splitlines() if "=" in line
        )
        lines["listeners"] += f",SASL_PLAINTEXT://{host}:{self.sasl_port}"
        lines["advertised.listeners"] += f",SASL_PLAINTEXT://{host}:{self.sasl_port}"
        lines["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        lines["sasl.enabled.mechanisms"] = "PLAIN"
        lines["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{SASL_USER}="{self.password}";'
        )
        self.properties.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))


def run_variant(work: Path, name: str, spec: dict[str, Any], timeout_s: float = 240) -> list[Any]:
    """Run one probe job; returns the JSON lines its meter file got."""
    meter = work / f"{name}.meter.jsonl"
    spec = {**spec, "meter": str(meter)}
    spec_file = work / f"{name}.json"
    spec_file.write_text(json.dumps(spec))
    log = work / f"{name}.log"
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, str(JOB_SCRIPT), str(spec_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    lines = [json.loads(x) for x in meter.read_text().splitlines()] if meter.exists() else []
    for line in lines:  # keep the part of a plan that shows what runs in the source
        if "explain" in line:
            plan = line["explain"]
            line["explain"] = plan[plan.find(EXECUTION_PLAN) :].strip()
    wall = round(time.monotonic() - started, 1)
    if done.returncode != 0:
        text = log.read_text(errors="replace")
        causes = [x.strip()[:300] for x in text.splitlines() if x.startswith("Caused by")]
        lines.append({"failed": done.returncode, "causes": causes[-3:], "log_tail": text[-800:]})
    lines.append({"wall_s": wall})
    print(f"  {name}: {json.dumps(lines)[:600]}", flush=True)
    return lines


def kafka_settings(settings: Settings) -> dict[str, Any]:
    """Overrides that point a probe job at the private broker, with a free REST port."""
    return {
        "paths": {"run_dir": str(settings.paths.run)},
        "kafka": {"port": settings.kafka.port, "controller_port": settings.kafka.controller_port},
        "flink": {"local_rest_port": free_port()},
    }


def produce(
    settings: Settings, topic: str, records: list[tuple[int, bytes | None, int]]
) -> list[str]:
    """(partition, value, timestamp ms) records; returns the delivery errors."""
    producer = Producer({**settings.kafka.client_config(), "linger.ms": 20})
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for partition, value, stamp in records:
        while True:
            try:
                producer.produce(
                    topic, value=value, partition=partition, timestamp=stamp, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    return errors


def committed_count(settings: Settings, topic: str) -> int:
    """Records a read_committed consumer sees in ``topic``."""
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": uuid.uuid4().hex,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    count, idle = 0, 0
    while idle < 3:
        batch = consumer.consume(10_000, timeout=1.0)
        count += sum(1 for m in batch if m.error() is None)
        idle = idle + 1 if not batch else 0
    consumer.close()
    return count


def probe_kafka(settings: Settings, work: Path) -> dict[str, Any]:
    """Probe 1."""
    out: dict[str, Any] = {}
    line = (
        b'{"event_id":"tx-000","event_time":1522544235469,"schema_version":1,"source":"sim",'
        b'"correlation_id":"tx-000","card_id":"card-0000090","customer_id":"cust-0000072",'
        b'"merchant_id":"merch-0000642","terminal_id":"term-0001174","mcc":"5815","amount":10.44,'
        b'"currency":"EUR","channel":"online","latitude":50.869101,"longitude":4.37216,'
        b'"device_id":"dev-00000181","country":"IT"}'
    )
    now = int(time.time() * 1000)
    perf = f"probe-perf-{uuid.uuid4().hex[:6]}"
    create_topic(settings, perf, 2, append_time=False)
    produce(settings, perf, [(i % 2, line, now - 3_600_000 + i) for i in range(PERF_RECORDS)])
    base = {"probe": "kafka", "settings": kafka_settings(settings)}
    for kind in ("string", "bytes", "sql"):
        out[f"perf_{kind}"] = run_variant(
            work, f"kafka-perf-{kind}", {**base, "kind": kind, "topic": perf, "skip": 5_000}
        )
    lean = {
        "value": "`value`",
        "positions": "`value`, `partition`, `offset`",
        "rowtime": "`value`, `partition`, `offset`, ts",
    }
    for name, columns in lean.items():
        out[f"perf_sql_{name}"] = run_variant(
            work,
            f"kafka-perf-sql-{name}",
            {**base, "kind": "sql", "topic": perf, "skip": 5_000, "columns": columns},
        )

    edge = f"probe-edge-{uuid.uuid4().hex[:6]}"
    create_topic(settings, edge, 2, append_time=False)
    edge_records: list[tuple[int, bytes | None, int]] = [
        (i % 2, line, now - 60_000 + i) for i in range(EDGE_RECORDS)
    ]
    edge_records += [(0, None, now), (1, None, now), (0, b"", now), (1, b"", now)]
    produce(settings, edge, edge_records)
    for kind in ("string", "bytes", "sql"):
        out[f"edge_{kind}"] = run_variant(
            work, f"kafka-edge-{kind}", {**base, "kind": kind, "topic": edge, "skip": 1}
        )
    out["edge_produced"] = {"values": EDGE_RECORDS, "tombstones": 2, "empty_values": 2}

    # Per-partition watermarks: partition 1 is a day behind partition 0.
    skew = f"probe-skew-{uuid.uuid4().hex[:6]}"
    create_topic(settings, skew, 2, append_time=False)
    t0 = now - 2 * 3_600_000
    out["skew_produce_errors"] = produce(
        settings,
        skew,
        [(i % 2, line, t0 - (MS_PER_DAY if i % 2 else 0) + i // 2) for i in range(40_000)],
    )
    out["skew_t0_ms"] = t0
    out["skew_partition1_ms"] = t0 - MS_PER_DAY
    for kind in ("string", "sql"):
        out[f"skew_{kind}"] = run_variant(
            work, f"kafka-skew-{kind}", {**base, "kind": kind, "topic": skew, "skip": 1}
        )

    # The broker itself refuses records stamped far ahead (CreateTime topics).
    ahead = f"probe-ahead-{uuid.uuid4().hex[:6]}"
    create_topic(settings, ahead, 1, append_time=False)
    out["one_day_ahead_produce_errors"] = produce(settings, ahead, [(0, line, now + MS_PER_DAY)])
    # A computed column that clamps timestamps more than 5 min ahead of the wall clock.
    future = f"probe-future-{uuid.uuid4().hex[:6]}"
    create_topic(settings, future, 1, append_time=False)
    now = int(time.time() * 1000)
    out["future_produce_errors"] = produce(
        settings,
        future,
        [
            (0, line, now - 60_000 + i + (FUTURE_AHEAD_MS if i % 100 == 0 else 0))
            for i in range(20_000)
        ],
    )[:3]
    out["future_ahead_ms"] = FUTURE_AHEAD_MS
    clamp = (
        "CASE WHEN `timestamp` > CURRENT_TIMESTAMP + INTERVAL '5' MINUTE "
        "THEN CURRENT_TIMESTAMP ELSE `timestamp` END"
    )
    out["future_now_ms"] = now
    out["future_plain"] = run_variant(
        work, "kafka-future-plain", {**base, "kind": "sql", "topic": future, "skip": 1}
    )
    out["future_clamped"] = run_variant(
        work,
        "kafka-future-clamped",
        {**base, "kind": "sql", "topic": future, "skip": 1, "ts_expr": clamp},
    )
    out["sasl"] = probe_sasl(settings, work)
    return out


def probe_sasl(settings: Settings, work: Path) -> dict[str, Any]:
    """A SQL source over a SASL_PLAINTEXT listener; where the secret shows up."""
    from core.config import with_overrides

    secret = f"s3cret-{uuid.uuid4().hex[:10]}"
    sasl_port = free_port()
    sasl_settings = with_overrides(
        settings,
        paths={"run_dir": str(work / "sasl-broker")},
        kafka={"port": free_port(), "controller_port": free_port()},
    )
    broker = SaslKafka(sasl_settings, sasl_port, secret)
    broker.start()
    try:
        topic = f"probe-sasl-{uuid.uuid4().hex[:6]}"
        create_topic(sasl_settings, topic, 1, append_time=False)
        now = int(time.time() * 1000)
        produce(sasl_settings, topic, [(0, b'{"x":1}', now + i) for i in range(1000)])
        # The fat connector jar shades kafka-clients: the login module has the shaded name
        # (the plain name fails with "No LoginModule found").
        jaas = (
            "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.plain.PlainLoginModule"
            " required "
            f'username="{SASL_USER}" password="{secret}";'
        )
        options = (
            ",\n 'properties.security.protocol' = 'SASL_PLAINTEXT',"
            "\n 'properties.sasl.mechanism' = 'PLAIN',"
            f"\n 'properties.sasl.jaas.config' = '{jaas}'"
        )
        rest_dump = work / "sasl-rest.txt"
        spec = {
            "probe": "kafka",
            "settings": kafka_settings(sasl_settings),
            "kind": "sql",
            "topic": topic,
            "skip": 1,
            "bootstrap": f"127.0.0.1:{sasl_port}",
            "extra_options": options,
            "rest_dump": str(rest_dump),
        }
        result = run_variant(work, "kafka-sasl", spec)
        bad = {**spec, "extra_options": options + ",\n 'no.such.option' = 'x'", "rest_dump": ""}
        bad_result = run_variant(work, "kafka-sasl-bad-option", bad)
    finally:
        broker.stop()
    import pyflink

    flink_logs = Path(pyflink.__file__).parent / "log"
    places = {
        "job stdout/stderr": [work / "kafka-sasl.log"],
        "stdout/stderr of a job failing on a bad option": [work / "kafka-sasl-bad-option.log"],
        "REST /jobs/<id>, /plan, /config": [rest_dump],
        "mini-cluster log files (pyflink/log)": sorted(flink_logs.glob("*")),
    }
    found = {}
    for place, paths in places.items():
        hits = 0
        for path in paths:
            if path.is_file():
                hits += path.read_text(errors="replace").count(secret)
        found[place] = hits
    return {"read": result, "bad_option": bad_result, "secret_occurrences": found}


def probe_broadcast(settings: Settings, work: Path) -> dict[str, Any]:
    """Probe 2."""
    base = {"probe": "broadcast", "settings": kafka_settings(settings), "n": 200_000}
    return {
        f"cached_{cached}": run_variant(
            work, f"broadcast-cached-{cached}", {**base, "cached": cached}
        )
        for cached in (False, True)
    }


def probe_rows(settings: Settings, work: Path) -> dict[str, Any]:
    """Probe 3."""
    out = {}
    for width in ("pickled", 1, 2, 5, 20, 40, "bytes300"):
        n = 300_000 if width in ("pickled", 1, 2, 5, "bytes300") else 150_000
        out[str(width)] = run_variant(
            work,
            f"rows-{width}",
            {"probe": "rows", "width": width, "n": n, "settings": kafka_settings(settings)},
        )
    return out


def probe_pandas(settings: Settings, work: Path) -> dict[str, Any]:
    """Probe 4."""
    out = {}
    configs = [
        ("arrow1000-bundle1000-1000ms", 1_000, 1_000, 1_000, 1_000_000),
        ("arrow10000-bundle10000-1000ms", 10_000, 10_000, 1_000, 2_000_000),
        ("arrow10000-bundle100000-1000ms", 10_000, 100_000, 1_000, 2_000_000),
        ("arrow1000-bundle1000-10ms", 1_000, 1_000, 10, 1_000_000),
    ]
    for name, arrow, bundle, bundle_ms, n in configs:
        out[name] = run_variant(
            work,
            f"pandas-{name}",
            {
                "probe": "pandas",
                "n": n,
                "arrow_batch": arrow,
                "bundle_size": bundle,
                "bundle_time_ms": bundle_ms,
                "settings": kafka_settings(settings),
            },
        )
    return out


def probe_sinks(settings: Settings, work: Path) -> dict[str, Any]:
    """Probe 5."""
    out: dict[str, Any] = {}
    n = 300_000
    for kind in ("discard", "ds-alo", "ds-alo-batched", "ds-eos", "ds-eos-batched", "table-eos"):
        topic = f"probe-sink-{kind}-{uuid.uuid4().hex[:6]}"
        create_topic(settings, topic, 1, append_time=False)
        spec = {
            "probe": "sinks",
            "sink": kind,
            "n": n,
            "topic": topic,
            "settings": {
                **kafka_settings(settings),
                "checkpoint": {"interval_ms": 2_000, "dir": str(work / f"ckpt-{kind}")},
            },
        }
        lines = run_variant(work, f"sinks-{kind}", spec)
        if kind != "discard":
            lines.append({"read_committed_records": committed_count(settings, topic)})
        out[kind] = lines
    return out


def probe_chain(settings: Settings, work: Path) -> dict[str, Any]:
    """Probe 6."""
    return {
        kind: run_variant(
            work,
            f"chain-{kind}",
            {"probe": "chain", "kind": kind, "n": 500_000, "settings": kafka_settings(settings)},
        )
        for kind in ("one-map", "two-maps", "side-every", "side-declared")
    }


def main(argv: list[str] | None = None) -> None:
    """Run the probes named in ``argv`` (default all) and write the results."""
    names = (sys.argv[1:] if argv is None else argv) or list(PROBES)
    unknown = set(names) - set(PROBES)
    if unknown:
        raise SystemExit(f"unknown probes {sorted(unknown)}; known: {', '.join(PROBES)}")
    load_start = [round(x, 2) for x in os.getloadavg()]
    found: dict[str, Any] = {}
    functions = {
        "kafka": probe_kafka,
        "broadcast": probe_broadcast,
        "rows": probe_rows,
        "pandas": probe_pandas,
        "sinks": probe_sinks,
        "chain": probe_chain,
    }
    with (
        bench_settings("probes") as settings,
        private_broker(settings),
        tempfile.TemporaryDirectory(prefix="riskstream-probes-") as tmp,
    ):
        for name in names:
            print(f"probe {name} ...", flush=True)
            found[name] = functions[name](settings, Path(tmp))
    details = {
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "probes": found,
    }
    figures = summary_figures(found)
    if set(names) == set(PROBES):
        print(f"wrote {write_results('shapes-probes', figures, details)}")
    else:
        out = Path(tempfile.gettempdir()) / f"shapes-probes-{'-'.join(names)}.json"
        out.write_text(json.dumps({"figures": figures, "details": details}, indent=1))
        print(f"wrote {out}")
    print(json.dumps(figures, indent=1))


def _meter(lines: list[Any], key: str = "us_per_record") -> float | None:
    for line in lines:
        if isinstance(line, dict) and line.get(key) is not None:
            value: float = line[key]
            return value
    return None


def summary_figures(found: dict[str, Any]) -> dict[str, float]:
    """The headline per-record figures (keys carry units)."""
    figures: dict[str, float] = {}
    for probe, variants in found.items():
        for variant, lines in variants.items():
            if not isinstance(lines, list):
                continue
            us = _meter(lines)
            if us is not None:
                figures[f"{probe}_{variant}_us_per_record"] = us
            udf = _meter(lines, "udf_rows_per_s")
            if udf is not None:
                figures[f"{probe}_{variant}_udf_rows_per_s"] = udf
    return figures


if __name__ == "__main__":
    main()
