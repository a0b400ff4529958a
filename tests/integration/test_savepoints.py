"""Stop with a savepoint and resume, on the mini-cluster and the standalone cluster.

The skeleton's per-key counters must continue after the resume exactly as if the job had never
stopped: the n-th event of a key gets count n, whatever side of the savepoint it fell on.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import Settings, replace, with_overrides
from core.errors import ServiceError
from riskstream import jobrunner
from riskstream.cli import GATEWAY_DISABLED_VAR
from riskstream.infra.cluster import LocalCluster
from riskstream.infra.process import wait_until
from riskstream.infra.rest import FlinkRest
from riskstream.support.kafka_io import produce_at_rate, producer, read_values
from riskstream.support.topics import create_topic

pytestmark = pytest.mark.integration

RISKSTREAM = str(Path(sys.executable).parent / "riskstream")
KEYS = 5
FIRST, SECOND = 200, 150
WAIT_S = 180.0


def _settings(base: Settings, name: str) -> Settings:
    source = create_topic(base, f"{name}-in", partitions=2)
    sink = create_topic(base, f"{name}-out", partitions=1)
    job = replace(base.skeleton, input_topic=source, output_topic=sink, group_id=f"{name}-group")
    return replace(base, skeleton=job)


def _produce(settings: Settings, start: int, count: int) -> None:
    topic = settings.skeleton.input_topic
    records = [
        (topic, json.dumps({"id": f"k{i % KEYS}", "seq": i}).encode(), None, None)
        for i in range(start, start + count)
    ]
    assert (
        produce_at_rate(producer(settings, **{"enable.idempotence": "true"}), records, None)
        == count
    )


LOG_TAIL_CHARS = 4000


def _wait_for_outputs(settings: Settings, expected: int, log: Path | None = None) -> None:
    """Wait for ``expected`` outputs; if they do not come, fail with the local job's exit code
    and the end of its log (a job that could not start says why there)."""
    topic = settings.skeleton.output_topic
    try:
        wait_until(
            lambda: len(read_values(settings, topic, committed=False)) >= expected,
            WAIT_S,
            f"{expected} outputs",
            poll_s=1.0,
        )
    except ServiceError as e:
        if log is None:
            raise
        tail = log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        raise AssertionError(f"{e}; the local job's log {log} ends:\n{tail}") from e


def _start_local(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`riskstream run --job skeleton` on a mini-cluster in its own process, output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [RISKSTREAM, "--config", str(config), "run", "--job", "skeleton"],
            stdout=out,
            stderr=subprocess.STDOUT,
            # As inherited from a process that ran a pandas UDF locally (PyFlink sets it there);
            # the CLI must still start its job (it failed to, once test_replay had run).
            env={**os.environ, GATEWAY_DISABLED_VAR: "true"},
        )


def _assert_continuous(settings: Settings, total: int) -> None:
    outputs = [
        json.loads(v)
        for v in read_values(settings, settings.skeleton.output_topic, committed=False)
    ]
    per_key: dict[str, list[int]] = collections.defaultdict(list)
    for out in outputs:
        per_key[out["key"]].append(out["count"])
    assert len(outputs) == total
    for key, counts in per_key.items():
        assert sorted(counts) == list(range(1, total // KEYS + 1)), key


def _run_local_until(settings: Settings, config: Path, expected: int, savepoint_dir: Path) -> Path:
    """Run the skeleton with `riskstream run` until ``expected`` outputs exist, then stop it with
    `riskstream stop --savepoint`; returns the savepoint directory."""
    log = savepoint_dir.with_name(f"{savepoint_dir.name}-job.log")
    job = _start_local(config, log)
    try:
        _wait_for_outputs(settings, expected, log)
        stop = subprocess.run(
            [RISKSTREAM, "--config", str(config), "stop", "--savepoint", str(savepoint_dir)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert stop.returncode == 0, stop.stderr
        assert job.wait(timeout=120) == 0
    finally:
        if job.poll() is None:
            job.kill()
    savepoint = max(savepoint_dir.glob("savepoint-*"), key=lambda p: p.stat().st_mtime)
    assert str(savepoint) in stop.stdout
    return savepoint


def test_stop_with_savepoint_and_resume_locally(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = _settings(kafka_settings, "sp-local")
    _produce(settings, 0, FIRST)
    config = jobrunner.write_settings(settings, tmp_path / "settings.yaml")
    savepoint = _run_local_until(settings, config, FIRST, tmp_path / "sp")
    _produce(settings, FIRST, SECOND)
    resumed = with_overrides(settings, checkpoint={"restore_from": str(savepoint)})
    config = jobrunner.write_settings(resumed, tmp_path / "resumed.yaml")
    _run_local_until(settings, config, FIRST + SECOND, tmp_path / "sp2")
    _assert_continuous(settings, FIRST + SECOND)


def test_savepoint_on_cluster_resumes_with_parallelism_2(
    flink_cluster: LocalCluster, tmp_path: Path
) -> None:
    settings = _settings(flink_cluster.settings, "sp-cluster")
    rest = FlinkRest(flink_cluster.rest_url)
    _produce(settings, 0, FIRST)
    jobrunner.submit_to_cluster(settings, "skeleton", detached=True)
    _wait_for_outputs(settings, FIRST)
    job = rest.running_job(name="riskstream-skeleton")
    location = rest.stop_with_savepoint(job.job_id, tmp_path / "sp")
    _produce(settings, FIRST, SECOND)
    resumed = with_overrides(
        settings, checkpoint={"restore_from": location}, flink={"parallelism": 2}
    )
    jobrunner.submit_to_cluster(resumed, "skeleton", detached=True)
    _wait_for_outputs(settings, FIRST + SECOND)
    job = rest.running_job(name="riskstream-skeleton")
    rest.stop_with_savepoint(job.job_id, tmp_path / "sp2")
    _assert_continuous(settings, FIRST + SECOND)


def _latest_checkpoint(checkpoints: Path) -> Path | None:
    done = [p.parent for p in checkpoints.glob("*/chk-*/_metadata")]
    return max(done, key=lambda p: int(p.name.removeprefix("chk-")), default=None)


def _checkpoint_number(checkpoint: Path | None) -> int:
    return -1 if checkpoint is None else int(checkpoint.name.removeprefix("chk-"))


def test_resume_from_a_retained_checkpoint_after_cancel(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """A cancelled job keeps its last checkpoint (RETAIN_ON_CANCELLATION); `run --from-savepoint
    <chk-N>` restores its state and offsets: the counters continue, and no input is read twice
    (a fresh start would read from the earliest offsets and count from 1 again)."""
    settings = with_overrides(
        _settings(kafka_settings, "chk-local"),
        checkpoint={"interval_ms": 1000, "dir": str(tmp_path / "checkpoints")},
    )
    _produce(settings, 0, FIRST)
    config = jobrunner.write_settings(settings, tmp_path / "settings.yaml")
    log = tmp_path / "job.log"
    job = _start_local(config, log)
    try:
        _wait_for_outputs(settings, FIRST, log)
        # The second checkpoint completing after the outputs was triggered after them, so its
        # offsets cover every input: nothing is replayed from it.
        first = _checkpoint_number(_latest_checkpoint(settings.checkpoint_dir))
        wait_until(
            lambda: _checkpoint_number(_latest_checkpoint(settings.checkpoint_dir)) >= first + 2,
            WAIT_S,
            "two checkpoints completed after the outputs",
            poll_s=0.5,
        )
        rest = FlinkRest(f"http://127.0.0.1:{settings.flink.local_rest_port}")
        rest.cancel(rest.running_job(name="riskstream-skeleton").job_id)
        job.wait(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
    checkpoint = _latest_checkpoint(settings.checkpoint_dir)
    assert checkpoint is not None and (checkpoint / "_metadata").is_file()
    _produce(settings, FIRST, SECOND)
    resumed = with_overrides(settings, checkpoint={"restore_from": str(checkpoint)})
    config = jobrunner.write_settings(resumed, tmp_path / "resumed.yaml")
    _run_local_until(settings, config, FIRST + SECOND, tmp_path / "sp")
    _assert_continuous(settings, FIRST + SECOND)
