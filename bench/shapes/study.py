"""The hot-path shapes study: floor and real throughput of each candidate shape, side by side.

One run (``python -m bench.shapes``, alone on the machine):

1. a private broker; the ``realistic`` simulator (60 days, 7,000 cards: ~855k delivered payments
   with their duplicates, late and malformed records, ~47k labels) produced into it with the Kafka
   record timestamp = event time (CreateTime), as production producers do;
2. every shape as a bounded job (the sources stop at a per-run event-time bound sized for tens of
   seconds of work; a run still going after ``CAP_S`` is cancelled) at parallelism 1 in thread mode
   on the mini-cluster, floor then real; shape (c) on a standalone cluster of two TaskManagers with
   one slot each at parallelism 2;
3. throughput at the end of the graph: the output topic is stamped by the broker
   (LogAppendTime), and events/s are counted from ``WARM_S`` after the first output record to the
   last one (start-up excluded);
4. GIL-held time per event: ``py-spy record --nonblocking --gil`` on the TaskManager JVM(s) for a
   few seconds of the steady part, divided by the outputs in that interval;
5. the restore check of the real tile shapes: the same job with a failure injected after a few
   checkpoints; Flink restarts it from the last checkpoint, and every output (replays included)
   must equal the uninterrupted run's output for that payment.

Writes ``bench/results/shapes.json`` and prints the table.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from bench.common import bench_settings, private_broker, table, write_results
from bench.shapes.ops import unpack
from core import jars
from core.config import Settings, TopicSettings, replace, with_overrides
from core.net import free_port
from core.progress import Progress
from riskstream.infra.cluster import LocalCluster
from riskstream.infra.process import descendants, process_matches
from riskstream.simulate_kafka import produce
from schemas.feature_set import PAYMENT_FEATURES
from training.simulator.generate import simulate

TRAFFIC = {"profile": "realistic", "days": 60, "cards": 7_000, "seed": 16}
PARTITIONS = 2
TARGET_S = 25.0
"""Seconds of work each run is sized for, from the expected rates below."""
CAP_S = 75.0
"""A run still producing this long after its first output is cancelled (its rate still counts)."""
WARM_S = 2.0
PROFILE_AFTER_S = 4.0
PROFILE_S = 8.0
PROFILE_RATE_HZ = 100
EXPECTED_EVENTS_PER_S = {
    "base-floor": 4_500,
    "base-real": 1_800,
    "a-floor": 16_000,
    "a-real": 7_000,
    "b-floor": 11_000,
    "b-real": 5_000,
    "c-floor": 26_000,
    "c-real": 12_000,
}
MIN_EVENTS = 30_000
REAL_EVENTS = 175_000
"""Input of every real run at parallelism 1 (about 12 days: the same card history for each)."""
BASE_REAL_CAP_S = 150.0
RESTORE_EVENTS = 60_000
RESTORE_FAIL_AFTER_S = 6.0
RESTORE_CHECKPOINT_MS = 1_500
JOB_SCRIPT = Path(__file__).with_name("job.py")
SHAPE_NOTES = {
    "base": "today: validate + card, device, terminal keyed stages (3 exchanges), JSON out",
    "a": "validate -> keyBy card -> 1 keyed broadcast op (card+event+terminal tiles), no device",
    "b": "a, then payments with a device -> keyBy device -> device op, union",
    "c": "best of a/b on 2 TaskManagers x 1 slot, parallelism 2 (standalone cluster)",
}


@dataclasses.dataclass
class RunResult:
    """What one run measured."""

    name: str
    events_in: int
    outputs: int
    events_per_s: float
    steady_s: float
    wall_s: float
    cancelled: bool
    gil_us_per_event: float | None
    cpu_us_per_event: float | None
    top_frames: list[tuple[str, float]]
    values: dict[tuple[str, bool], tuple[float, ...]] | None = None


def create_topic(settings: Settings, name: str, partitions: int, append_time: bool) -> None:
    """A fresh topic (LogAppendTime for outputs, CreateTime for inputs)."""
    conf: dict[str, Any] = {**settings.kafka.client_config()}
    admin = AdminClient(conf)
    config = {"message.timestamp.type": "LogAppendTime"} if append_time else {}
    for future in admin.create_topics([NewTopic(name, partitions, 1, config=config)]).values():
        future.result(timeout=30)


def prepare(base: Settings) -> tuple[Settings, np.ndarray, dict[str, Any]]:  # type: ignore[type-arg]
    """Input topics filled from the simulator; returns settings, the sorted record timestamps of
    the transactions topic and a description of the data."""
    run = uuid.uuid4().hex[:6]
    topics = dict(base.kafka.topics)
    for role in ("transactions", "labels", "dead_letter"):
        name = f"shapes-{run}-{role.replace('_', '-')}"
        create_topic(base, name, PARTITIONS if role != "dead_letter" else 1, append_time=False)
        topics[role] = TopicSettings(name=name, partitions=PARTITIONS)
    settings = with_overrides(base, kafka={"topics": topics})
    sim = simulate(replace(base.simulator, **TRAFFIC))
    started = time.monotonic()
    produced = produce(sim, settings.kafka, 1e9, Progress(1, "produce", quiet=True))
    stamps = np.sort(sim.transactions.event_time[sim.delivery.source])
    online = float(np.mean(sim.transactions.device >= 0))
    data = {
        "simulator": TRAFFIC,
        "delivered_payments": produced.transactions,
        "labels": produced.labels,
        "payments_with_device_share": round(online, 3),
        "produce_s": round(time.monotonic() - started, 1),
        "first_event_ms": int(stamps[0]),
    }
    return settings, stamps, data


def sized(name: str) -> int:
    """Input events for about ``TARGET_S`` seconds of run ``name`` at its expected rate."""
    return max(MIN_EVENTS, int(EXPECTED_EVENTS_PER_S[name] * TARGET_S))


def stop_for(stamps: np.ndarray, events: int) -> int:  # type: ignore[type-arg]
    """Event-time bound that lets about ``events`` payments through (or all of them)."""
    if events >= len(stamps):
        return int(stamps[-1]) + 1
    return int(stamps[events])


def read_output(
    settings: Settings, topic: str, decode: bool
) -> tuple[np.ndarray, dict[tuple[str, bool], tuple[float, ...]] | None, int]:  # type: ignore[type-arg]
    """Append times (sorted) of every output record, optionally the decoded values by
    (event id, duplicate), and how many decoded records disagreed with an earlier copy."""
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": uuid.uuid4().hex,
            "enable.auto.commit": False,
        }
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts
    }
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    stamps: list[int] = []
    values: dict[tuple[str, bool], tuple[float, ...]] = {}
    conflicts = 0
    total = sum(ends.values())
    while len(stamps) < total:
        for message in consumer.consume(20_000, timeout=1.0):
            if message.error() is not None:
                continue
            stamps.append(message.timestamp()[1])
            if decode and message.value() is not None:
                event_id, duplicate, _late, vector = unpack(message.value() or b"")
                key = (event_id, duplicate)
                if key in values and values[key] != vector:
                    conflicts += 1
                values.setdefault(key, vector)
    consumer.close()
    return np.sort(np.array(stamps, dtype=np.int64)), (values if decode else None), conflicts


def end_offsets(settings: Settings, topic: str) -> int:
    """Records in ``topic`` now."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": uuid.uuid4().hex})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts
        )
    finally:
        consumer.close()


