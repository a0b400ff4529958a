"""Benchmark: our pure-Python feature code per payment, on the realistic simulator's data.

No JVM: this is the Python work the stream's keyed stages do per payment, without PyFlink's own
cost. It replays the ``realistic`` profile (default 60 days, 7,000 cards, seed 16: the traffic of
``bench/shapes``) in arrival order, payments and labels interleaved as the simulator produces them
to Kafka, and runs each payment the way ``udfs/feature_stages.py`` does: per stage the key's state
blob is decoded, the stage entry point of :mod:`features.stages` runs, the blob is encoded back
(held in a dict in place of a Flink ValueState), then the enriched record is built and encoded as
JSON. Three passes over the same events, each from empty state:

1. ``timed``: every step timed separately by the wall clock (the timer's own cost is measured and
   subtracted), so the table shows where a payment's microseconds go, and the p50/p99 of a
   payment's total; as other load stretches wall time, the steps are reported as their shares of
   the CPU-time total of pass 2;
2. ``total``: the same work untimed, the headline ``total_us_per_event`` / ``events_per_s`` (CPU
   time of the process, best of ``--repeats`` passes: less inflated by other load than wall time);
3. ``driver``: :class:`features.compute.FeaturePipeline` (states as objects, no blobs: what the
   backfill and the training set run).

Every feature value of every payment (and its duplicate flag) goes into a SHA-256 digest, so two
runs (say main and a branch) can be compared bit for bit: ``--before FILE`` embeds an earlier
run's figures and digest, and the result says whether the values are identical. Run from the
repo root: ``python -m bench.feature_code [--cards N] [--days N] [--before FILE] [--out FILE]``;
writes ``bench/results/feature_code.json``. To measure another checkout with this file (main has
no ``bench/feature_code.py``), run it from that checkout's root with its own venv, so ``features``
is imported from there: ``python -c "import runpy, sys; sys.argv[1:] = ['--out', 'main.json'];
runpy.run_path('<this branch>/bench/feature_code.py', run_name='__main__')"``, then pass
``--before main.json`` here.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.config import SimulatorSettings, replace
from features import card, device, output, stages, terminal
from features.compute import FeaturePipeline
from features.params import FeatureParams
from riskstream.simulate_kafka import merged_records
from schemas.records import Label, Transaction
from schemas.validation import RecordSchemaError, decode
from training.simulator.generate import simulate

RESULTS = Path(__file__).parent / "results" / "feature_code.json"
TRAFFIC = {"profile": "realistic", "days": 60, "cards": 7_000, "seed": 16}
"""The data of ``bench/shapes`` (issue 16's measurement: ~855k delivered payments)."""
TARGET_US_PER_EVENT = 25.0
QUIET_LOAD = 1.5
STEPS = (
    "card_decode",
    "card_logic",
    "card_encode",
    "device_decode",
    "device_logic",
    "device_encode",
    "terminal_decode",
    "terminal_logic",
    "terminal_encode",
    "output_build",
    "output_json",
    "labels",
)
"""Timed steps of a payment (``labels``: a label's decode, add and encode, device and terminal)."""
_NS = 1e-9

Event = Transaction | Label


def events(traffic: dict[str, Any]) -> tuple[list[Event], dict[str, Any]]:
    """The simulated payments and labels in arrival order (malformed records dropped)."""
    sim = simulate(replace(SimulatorSettings(), **traffic))
    out: list[Event] = []
    malformed = 0
    for topic, value, _key, _ts in merged_records(sim, "t", "l"):
        try:
            out.append(decode("transaction" if topic == "t" else "label", value))
        except RecordSchemaError:
            malformed += 1
    payments = sum(1 for e in out if isinstance(e, Transaction))
    return out, {
        "traffic": traffic,
        "payments": payments,
        "labels": len(out) - payments,
        "malformed_dropped": malformed,
        "cards": len({e.card_id for e in out if isinstance(e, Transaction)}),
        "terminals": len({e.terminal_id for e in out if isinstance(e, Transaction)}),
    }


class _Digest:
    """SHA-256 over every payment's feature values (float64 bytes) and duplicate flag."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._pack = struct.Struct("<?").pack

    def add(self, vector: tuple[float, ...], duplicate: bool) -> None:
        self._hash.update(np.asarray(vector, dtype=np.float64).tobytes())
        self._hash.update(self._pack(duplicate))

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _Stream:
    """The keyed stages as the stream runs them: one blob per key per stage."""

    def __init__(self, params: FeatureParams) -> None:
        self.params = params
        self.cards: dict[str, bytes] = {}
        self.devices: dict[str, bytes] = {}
        self.terminals: dict[str, bytes] = {}

    def add_label(self, label: Label) -> None:
        """A label through the device (if it has one) and terminal stages' blobs."""
        if label.device_id is not None:
            d = device.decode(self.devices.get(label.device_id))
            if device.add_label(d, label):
                self.devices[label.device_id] = device.encode(d)
        ts = terminal.decode(self.terminals.get(label.terminal_id))
        if terminal.add_label(ts, label, self.params):
            self.terminals[label.terminal_id] = terminal.encode(ts)


def run_total(evs: list[Event], params: FeatureParams, digest: _Digest | None) -> float:
    """CPU seconds of the untimed stream-shaped pass (CPU time: less inflated by other load)."""
    s = _Stream(params)
    cards, devices, terminals = s.cards, s.devices, s.terminals
    loaded: list[device.DeviceState] = []

    def load(device_id: str) -> device.DeviceState:
        state = device.decode(devices.get(device_id))
        loaded.append(state)
        return state

    started = time.process_time()
    for e in evs:
        if isinstance(e, Label):
            s.add_label(e)
            continue
        cs = card.decode(cards.get(e.card_id))
        values, dup = stages.card_stage(cs, e, params)
        if not dup:
            cards[e.card_id] = card.encode(cs)
        changed = stages.device_stage(e, dup, values, params, load)
        if changed is not None:
            devices[stages.device_key(e)] = device.encode(changed)
        ts = terminal.decode(terminals.get(e.terminal_id))
        if stages.terminal_stage(ts, e, dup, values, params):
            terminals[e.terminal_id] = terminal.encode(ts)
        record = output.build(
            e, values=values, duplicate=dup, late=False, watermark_lag_ms=-1, computed_time=0
        )
        output.encode(record).decode()
        if digest is not None:
            digest.add(values.vector(), dup)
    return time.process_time() - started


def _timer_cost_ns() -> float:
    clock = time.perf_counter_ns
    n = 200_000
    started = clock()
    for _ in range(n):
        clock()
    return (clock() - started) / n


def run_timed(evs: list[Event], params: FeatureParams) -> dict[str, Any]:
    """Per-step nanoseconds summed over the pass, and each payment's total (ns)."""
    s = _Stream(params)
    cards, devices, terminals = s.cards, s.devices, s.terminals
    clock = time.perf_counter_ns
    spent = dict.fromkeys(STEPS, 0)
    per_payment: list[int] = []
    overhead = _timer_cost_ns()
    ticks = dict.fromkeys(STEPS, 0)
    card_sizes: list[int] = []
    terminal_sizes: list[int] = []
    for e in evs:
        if isinstance(e, Label):
            t0 = clock()
            s.add_label(e)
            spent["labels"] += clock() - t0
            ticks["labels"] += 1
            continue
        t0 = clock()
        blob = cards.get(e.card_id)
        cs = card.decode(blob)
        t1 = clock()
        values, dup = stages.card_stage(cs, e, params)
        t2 = clock()
        if not dup:
            blob = cards[e.card_id] = card.encode(cs)
        t3 = clock()
        spent["card_decode"] += t1 - t0
        spent["card_logic"] += t2 - t1
        spent["card_encode"] += t3 - t2
        total = t3 - t0
        if blob is not None:
            card_sizes.append(len(blob))
        if e.device_id is not None:
            t0 = clock()
            d = device.decode(devices.get(e.device_id))
            t1 = clock()
            device.process(d, e, dup, params, values)
            t2 = clock()
            if not dup:
                devices[e.device_id] = device.encode(d)
            t3 = clock()
            spent["device_decode"] += t1 - t0
            spent["device_logic"] += t2 - t1
            spent["device_encode"] += t3 - t2
            total += t3 - t0
            ticks["device_decode"] += 1
        else:
            t0 = clock()
            device.no_device_values(values)
            t1 = clock()
            spent["device_logic"] += t1 - t0
            total += t1 - t0
        t0 = clock()
        tblob = terminals.get(e.terminal_id)
        ts = terminal.decode(tblob)
        t1 = clock()
        changed = stages.terminal_stage(ts, e, dup, values, params)
        t2 = clock()
        if changed:
            tblob = terminals[e.terminal_id] = terminal.encode(ts)
        t3 = clock()
        if tblob is not None:
            terminal_sizes.append(len(tblob))
        record = output.build(
            e, values=values, duplicate=dup, late=False, watermark_lag_ms=-1, computed_time=0
        )
        t4 = clock()
        output.encode(record).decode()
        t5 = clock()
        spent["terminal_decode"] += t1 - t0
        spent["terminal_logic"] += t2 - t1
        spent["terminal_encode"] += t3 - t2
        spent["output_build"] += t4 - t3
        spent["output_json"] += t5 - t4
        total += t5 - t0
        per_payment.append(total)
    payments = len(per_payment)
    # Subtract the timer's own cost: one clock() per step boundary of each timed step.
    corrected: dict[str, float] = {}
    for step, ns in spent.items():
        calls = ticks[step] if step in ("labels",) else payments
        if step.startswith("device_") and step != "device_logic":
            calls = ticks["device_decode"]
        corrected[step] = max(0.0, ns - overhead * calls)
    per = np.asarray(per_payment, dtype=np.float64)
    return {
        "payments": payments,
        "label_events": ticks["labels"],
        "with_device": ticks["device_decode"],
        "step_ns": corrected,
        "timer_overhead_ns": round(overhead, 1),
        "payment_us_p50": float(np.percentile(per, 50)) / 1000,
        "payment_us_p99": float(np.percentile(per, 99)) / 1000,
        "card_blob_bytes_p50_p99": [int(np.percentile(card_sizes, q)) for q in (50, 99)],
        "terminal_blob_bytes_p50_p99_max": [
            *(int(np.percentile(terminal_sizes, q)) for q in (50, 99)),
            max(terminal_sizes),
        ],
    }


def run_driver(evs: list[Event], params: FeatureParams) -> float:
    """CPU seconds of the plain-Python driver over the events."""
    pipeline = FeaturePipeline(params)
    started = time.process_time()
    for e in evs:
        if isinstance(e, Label):
            pipeline.label(e)
        else:
            pipeline.transaction(e)
    return time.process_time() - started


def _code_origin() -> dict[str, str]:
    """Which feature code ran: the directory ``features`` was imported from and its commit."""
    where = Path(card.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=where,
        ).stdout.strip()
        branch = subprocess.run(
            ["git", "rev-parse", "--abbrev-ref", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=where,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = branch = ""
    return {"code_dir": str(where), "commit": commit, "branch": branch}


def _best(runs: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(runs))


def measure(traffic: dict[str, Any], repeats: int) -> dict[str, Any]:
    """All three passes over one simulation."""
    load_start = os.getloadavg()
    params = FeatureParams()
    started = time.perf_counter()
    evs, data = events(traffic)
    prepare_s = time.perf_counter() - started
    gc.collect()
    gc.freeze()  # the event list is long-lived: keep the collector from rescanning it
    digest = _Digest()
    run_total(evs, params, digest)  # also the warm-up
    timed = run_timed(evs, params)
    total_s = _best(repeats, lambda: run_total(evs, params, None))
    driver_s = _best(repeats, lambda: run_driver(evs, params))
    payments = timed["payments"]
    total_us = total_s / payments * 1e6
    wall_us = {k: v / payments / 1000 for k, v in timed["step_ns"].items()}
    # The timed pass runs on the wall clock, which other load stretches (preemption lands on every
    # step in proportion to its length): its steps are reported as shares of the CPU-time total.
    scale = total_us / max(sum(wall_us.values()), 1e-9)
    step_us = {k: v * scale for k, v in wall_us.items()}
    card_us = step_us["card_decode"] + step_us["card_logic"] + step_us["card_encode"]
    device_us = step_us["device_decode"] + step_us["device_logic"] + step_us["device_encode"]
    terminal_us = (
        step_us["terminal_decode"] + step_us["terminal_logic"] + step_us["terminal_encode"]
    )
    output_us = step_us["output_build"] + step_us["output_json"]
    figures = {
        "total_us_per_event": round(total_us, 2),
        "events_per_s": round(payments / total_s),
        "card_us_per_event": round(card_us, 2),
        "device_us_per_event": round(device_us, 2),
        "terminal_us_per_event": round(terminal_us, 2),
        "output_us_per_event": round(output_us, 2),
        "labels_us_per_payment": round(step_us["labels"], 2),
        "timed_wall_us_per_event": round(sum(wall_us.values()), 2),
        "payment_us_p50": round(timed["payment_us_p50"] * scale, 2),
        "payment_us_p99": round(timed["payment_us_p99"] * scale, 2),
        "driver_us_per_event": round(driver_s / payments * 1e6, 2),
        "driver_events_per_s": round(payments / driver_s),
        **{f"{k}_us_per_event": round(v, 2) for k, v in step_us.items()},
    }
    return {
        "benchmark": "feature_code",
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code": _code_origin(),
        "load_average_start": [round(v, 2) for v in load_start],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "quiet_machine": load_start[0] < QUIET_LOAD,
        "figures": figures,
        "target": {"total_us_per_event": TARGET_US_PER_EVENT},
        "values_sha256": digest.hexdigest(),
        "data": {
            **data,
            "prepare_s": round(prepare_s, 1),
            "with_device": timed["with_device"],
            "card_blob_bytes_p50_p99": timed["card_blob_bytes_p50_p99"],
            "terminal_blob_bytes_p50_p99_max": timed["terminal_blob_bytes_p50_p99_max"],
        },
        "setup": {
            "repeats": repeats,
            "timer_overhead_ns": timed["timer_overhead_ns"],
            "timed_wall_us_per_event_by_step": {k: round(v, 2) for k, v in wall_us.items()},
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "notes": "us per payment; *_decode/_logic/_encode are per payment (device: averaged "
            "over all payments, only those with a device pay it); labels are charged per payment "
            "too; total and driver = CPU time of the untimed passes (best of repeats); the "
            "per-step figures and p50/p99 are the timed pass's wall-clock shares (timer cost "
            "subtracted) scaled to the CPU total (raw wall figures under setup)",
        },
    }


def _with_before(result: dict[str, Any], before_path: Path) -> None:
    before = json.loads(before_path.read_text("utf-8"))
    if "before" in before:  # an earlier combined result: take its own before side
        before = before["before"]
    result["before"] = {
        k: before[k]
        for k in ("measured_utc", "code", "load_average_start", "load_average_end", "figures")
        if k in before
    }
    result["before"]["values_sha256"] = before.get("values_sha256")
    result["values_identical_to_before"] = before.get("values_sha256") == result["values_sha256"]
    b, a = before["figures"], result["figures"]
    result["speedup"] = {
        k: round(b[k] / a[k], 2)
        for k in ("total_us_per_event", "card_us_per_event", "terminal_us_per_event")
        if a.get(k) and b.get(k)
    }


def _table(result: dict[str, Any]) -> Iterator[str]:
    after = result["figures"]
    before = result.get("before", {}).get("figures", {})
    yield f"{'figure (us per payment)':<28}{'before':>12}{'now':>12}"
    for key, value in after.items():
        shown = before.get(key, "")
        yield f"{key:<28}{shown!s:>12}{value!s:>12}"
    if "values_identical_to_before" in result:
        yield f"feature values identical to before: {result['values_identical_to_before']}"
    yield f"load average start {result['load_average_start']} end {result['load_average_end']}"


def main(argv: list[str] | None = None) -> None:
    """Run, print a table, write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=TRAFFIC["cards"])
    parser.add_argument("--days", type=int, default=TRAFFIC["days"])
    parser.add_argument("--seed", type=int, default=TRAFFIC["seed"])
    parser.add_argument("--repeats", type=int, default=2, help="untimed passes (best is kept)")
    parser.add_argument("--before", type=Path, help="an earlier result to compare with")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    traffic = {**TRAFFIC, "cards": args.cards, "days": args.days, "seed": args.seed}
    result = measure(traffic, args.repeats)
    if args.before is not None:
        _with_before(result, args.before)
    for line in _table(result):
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
