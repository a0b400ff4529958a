"""A job that fails for good on the mini-cluster ends with one line: the failing task, the root
cause and the path of the full log (issue 12, item 9), not a raw Py4J traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings, with_overrides
from core.errors import JobError
from jobs.env import create_env
from riskstream.jobrunner import failed_task, reporting_failures, root_cause

pytestmark = [pytest.mark.flink]

POISON = 3


def poison(value: int) -> int:
    """Raises on the poison value, as a model or a parser bug would."""
    if value == POISON:
        raise ValueError(f"poison record {value}")
    return value


def test_a_permanent_failure_names_the_task_the_cause_and_the_log(
    base_settings: Settings, tmp_path: Path
) -> None:
    settings = with_overrides(
        base_settings,
        checkpoint={"interval_ms": 0, "restart_attempts": 0, "dir": str(tmp_path / "chk")},
        metrics={"reporter": False},
    )

    def run() -> None:
        from pyflink.common import Types

        env = create_env(settings, connectors=False)
        numbers = env.from_collection([1, 2, POISON, 4], type_info=Types.INT())
        numbers.map(poison, output_type=Types.INT()).name("poison map").print()
        env.execute("failing-job")

    with pytest.raises(JobError) as caught:
        reporting_failures("failing-job", run)
    message = str(caught.value)
    assert "\n" not in message, message
    assert "poison map" in message, message
    assert f"poison record {POISON}" in message, message
    log = Path(message.rsplit("full log: ", 1)[1])
    assert log.is_file() and "poison record" in log.read_text(errors="replace")


def test_root_cause_and_task_from_real_shapes_of_trace_and_log() -> None:
    trace = (
        "An error occurred while calling o8.execute.\n"
        ": org.apache.flink.runtime.client.JobExecutionException: Job execution failed.\n"
        "\tat org.apache.flink.runtime.jobmaster.JobResult.toJobExecutionResult(JobResult.java)\n"
        "Caused by: org.apache.flink.runtime.JobException: Recovery is suppressed by "
        "NoRestartBackoffTimeStrategy\n"
        "Caused by: org.apache.kafka.common.errors.RecordTooLargeException: The message is "
        "1800000 bytes\n\tat x.y\n"
    )
    assert root_cause(trace).startswith("org.apache.kafka.common.errors.RecordTooLargeException")
    log = (
        "2026-12-02 07:40:01,001 INFO  org.apache.flink.runtime.taskmanager.Task [] - "
        "Source: a -> validate transactions (1/1)#0 (8f2c_0_0) switched from RUNNING to FAILED "
        "with failure cause: x\n"
        "2026-12-02 07:40:01,101 INFO  org.apache.flink.runtime.executiongraph.ExecutionGraph [] - "
        "decisions sink (1/1) (9a1b_0_1) switched from RUNNING to FAILED on 127.0.0.1:1 @ h.\n"
    )
    assert failed_task(log) == "decisions sink"
    assert failed_task("nothing failed here") is None
