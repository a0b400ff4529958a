"""The probe jobs: one small Flink job per variant, measured by a :class:`Meter` inside it.

``python bench/shapes/probe_jobs.py SPEC.json`` runs the variant the spec names on a mini-cluster
in thread mode (the orchestrator is :mod:`bench.shapes.probes`). Every variant appends one JSON
line (records, steady seconds, records/s, facts) to the spec's ``meter`` file.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd
from pyflink.common import Duration, Row, Types, WatermarkStrategy
from pyflink.common.serialization import ByteArraySchema, SimpleStringSchema
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import (
    DataStream,
    KeyedBroadcastProcessFunction,
    MapFunction,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.datastream.connectors.base import DeliveryGuarantee, Sink
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.datastream.connectors.number_seq import NumberSequenceSource
from pyflink.datastream.state import MapStateDescriptor
from pyflink.java_gateway import get_gateway
from pyflink.table import DataTypes, StreamTableEnvironment
from pyflink.table.udf import ScalarFunction, udf

from bench.shapes.meter import Meter
from core.config import Settings, load_settings
from jobs.env import create_env

BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())
PICKLED = Types.PICKLED_BYTE_ARRAY()
VECTOR_FLOATS = 40
VECTOR = struct.Struct(f"<{VECTOR_FLOATS}d")
SIDE = OutputTag("side", PICKLED)
TILES = MapStateDescriptor("probe-tiles", Types.STRING(), PICKLED)
BATCHED_PRODUCER = {"linger.ms": "20", "batch.size": "1048576", "compression.type": "lz4"}
"""Producer settings of the batched sink variants (what the simulator's producer uses)."""


def discard() -> Sink:
    """Java's DiscardingSink (sink v2)."""
    jvm = get_gateway().jvm
    return Sink(jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink())


def sequence(env: StreamExecutionEnvironment, n: int, name: str = "seq") -> DataStream:
    """A bounded Java source of ``n`` longs."""
    return env.from_source(NumberSequenceSource(1, n), WatermarkStrategy.no_watermarks(), name)


class Metered(MapFunction):  # type: ignore[misc]
    """``map`` that ticks a meter and applies ``fn``."""

    def __init__(self, path: str, fn: Callable[[Any], Any]) -> None:
        self.path = path
        self.fn = fn
        self.meter: Meter | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        """Start the meter."""
        self.meter = Meter(self.path)

    def map(self, value: Any) -> Any:
        """Tick and apply."""
        assert self.meter is not None
        self.meter.tick()
        return self.fn(value)

    def close(self) -> None:
        """Write the meter."""
        if self.meter is not None:
            self.meter.close()


# --- probe 3: Row width into the Table API ---------------------------------------------------


def rows_job(env: StreamExecutionEnvironment, spec: dict[str, Any]) -> None:
    """map -> Row of ``width`` DOUBLE fields (or id + BYTES) -> from_data_stream -> blackhole."""
    width, n, meter = spec["width"], spec["n"], spec["meter"]
    t_env = StreamTableEnvironment.create(env)
    if width == "pickled":
        sequence(env, n).map(Metered(meter, lambda v: (v, 1.0)), output_type=PICKLED).sink_to(
            discard()
        )
        env.execute("probe-rows-pickled")
        return
    if width == "bytes300":
        names, types, sql_cols = (
            ["id", "payload"],
            [Types.LONG(), BYTES],
            "id BIGINT, payload BYTES",
        )
        payload = bytes(300)

        def make(v: int) -> Row:
            return Row(v, payload)
    else:
        names = [f"f{i}" for i in range(width)]
        types = [Types.DOUBLE()] * width
        sql_cols = ", ".join(f"{c} DOUBLE" for c in names)
        values = [float(i) for i in range(width)]

        def make(v: int) -> Row:
            return Row(*values)

    stream = sequence(env, n).map(Metered(meter, make), output_type=Types.ROW_NAMED(names, types))
    t_env.execute_sql(f"CREATE TABLE bh ({sql_cols}) WITH ('connector' = 'blackhole')")
    t_env.from_data_stream(stream).execute_insert("bh").wait()


# --- probe 4: pandas UDF over packed vectors -------------------------------------------------


class PackedScore(ScalarFunction):  # type: ignore[misc]
    """Vectorized: decode the joined BYTES column with one ``np.frombuffer``, return 3 columns."""

    def __init__(self, meter_path: str) -> None:
        self.meter_path = meter_path
        self.rows = 0
        self.calls = 0
        self.first = 0.0
        self.last = 0.0
        self.busy = 0.0
        self.weights = np.linspace(-1.0, 1.0, VECTOR_FLOATS)

    def open(self, function_context: Any) -> None:
        """Reset counters."""
        self.rows = self.calls = 0

    def eval(self, features: pd.Series) -> pd.DataFrame:
        """Score a batch."""
        now = time.perf_counter()
        if not self.calls:
            self.first = now
        self.calls += 1
        self.rows += len(features)
        matrix = np.frombuffer(b"".join(features.values), dtype="<f8").reshape(-1, VECTOR_FLOATS)
        score = 1.0 / (1.0 + np.exp(-np.nan_to_num(matrix) @ self.weights * 1e-3))
        decision = (score > 0.9).astype(np.int32) + (score > 0.99).astype(np.int32)
        out = pd.DataFrame(
            {"score": score, "decision": decision, "model": np.full(len(score), "m1", dtype=object)}
        )
        self.last = time.perf_counter()
        self.busy += self.last - now
        return out

    def close(self) -> None:
        """Write rows/s between the first and the last batch."""
        steady = self.last - self.first
        with open(self.meter_path, "a") as out:
            out.write(
                json.dumps(
                    {
                        "udf_rows": self.rows,
                        "udf_calls": self.calls,
                        "udf_rows_per_call": round(self.rows / max(self.calls, 1), 1),
                        "udf_steady_s": round(steady, 3),
                        "udf_rows_per_s": round(self.rows / steady, 1) if steady > 0 else None,
                        "udf_busy_s": round(self.busy, 3),
                        "udf_rows_per_busy_s": round(self.rows / self.busy) if self.busy else None,
                        "pid": os.getpid(),
                    }
                )
                + "\n"
            )


def pandas_job(env: StreamExecutionEnvironment, spec: dict[str, Any]) -> None:
    """datagen (Java, BYTES of 320) -> pandas UDF -> ROW(score, decision, model) -> blackhole."""
    n, meter = spec["n"], spec["meter"]
    t_env = StreamTableEnvironment.create(env)
    config = t_env.get_config()
    config.set("python.fn-execution.arrow.batch.size", str(spec["arrow_batch"]))
    config.set("python.fn-execution.bundle.size", str(spec["bundle_size"]))
    config.set("python.fn-execution.bundle.time", str(spec["bundle_time_ms"]))
    t_env.execute_sql(
        f"""CREATE TABLE vectors (id BIGINT, features BYTES) WITH (
        'connector' = 'datagen', 'number-of-rows' = '{n}', 'rows-per-second' = '1000000000',
        'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{n}',
        'fields.features.length' = '{VECTOR.size}')"""
    )
    t_env.execute_sql(
        "CREATE TABLE bh (id BIGINT, score DOUBLE, decision INT, model STRING) "
        "WITH ('connector' = 'blackhole')"
    )
    score = udf(
        PackedScore(meter),
        result_type=DataTypes.ROW(
            [
                DataTypes.FIELD("score", DataTypes.DOUBLE()),
                DataTypes.FIELD("decision", DataTypes.INT()),
                DataTypes.FIELD("model", DataTypes.STRING()),
            ]
        ),
        func_type="pandas",
    )
    t_env.create_temporary_function("packed_score", score)
    started = time.perf_counter()
    t_env.execute_sql(
        "INSERT INTO bh SELECT id, r.score, r.decision, r.model FROM "
        "(SELECT id, packed_score(features) AS r FROM vectors)"
    ).wait()
    with open(meter, "a") as out:
        out.write(json.dumps({"job_wall_s": round(time.perf_counter() - started, 2)}) + "\n")


# --- probe 5: Kafka sinks --------------------------------------------------------------------


def sinks_job(env: StreamExecutionEnvironment, spec: dict[str, Any], settings: Settings) -> None:
    """map -> bytes (~330) -> discard | DataStream KafkaSink (ALO/EOS) | Table raw sink (EOS)."""
    n, meter, kind, topic = spec["n"], spec["meter"], spec["sink"], spec.get("topic", "")
    payload = bytes(330)
    bootstrap = settings.kafka.bootstrap
    if kind == "table-eos":
        stream = sequence(env, n).map(
            Metered(meter, lambda v: Row(payload)), output_type=Types.ROW_NAMED(["v"], [BYTES])
        )
        t_env = StreamTableEnvironment.create(env)
        t_env.execute_sql(
            f"""CREATE TABLE kout (v BYTES) WITH (
            'connector' = 'kafka', 'topic' = '{topic}',
            'properties.bootstrap.servers' = '{bootstrap}',
            'properties.transaction.timeout.ms' = '600000',
            'format' = 'raw',
            'sink.delivery-guarantee' = 'exactly-once',
            'sink.transactional-id-prefix' = 'probe-table-{topic}')"""
        )
        statements = t_env.create_statement_set()
        statements.add_insert("kout", t_env.from_data_stream(stream))
        statements.attach_as_datastream()
        # A DataStream branch in the same job, to show both kinds of sinks share one job graph.
        sequence(env, 10, "side-seq").map(lambda v: v, output_type=Types.LONG()).sink_to(discard())
        env.execute("probe-sinks-table-eos")
        return
    stream = sequence(env, n).map(Metered(meter, lambda v: payload), output_type=BYTES)
    if kind == "discard":
        stream.sink_to(discard())
    else:
        builder = (
            KafkaSink.builder()
            .set_bootstrap_servers(bootstrap)
            .set_record_serializer(
                KafkaRecordSerializationSchema.builder()
                .set_topic(topic)
                .set_value_serialization_schema(ByteArraySchema())
                .build()
            )
        )
        if kind.startswith("ds-eos"):
            builder = (
                builder.set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
                .set_transactional_id_prefix(f"probe-ds-{topic}")
                .set_property("transaction.timeout.ms", "600000")
            )
        else:
            builder = builder.set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        if kind.endswith("-batched"):
            for key, value in BATCHED_PRODUCER.items():
                builder = builder.set_property(key, value)
        stream.sink_to(builder.build())
    env.execute(f"probe-sinks-{kind}")


# --- probe 6: side outputs and chaining ------------------------------------------------------


class SideEvery(ProcessFunction):  # type: ignore[misc]
    """Main output per record, plus a side output per record when ``side``."""

    def __init__(self, path: str, side: bool) -> None:
        self.path = path
        self.side = side
        self.meter: Meter | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        """Start the meter."""
        self.meter = Meter(self.path)

    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Iterator[Any]:
        """Emit."""
        assert self.meter is not None
        self.meter.tick()
        record = (value, "card-0000001", 12.5)
        if self.side:
            yield SIDE, record
        yield record

    def close(self) -> None:
        """Write the meter."""
        if self.meter is not None:
            self.meter.close()


def chain_job(env: StreamExecutionEnvironment, spec: dict[str, Any]) -> None:
    """one map | two chained maps | process + side output per record | + side declared only."""
    n, meter, kind = spec["n"], spec["meter"], spec["kind"]
    src = sequence(env, n)

    def record(v: int) -> tuple[int, str, float]:
        return (v, "card-0000001", 12.5)

    if kind == "one-map":
        src.map(Metered(meter, record), output_type=PICKLED).sink_to(discard())
    elif kind == "two-maps":
        first = src.map(Metered(meter, record), output_type=PICKLED)
        first.map(lambda r: r, output_type=PICKLED).sink_to(discard())
    else:
        main = src.process(SideEvery(meter, kind == "side-every"), output_type=PICKLED)
        main.sink_to(discard())
        main.get_side_output(SIDE).sink_to(discard())
    env.execute(f"probe-chain-{kind}")


# --- probe 2: KeyedBroadcastProcessFunction --------------------------------------------------


class Stamped(TimestampAssigner):  # type: ignore[misc]
    """Event time = the sequence number in ms."""

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        """The value itself."""
        return int(value)


class BroadcastProbe(KeyedBroadcastProcessFunction):  # type: ignore[misc]
    """Times broadcast-state put (broadcast side), get (keyed side, fresh handle per call vs a
    cached handle) and counts event-time timers."""

    def __init__(self, path: str, cached: bool) -> None:
        self.path = path
        self.cached = cached
        self.meter: Meter | None = None
        self.handle: Any = None
        self.put_s = 0.0
        self.puts = 0
        self.get_s = 0.0
        self.gets = 0
        self.hits = 0
        self.timers = 0
        self.fired = 0

    def open(self, runtime_context: RuntimeContext) -> None:
        """Start the meter."""
        self.meter = Meter(self.path)

    def process_element(self, value: int, ctx: Any) -> Iterator[int]:
        """Read the broadcast state for this key; register a timer every 10th record."""
        assert self.meter is not None
        self.meter.tick()
        started = time.perf_counter()
        if self.cached:
            if self.handle is None:
                self.handle = ctx.get_broadcast_state(TILES)
            state = self.handle
        else:
            state = ctx.get_broadcast_state(TILES)
        got = state.get(f"t{value % 500}")
        self.get_s += time.perf_counter() - started
        self.gets += 1
        self.hits += got is not None
        if value % 10 == 0:
            ctx.timer_service().register_event_time_timer(value + 1_000)
            self.timers += 1
        yield value

    def process_broadcast_element(self, value: int, ctx: Any) -> Iterator[int]:
        """Put one tile-sized entry."""
        state = ctx.get_broadcast_state(TILES)
        started = time.perf_counter()
        state.put(f"t{value}", ("payload", value, b"x" * 2000))
        self.put_s += time.perf_counter() - started
        self.puts += 1
        yield from ()

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[int]:
        """Count fired timers."""
        self.fired += 1
        yield from ()

    def close(self) -> None:
        """Write the meter and the timings."""
        if self.meter is None:
            return
        self.meter.facts = {
            "broadcast_puts": self.puts,
            "put_us": round(self.put_s / max(self.puts, 1) * 1e6, 2),
            "gets": self.gets,
            "get_us": round(self.get_s / max(self.gets, 1) * 1e6, 2),
            "get_hits": self.hits,
            "timers_registered": self.timers,
            "timers_fired": self.fired,
            "cached_handle": self.cached,
        }
        self.meter.close()


def broadcast_job(env: StreamExecutionEnvironment, spec: dict[str, Any]) -> None:
    """keyed payments (event time = value ms) + broadcast 500 tiles -> BroadcastProbe."""
    n, meter = spec["n"], spec["meter"]
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(Stamped())
    payments = (
        sequence(env, n)
        .map(lambda v: v, output_type=Types.LONG())
        .assign_timestamps_and_watermarks(strategy)
    )
    tiles = sequence(env, 500, "tiles").map(lambda v: v, output_type=Types.LONG())
    (
        payments.key_by(lambda v: v % 7000, Types.LONG())
        .connect(tiles.broadcast(TILES))
        .process(BroadcastProbe(meter, spec["cached"]), output_type=Types.LONG())
        .sink_to(discard())
    )
    env.execute("probe-broadcast")


# --- probe 1: Kafka input paths --------------------------------------------------------------


class RawRows(ProcessFunction):  # type: ignore[misc]
    """Reads a Kafka row (value, partition, offset, timestamp) or a plain value; notes nulls,
    empties, the positions seen and the highest watermark."""

    def __init__(self, path: str, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.meter: Meter | None = None
        self.nulls = 0
        self.empties = 0
        self.watermark = -(2**63)
        self.partitions: set[int] = set()
        self.max_ts = 0

    def open(self, runtime_context: RuntimeContext) -> None:
        """Start the meter."""
        self.meter = Meter(self.path, skip=spec_skip())

    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Iterator[Any]:
        """Inspect and drop."""
        assert self.meter is not None
        self.meter.tick()
        payload = value[0] if self.kind == "sql" else value
        if payload is None:
            self.nulls += 1
        elif len(payload) == 0:
            self.empties += 1
        if self.kind == "sql" and len(value) > 1:
            self.partitions.add(value[1])
        ts = ctx.timestamp()
        if ts is not None and ts > self.max_ts:
            self.max_ts = ts
        wm = ctx.timer_service().current_watermark()
        self.watermark = max(self.watermark, wm)
        yield from ()

    def close(self) -> None:
        """Write the facts."""
        if self.meter is None:
            return
        self.meter.facts = {
            "kind": self.kind,
            "nulls": self.nulls,
            "empties": self.empties,
            "partitions_seen": sorted(self.partitions),
            "max_watermark": self.watermark,
            "max_record_timestamp": self.max_ts,
            "wall_ms_at_close": int(time.time() * 1000),
        }
        self.meter.close()


_SKIP = {"value": 5_000}


def spec_skip() -> int:
    """Records the meter skips (small for the semantics topics)."""
    return _SKIP["value"]


def kafka_job(env: StreamExecutionEnvironment, spec: dict[str, Any], settings: Settings) -> None:
    """KafkaSource (string or bytes) or a SQL raw table with metadata -> RawRows."""
    kind, meter, topic = spec["kind"], spec["meter"], spec["topic"]
    bootstrap = settings.kafka.bootstrap
    watermark = spec.get("watermark", "ts - INTERVAL '5' SECOND")
    if kind in ("string", "bytes"):
        schema = SimpleStringSchema() if kind == "string" else ByteArraySchema()
        source = (
            KafkaSource.builder()
            .set_bootstrap_servers(bootstrap)
            .set_topics(topic)
            .set_group_id(f"probe-{kind}")
            .set_starting_offsets(KafkaOffsetsInitializer.earliest())
            .set_bounded(KafkaOffsetsInitializer.latest())
            .set_value_only_deserializer(schema)
            .build()
        )
        strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_seconds(5))
        stream = env.from_source(source, strategy, f"kafka-{kind}")
        stream.process(RawRows(meter, kind)).print()
        env.execute(f"probe-kafka-{kind}")
        return
    t_env = StreamTableEnvironment.create(env)
    extra = spec.get("extra_options", "")
    ddl = f"""CREATE TABLE raw_in (
        `value` BYTES,
        `partition` INT METADATA VIRTUAL,
        `offset` BIGINT METADATA VIRTUAL,
        `timestamp` TIMESTAMP_LTZ(3) METADATA,
        ts AS {spec.get("ts_expr", "`timestamp`")},
        WATERMARK FOR ts AS {watermark}
    ) WITH (
        'connector' = 'kafka', 'topic' = '{topic}',
        'properties.bootstrap.servers' = '{spec.get("bootstrap", bootstrap)}',
        'properties.group.id' = 'probe-sql',
        'scan.startup.mode' = 'earliest-offset',
        'scan.bounded.mode' = 'latest-offset',
        'format' = 'raw'{extra}
    )"""
    t_env.execute_sql(ddl)
    columns = spec.get("columns", "`value`, `partition`, `offset`, `timestamp`")
    table = t_env.sql_query(f"SELECT {columns} FROM raw_in")
    with open(meter, "a") as out:
        out.write(json.dumps({"explain": table.explain()}) + "\n")
    stream = t_env.to_data_stream(table)
    stream.process(RawRows(meter, "sql")).print()
    client = env.execute_async("probe-kafka-sql")
    if spec.get("rest_dump"):
        _dump_rest(settings, spec["rest_dump"])
    client.get_job_execution_result().result()


def _dump_rest(settings: Settings, path: str) -> None:
    """Save what the REST API shows of the running job (plan, config), to look for secrets."""
    import urllib.request

    base = f"http://127.0.0.1:{settings.flink.local_rest_port}"
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/jobs", timeout=5) as answer:
                jobs = json.loads(answer.read())["jobs"]
            for job in jobs:
                for suffix in ("", "/plan", "/config"):
                    with urllib.request.urlopen(f"{base}/jobs/{job['id']}{suffix}") as answer:
                        seen.append(answer.read().decode())
            if seen:
                break
        except OSError:
            time.sleep(0.5)
    Path(path).write_text("\n".join(seen))


def main(spec: dict[str, Any]) -> None:
    """Run the spec's variant."""
    settings = load_settings(overrides=spec.get("settings", {}), environ={})
    _SKIP["value"] = spec.get("skip", 5_000)
    env = create_env(settings, extra=spec.get("flink", {}))
    probe = spec["probe"]
    if probe == "rows":
        rows_job(env, spec)
    elif probe == "pandas":
        pandas_job(env, spec)
    elif probe == "sinks":
        sinks_job(env, spec, settings)
    elif probe == "chain":
        chain_job(env, spec)
    elif probe == "broadcast":
        broadcast_job(env, spec)
    elif probe == "kafka":
        kafka_job(env, spec, settings)
    else:
        raise SystemExit(f"unknown probe {probe!r}")


if __name__ == "__main__":
    main(json.loads(Path(sys.argv[1]).read_text()))
