"""A small client of Flink's REST API: list jobs, stop with a savepoint, read checkpoints and
metrics.

Both targets expose the same API: the standalone cluster on ``flink.rest_port`` and a mini-cluster
run (``riskstream run``) on ``flink.local_rest_port``, so operations work the same on either.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import JobError

REQUEST_TIMEOUT_S = 10.0
SAVEPOINT_TIMEOUT_S = 300.0
POLL_S = 0.5
RUNNING = "RUNNING"


@dataclass(frozen=True)
class JobInfo:
    """One job as the REST API lists it."""

    job_id: str
    name: str
    state: str


@dataclass(frozen=True)
class CheckpointStats:
    """A job's checkpoints as ``/jobs/<id>/checkpoints`` reports them (sizes in bytes)."""

    completed: int
    failed: int
    restored: int
    latest_id: int | None
    latest_duration_ms: int
    latest_state_bytes: int
    latest_checkpointed_bytes: int
    restored_id: int | None
    """The checkpoint the job last restored from after a failure (None: never restored)."""


@dataclass(frozen=True)
class TaskFailure:
    """One entry of a job's exception history."""

    timestamp_ms: int
    exception: str
    task: str
    stacktrace: str


class FlinkRest:
    """REST client bound to one ``http://host:port``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method="POST" if body is not None else "GET",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as answer:
                loaded: dict[str, Any] = json.loads(answer.read() or b"{}")
                return loaded
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise JobError(f"Flink REST {path} answered {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise JobError(
                f"no Flink REST API at {self.base_url} ({exc}); is the job or cluster running?"
            ) from exc

    def reachable(self) -> bool:
        """Whether the REST API answers."""
        try:
            self._call("/overview")
        except JobError:
            return False
        return True

    def jobs(self) -> list[JobInfo]:
        """Every job the JobManager knows, with its name and state."""
        overview = self._call("/jobs/overview")
        return [JobInfo(j["jid"], j["name"], j["state"]) for j in overview.get("jobs", [])]

    def running_job(self, name: str | None = None, job_id: str | None = None) -> JobInfo:
        """The one running job (optionally with this name or id); raises if none or several."""
        candidates = [
            j
            for j in self.jobs()
            if j.state == RUNNING
            and (name is None or j.name == name)
            and (job_id is None or j.job_id == job_id)
        ]
        if len(candidates) != 1:
            listed = ", ".join(f"{j.name} ({j.job_id}, {j.state})" for j in self.jobs()) or "none"
            raise JobError(
                f"expected exactly one running job at {self.base_url}"
                f"{f' named {name!r}' if name else ''}, found {len(candidates)}; jobs: {listed}"
            )
        return candidates[0]

    def stop_with_savepoint(self, job_id: str, directory: Path) -> str:
        """Stop ``job_id`` with a savepoint under ``directory``; returns the savepoint path."""
        trigger = self._call(
            f"/jobs/{job_id}/stop",
            {"targetDirectory": directory.resolve().as_uri(), "drain": False},
        )
        return self._await_savepoint(job_id, str(trigger["request-id"]))

    def _await_savepoint(self, job_id: str, request_id: str) -> str:
        deadline = time.monotonic() + SAVEPOINT_TIMEOUT_S
        while time.monotonic() < deadline:
            status = self._call(f"/jobs/{job_id}/savepoints/{request_id}")
            if status.get("status", {}).get("id") == "COMPLETED":
                operation = status.get("operation", {})
                if "failure-cause" in operation:
                    cause = operation["failure-cause"].get("stack-trace", "")[:1500]
                    raise JobError(f"savepoint of job {job_id} failed: {cause}")
                return str(operation["location"])
            time.sleep(POLL_S)
        raise JobError(f"savepoint of job {job_id} did not complete in {SAVEPOINT_TIMEOUT_S:.0f} s")

    def tasks_running(self, job_id: str) -> bool:
        """Whether every task of the job is running (operators opened, models loaded)."""
        vertices = self._call(f"/jobs/{job_id}").get("vertices", [])
        return bool(vertices) and all(v.get("status") == RUNNING for v in vertices)

    def checkpoints(self, job_id: str) -> CheckpointStats:
        """Checkpoint counts and the latest completed / restored checkpoint of a job."""
        answer = self._call(f"/jobs/{job_id}/checkpoints")
        counts = answer.get("counts", {})
        latest = answer.get("latest") or {}
        completed = latest.get("completed") or {}
        restored = latest.get("restored") or {}
        return CheckpointStats(
            completed=int(counts.get("completed", 0)),
            failed=int(counts.get("failed", 0)),
            restored=int(counts.get("restored", 0)),
            latest_id=int(completed["id"]) if completed else None,
            latest_duration_ms=int(completed.get("end_to_end_duration", 0)),
            latest_state_bytes=int(completed.get("state_size", 0)),
            latest_checkpointed_bytes=int(completed.get("checkpointed_size", 0)),
            restored_id=int(restored["id"]) if restored else None,
        )

    def failures(self, job_id: str) -> list[TaskFailure]:
        """The job's exception history, oldest first (what failed, where, when)."""
        answer = self._call(f"/jobs/{job_id}/exceptions")
        entries = (answer.get("exceptionHistory") or {}).get("entries") or []
        found = [
            TaskFailure(
                timestamp_ms=int(entry.get("timestamp", 0)),
                exception=str(entry.get("exceptionName", "")),
                task=str(entry.get("taskName") or ""),
                stacktrace=str(entry.get("stacktrace", "")),
            )
            for entry in entries
        ]
        return sorted(found, key=lambda f: f.timestamp_ms)

    def restore_timestamp(self, job_id: str) -> int | None:
        """When the job last restored a checkpoint after a failure (epoch ms), if it did."""
        latest = self._call(f"/jobs/{job_id}/checkpoints").get("latest") or {}
        restored = latest.get("restored") or {}
        return int(restored["restore_timestamp"]) if restored.get("restore_timestamp") else None

    def job_metric(self, job_id: str, name: str) -> float | None:
        """A job-level metric (e.g. ``numRestarts``); None if the job does not report it yet."""
        answer = self._call_list(f"/jobs/{job_id}/metrics?get={name}")
        for metric in answer:
            if metric.get("id") == name:
                return float(metric["value"])
        return None

    def _call_list(self, path: str) -> list[dict[str, Any]]:
        request = urllib.request.Request(self.base_url + path)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as answer:
                loaded: list[dict[str, Any]] = json.loads(answer.read() or b"[]")
                return loaded
        except (urllib.error.URLError, OSError) as exc:
            raise JobError(f"Flink REST {path} at {self.base_url} failed: {exc}") from exc

    def cancel(self, job_id: str) -> None:
        """Cancel a job (no savepoint)."""
        request = urllib.request.Request(
            f"{self.base_url}/jobs/{job_id}?mode=cancel", method="PATCH"
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S):
                pass
        except (urllib.error.URLError, OSError) as exc:
            raise JobError(f"could not cancel job {job_id} at {self.base_url}: {exc}") from exc