def jvm_pids(root: int) -> list[int]:
    """Java processes under ``root`` (the mini-cluster's gateway JVM)."""
    return [pid for pid in descendants(root) if process_matches(pid, "java")]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (0 for a process that is gone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def cpu_per_event(
    samples: list[tuple[float, float]],
    stamps: np.ndarray,  # type: ignore[type-arg]
    events_per_output: float,
    warm_s: float = WARM_S,
) -> float | None:
    """CPU microseconds per event over the steady part: the CPU used between the first sample
    after ``WARM_S`` past the first output and the last sample, over the events output in
    between (a load-independent cost; the broker's CPU is not included)."""
    if len(stamps) < 2 or len(samples) < 2:
        return None
    start = stamps[0] + warm_s * 1000
    steady = [(t, c) for t, c in samples if start <= t <= stamps[-1]]
    if len(steady) < 2:
        return None
    (t0, c0), (t1, c1) = steady[0], steady[-1]
    events = int(((stamps >= t0) & (stamps < t1)).sum()) * events_per_output
    return (c1 - c0) * 1e6 / events if events else None


def profile(pids: list[int], seconds: float, out_dir: Path) -> list[subprocess.Popen[bytes]]:
    """Start ``py-spy record --gil`` on each JVM (raw folded stacks)."""
    spy = Path(sys.executable).with_name("py-spy")
    procs = []
    for pid in pids:
        cmd = [
            str(spy),
            "record",
            "--nonblocking",
            "--gil",
            "--rate",
            str(PROFILE_RATE_HZ),
            "--duration",
            str(int(seconds)),
            "--format",
            "raw",
            "-o",
            str(out_dir / f"spy-{pid}.txt"),
            "-p",
            str(pid),
        ]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def folded_samples(out_dir: Path) -> tuple[int, list[tuple[str, float]]]:
    """Total GIL-held samples and the top leaf frames (share of samples)."""
    total = 0
    leaves: collections.Counter[str] = collections.Counter()
    for path in out_dir.glob("spy-*.txt"):
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            leaf = stack.split(";")[-1].strip()[:90]
            leaves[leaf or "<no Python frame: pemja/JNI, conversions>"] += n
    top = [(frame, round(n / total, 3)) for frame, n in leaves.most_common(8)] if total else []
    return total, top


def cancel_all(rest_url: str) -> None:
    """Cancel every running job at ``rest_url``."""
    with contextlib.suppress(OSError, ValueError):
        with urllib.request.urlopen(rest_url + "/jobs", timeout=5) as answer:
            jobs = json.loads(answer.read()).get("jobs", [])
        for job in jobs:
            if job.get("status") == "RUNNING":
                request = urllib.request.Request(
                    f"{rest_url}/jobs/{job['id']}?mode=cancel", method="PATCH"
                )
                urllib.request.urlopen(request, timeout=5).close()


def rate(stamps: np.ndarray, warm_s: float = WARM_S) -> tuple[float, float, int]:  # type: ignore[type-arg]
    """(events/s, steady seconds, steady events) from ``WARM_S`` after the first output."""
    if len(stamps) < 2:
        return 0.0, 0.0, 0
    start = stamps[0] + warm_s * 1000
    steady = stamps[stamps >= start]
    seconds = (stamps[-1] - start) / 1000.0
    if seconds <= 0:
        return 0.0, 0.0, 0
    return len(steady) / seconds, seconds, len(steady)


@dataclasses.dataclass
class Runner:
    """Runs shapes on the mini-cluster or the cluster and measures them."""

    settings: Settings
    stamps: np.ndarray  # type: ignore[type-arg]
    work: Path
    cluster: LocalCluster | None = None

    def _jvms(self, job_pid: int) -> list[int]:
        """The JVMs that run the job's operators (TaskManagers, or the mini-cluster)."""
        if self.cluster is not None:
            return [pid for role, pid in self.cluster.all_pids() if role == "taskexecutor"]
        return jvm_pids(job_pid)

    def run(
        self,
        name: str,
        shape: str,
        mode: str,
        events: int,
        *,
        decode: bool = False,
        extra: dict[str, Any] | None = None,
        parallelism: int = 1,
        checkpoint_ms: int | None = None,
        cap_s: float = CAP_S,
        sparse: bool = False,
    ) -> RunResult:
        """One bounded run of ``shape``/``mode`` over about ``events`` payments."""
        out_topic = f"shapes-out-{name}-{uuid.uuid4().hex[:6]}"
        create_topic(self.settings, out_topic, 1, append_time=True)
        stop = stop_for(self.stamps, events)
        rest_port = free_port()
        overrides: dict[str, Any] = {
            "paths": {"run_dir": str(self.settings.paths.run)},
            "kafka": {
                "port": self.settings.kafka.port,
                "controller_port": self.settings.kafka.controller_port,
                "topics": {
                    role: {"name": t.name, "partitions": t.partitions}
                    for role, t in self.settings.kafka.topics.items()
                },
            },
            "flink": {"local_rest_port": rest_port, "parallelism": parallelism},
            "features": {
                "stop_timestamp_ms": stop,
                "group_id": f"shapes-{name}-{uuid.uuid4().hex[:6]}",
            },
            "checkpoint": {
                "dir": str(self.work / "checkpoints" / name),
                **({"interval_ms": checkpoint_ms} if checkpoint_ms else {}),
            },
        }
        spec = {"shape": shape, "mode": mode, "settings": overrides, "out_topic": out_topic}
        spec |= extra or {}
        spec_file = self.work / f"{name}.json"
        spec_file.write_text(json.dumps(spec))
        log = (self.work / f"{name}.log").open("w")
        env = dict(os.environ)
        if self.cluster is not None:
            cmd = [
                *self.cluster.flink_command(),
                "run",
                "-m",
                self.cluster.address,
                "-py",
                str(JOB_SCRIPT),
                "-pyexec",
                sys.executable,
                "-pyclientexec",
                sys.executable,
                "-j",
                str(jars.connector_jar(self.settings)),
                str(spec_file),
            ]
            env = self.cluster.environment()
            rest_url = self.cluster.rest_url
        else:
            cmd = [sys.executable, str(JOB_SCRIPT), str(spec_file)]
            rest_url = f"http://127.0.0.1:{rest_port}"
        spy_dir = self.work / f"spy-{name}"
        spy_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        job = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        first_output = None
        spies: list[subprocess.Popen[bytes]] = []
        spy_window: tuple[float, float] | None = None
        cancelled = False
        cpu_samples: list[tuple[float, float]] = []
        watched: list[int] = []
        while job.poll() is None:
            time.sleep(0.5)
            now = time.monotonic()
            if not watched:
                watched = self._jvms(job.pid)
            if watched:
                cpu_samples.append((time.time() * 1000, cpu_seconds(watched)))
            if first_output is None:
                if end_offsets(self.settings, out_topic) > 0:
                    first_output = now
                continue
            if not spies and now - first_output >= PROFILE_AFTER_S and watched:
                spies = profile(watched, PROFILE_S, spy_dir)
                wall_ms = time.time() * 1000
                spy_window = (wall_ms, wall_ms + PROFILE_S * 1000)
            if now - first_output > cap_s and not cancelled:
                cancel_all(rest_url)
                cancelled = True
        for spy in spies:
            spy.wait(timeout=PROFILE_S + 30)
        log.close()
        wall = time.monotonic() - started
        if job.returncode != 0 and not cancelled:
            tail = (self.work / f"{name}.log").read_text()[-3000:]
            raise RuntimeError(f"shape run {name} failed (exit {job.returncode}):\n{tail}")
        stamps, values, conflicts = read_output(self.settings, out_topic, decode)
        warm = 0.0 if sparse else WARM_S
        per_s, steady_s, _ = rate(stamps, warm)
        gil = None
        top: list[tuple[str, float]] = []
        samples, top = folded_samples(spy_dir)
        if spy_window is not None and samples:
            inside = int(((stamps >= spy_window[0]) & (stamps < spy_window[1])).sum())
            if inside:
                gil = samples / PROFILE_RATE_HZ * 1e6 / inside
        # Sparse outputs (the tile job: one record per hour): rates in input events.
        per_output = min(events, len(self.stamps)) / len(stamps) if sparse and len(stamps) else 1.0
        cpu = cpu_per_event(cpu_samples, stamps, per_output, warm)
        per_s *= per_output
        if conflicts:
            print(f"  {name}: {conflicts} outputs disagreed with an earlier copy", flush=True)
        result = RunResult(
            name=name,
            events_in=min(events, len(self.stamps)),
            outputs=len(stamps),
            events_per_s=round(per_s, 1),
            steady_s=round(steady_s, 1),
            wall_s=round(wall, 1),
            cancelled=cancelled,
            gil_us_per_event=round(gil, 1) if gil else None,
            cpu_us_per_event=round(cpu, 1) if cpu else None,
            top_frames=top,
            values=values,
        )
        gil_text = f"{result.gil_us_per_event} us GIL/event" if gil else "no profile"
        gil_text += f", {result.cpu_us_per_event} us CPU/event"
        print(
            f"  {name}: {result.events_per_s:,.0f} events/s over {result.steady_s} s "
            f"({result.outputs} outputs, {gil_text}, wall {result.wall_s} s"
            f"{', cancelled at the cap' if cancelled else ''})",
            flush=True,
        )
        return result


def feature_names(shape: str) -> tuple[str, ...]:
    """Names of the packed values of the real tile shapes: the feature set (in shape a the
    device features keep their missing value)."""
    return PAYMENT_FEATURES.names


def restore_check(runner: Runner, shape: str, reference: RunResult) -> dict[str, Any]:
    """Fail the real ``shape`` once after a few checkpoints; compare every output with the
    uninterrupted run's output for the same payment."""
    marker = runner.work / f"marker-{shape}"
    report = runner.work / f"report-{shape}.jsonl"
    result = runner.run(
        f"{shape}-restore",
        shape,
        "real",
        RESTORE_EVENTS,
        decode=True,
        checkpoint_ms=RESTORE_CHECKPOINT_MS,
        extra={
            "fail_after_s": RESTORE_FAIL_AFTER_S,
            "marker": str(marker),
            "report": str(report),
        },
    )
    assert result.values is not None and reference.values is not None
    compared = mismatched = missing = 0
    by_feature: collections.Counter[str] = collections.Counter()
    examples: list[str] = []
    for key, vector in result.values.items():
        expected = reference.values.get(key)
        if expected is None:
            missing += 1
            continue
        compared += 1
        if expected != vector:
            mismatched += 1
            for i, (x, y) in enumerate(zip(vector, expected, strict=False)):
                if x != y:
                    by_feature[feature_names(shape)[i]] += 1
            if len(examples) < 3:
                examples.append(f"{key}: {vector} != {expected}")
    notes = (
        [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    )
    return {
        "failed_once": marker.exists(),
        "outputs_incl_replays": result.outputs,
        "distinct_payments": len(result.values),
        "compared": compared,
        "mismatched": mismatched,
        "mismatched_by_feature": dict(by_feature),
        "not_in_reference": missing,
        "examples": examples,
        "cache_rebuilds": notes,
    }


def main(argv: list[str] | None = None) -> None:
    """Run the study, print the table, write the results.

    ``--quick`` (a development smoke run: 12 days, 1,500 cards, short runs, no results file) and
    ``--only NAME,...`` (e.g. ``a-real,restore-a,c``) exist for developing the study.
    """
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    only = set(args[args.index("--only") + 1].split(",")) if "--only" in args else None
    if quick:
        TRAFFIC.update(days=12, cards=1_500)
        global TARGET_S, MIN_EVENTS, RESTORE_EVENTS, REAL_EVENTS
        TARGET_S, MIN_EVENTS, RESTORE_EVENTS, REAL_EVENTS = 4.0, 5_000, 20_000, 25_000

    def wanted(name: str) -> bool:
        return only is None or name in only

    load_start = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, RunResult] = {}
    details: dict[str, Any] = {"load_average_start": load_start}
    with (
        bench_settings("shapes") as base,
        private_broker(base),
        tempfile.TemporaryDirectory(prefix="riskstream-shapes-") as tmp,
    ):
        print("simulating and producing the realistic profile ...", flush=True)
        settings, stamps, data = prepare(base)
        details["data"] = data
        print(f"  {data}", flush=True)
        runner = Runner(settings, stamps, Path(tmp))
        for shape in ("base", "a", "b"):
            for mode in ("floor", "real"):
                name = f"{shape}-{mode}"
                if not wanted(name):
                    continue
                # Real runs read the same input (same card history); floors hold no state.
                events = REAL_EVENTS if mode == "real" else sized(name)
                results[name] = runner.run(
                    name,
                    shape,
                    mode,
                    events,
                    decode=(mode == "real" and shape != "base"),
                    cap_s=BASE_REAL_CAP_S if name == "base-real" else CAP_S,
                )
        if wanted("tiles"):
            results["tiles"] = runner.run("tiles", "tiles", "real", len(stamps), sparse=True)
        details["restore"] = {}
        for shape in "ab":
            if wanted(f"restore-{shape}") and f"{shape}-real" in results:
                try:
                    details["restore"][shape] = restore_check(
                        runner, shape, results[f"{shape}-real"]
                    )
                except Exception as exc:
                    details["restore"][shape] = {"error": f"{type(exc).__name__}: {exc}"[-2000:]}
        print(f"  restore: {json.dumps(details['restore'])}", flush=True)
        a, b = results.get("a-real"), results.get("b-real")
        best = "b" if a is None or (b is not None and b.events_per_s > a.events_per_s) else "a"
        details["c_shape"] = best
        if wanted("c"):
            try:
                results.update(run_on_cluster(settings, stamps, Path(tmp), best))
            except Exception as exc:  # keep the other shapes' figures; say what failed
                details["c_error"] = f"{type(exc).__name__}: {str(exc)[-2000:]}"
                print(f"  shape c failed: {details['c_error']}", flush=True)
    details["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report(results, details, write=not quick and only is None)


def run_on_cluster(
    settings: Settings,
    stamps: np.ndarray,  # type: ignore[type-arg]
    work: Path,
    shape: str,
) -> dict[str, RunResult]:
    """Shape (c): ``shape`` at parallelism 2 on two TaskManagers with one slot each."""
    cluster_settings = with_overrides(
        settings,
        flink={
            "rest_port": free_port(),
            "rpc_port": free_port(),
            "taskmanager_slots": 1,
            "parallelism": 2,
            "taskmanager_memory": "1600m",
        },
    )
    cluster = LocalCluster(cluster_settings)
    print("starting a standalone cluster with two TaskManagers of one slot ...", flush=True)
    cluster.start()
    out: dict[str, RunResult] = {}
    try:
        cluster.start_taskmanager()
        runner = Runner(cluster_settings, stamps, work, cluster)
        for mode in ("floor", "real"):
            name = f"c-{mode}"
            out[name] = runner.run(name, shape, mode, sized(name), parallelism=2)
    finally:
        cluster.stop()
    return out


def report(results: dict[str, RunResult], details: dict[str, Any], write: bool = True) -> None:
    """Print the table and write ``bench/results/shapes.json``."""
    rows: list[list[Any]] = []
    figures: dict[str, float] = {}
    for shape in ("base", "a", "b", "c"):
        floor, real = results.get(f"{shape}-floor"), results.get(f"{shape}-real")
        if floor is None or real is None:
            continue
        ratio = real.events_per_s / floor.events_per_s if floor.events_per_s else 0.0
        note = SHAPE_NOTES[shape] + (f" [{details['c_shape']}]" if shape == "c" else "")
        rows.append(
            [
                shape,
                floor.events_per_s,
                real.events_per_s,
                round(ratio, 2),
                floor.gil_us_per_event or "-",
                real.gil_us_per_event or "-",
                floor.cpu_us_per_event or "-",
                real.cpu_us_per_event or "-",
                note,
            ]
        )
        figures[f"{shape}_floor_events_per_s"] = floor.events_per_s
        figures[f"{shape}_real_events_per_s"] = real.events_per_s
        figures[f"{shape}_real_over_floor_ratio"] = round(ratio, 3)
        for mode, run in (("floor", floor), ("real", real)):
            if run.gil_us_per_event:
                figures[f"{shape}_{mode}_gil_us_per_event"] = run.gil_us_per_event
            if run.cpu_us_per_event:
                figures[f"{shape}_{mode}_cpu_us_per_event"] = run.cpu_us_per_event
    tiles = results.get("tiles")
    if tiles is not None:
        rows.append(
            [
                "tiles",
                "-",
                tiles.events_per_s,
                "-",
                "-",
                "-",
                "-",
                tiles.cpu_us_per_event or "-",
                "tile SQL alone (Java), input events",
            ]
        )
        figures["tiles_sql_events_per_s"] = tiles.events_per_s
        if tiles.cpu_us_per_event:
            figures["tiles_sql_cpu_us_per_event"] = tiles.cpu_us_per_event
    print(
        table(
            [
                "shape",
                "floor ev/s",
                "real ev/s",
                "real/floor",
                "floor GIL us/ev",
                "real GIL us/ev",
                "floor CPU us/ev",
                "real CPU us/ev",
                "graph",
            ],
            rows,
        )
    )
    details["runs"] = {
        name: {k: v for k, v in dataclasses.asdict(r).items() if k != "values"}
        for name, r in results.items()
    }
    details["sink"] = (
        "Kafka sink (at least once; linger 20 ms, batch 1 MB, lz4) to a LogAppendTime topic"
    )
    details["parallelism"] = "1 (mini-cluster) for base/a/b; 2 on 2 TaskManagers x 1 slot for c"
    details["state"] = "RocksDB, incremental checkpoints every 10 s (restore check: 1.5 s)"
    if write:
        path = write_results("shapes", figures, details)
        print(f"wrote {path}")
    else:
        print(json.dumps({"figures": figures, "details": details}, indent=1, default=str))
