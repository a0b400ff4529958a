"""The scoring job's metrics reach a real Prometheus through Flink's Prometheus reporter.

A real Prometheus (the pinned Debian package, `riskstream observe start`) scrapes the mini-cluster's
reporter port every second while the scoring job decides a short simulated stream; its HTTP API
must then hold the decision counter by outcome and the per-stage latency histogram, both named as
in :data:`udfs.metrics.METRICS`.

The job runs unbounded and is cancelled only once the server holds every documented series (or
after :data:`SCRAPE_WAIT_S`): a bounded run lets its fast tasks finish, and a finished task takes
its metrics off the reporter, sometimes before the first scrape reached them.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.config import Settings, with_overrides
from core.errors import ServiceError
from core.net import free_port
from jobs import scoring
from riskstream.cli import main as cli_main
from riskstream.infra.process import wait_until
from riskstream.infra.prometheus import LOCAL_JOB, LocalPrometheus
from riskstream.jobrunner import write_settings
from riskstream.support.topics import private_settings
from udfs import metrics

pytestmark = [pytest.mark.integration, pytest.mark.flink]

ROLES = {
    "transactions": 1,
    "labels": 1,
    "dead_letter": 1,
    "decisions": 1,
    "predictions": 1,
    "alerts": 1,
}
NO_SHEDDING_MS = 3_600_000
WINDOW = "[15m]"
SCRAPE_WAIT_S = 120
POLL_S = 1.0


def _metric(name: str) -> str:
    return next(m.name for m in metrics.METRICS if m.name.endswith(f"_{name}"))


@pytest.fixture(scope="module")
def observed(
    kafka_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    fresh_champion: Callable[[Path], Path],
) -> Iterator[LocalPrometheus]:
    """A private Prometheus that scraped one bounded scoring run on the mini-cluster."""
    tmp = tmp_path_factory.mktemp("prometheus")
    name = f"prom-{uuid.uuid4().hex[:6]}"
    settings = private_settings(
        kafka_settings,
        name,
        ROLES,
        flink={"parallelism": 1},
        checkpoint={"dir": str(tmp / "checkpoints")},
        scoring={
            "registry_dir": str(fresh_champion(tmp)),
            "group_id": f"{name}-group",
            "transactional_id_prefix": name,
            "latency_budget_ms": NO_SHEDDING_MS,
            "analytics": False,
        },
    )
    settings = with_overrides(
        settings,
        paths={"run_dir": str(tmp / "run")},
        metrics={"local_port": free_port(), "prometheus_port": free_port(), "scrape_interval_s": 1},
    )
    config = write_settings(settings, tmp / "settings.yaml")
    argv = ["--config", str(config), "simulate", "--to-kafka", "--days", "4", "--cards", "60"]
    argv += ["--merchants", "20", "--rate", "200000", "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli_main(argv) == 0
        assert cli_main(["--config", str(config), "observe", "start"]) == 0
    server = LocalPrometheus(settings)
    try:
        client = scoring.prepare(settings).execute_async(scoring.JOB_NAME)
        try:
            # on a timeout the tests below fail and name what is missing
            with contextlib.suppress(ServiceError):
                wait_until(
                    lambda: _scraped(server), SCRAPE_WAIT_S, "every series scraped", poll_s=POLL_S
                )
        finally:
            client.cancel().result()
        yield server
    finally:
        server.stop()


def _expected_series() -> set[str]:
    """Every documented series a scoring run without analytics must export."""
    return {
        m.name
        for m in metrics.METRICS
        if not m.lazy and "tooLateEvents" not in m.name  # analytics is off in this run
    }


def _scraped(server: LocalPrometheus) -> bool:
    """The server holds every expected series and a count for every latency stage."""
    if _expected_series() - server.metric_names():
        return False
    name = _metric(f"{metrics.LABEL_STAGE}_{metrics.LATENCY}")
    counts = server.query(f"max by (stage) (last_over_time({name}_count{WINDOW}))")
    return {r["metric"]["stage"] for r in counts if float(r["value"][1]) > 0} >= set(metrics.STAGES)


def _values(server: LocalPrometheus, expression: str) -> dict[str, float]:
    """``label set -> value`` of an instant query (series kept after the job ended)."""
    return {
        ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k != "__name__"): float(
            r["value"][1]
        )
        for r in server.query(expression)
    }


def test_prometheus_holds_the_decision_counter_by_outcome(observed: LocalPrometheus) -> None:
    name = _metric(f"{metrics.LABEL_DECISION}_{metrics.DECISIONS}")
    found = observed.query(
        f'sum by (decision) (last_over_time({name}{{job="{LOCAL_JOB}"}}{WINDOW}))'
    )
    by_outcome = {r["metric"]["decision"]: float(r["value"][1]) for r in found}
    assert set(by_outcome) <= {"approve", "step_up", "block"}, by_outcome
    assert by_outcome.get("approve", 0) > 0, by_outcome


def test_prometheus_holds_the_latency_histogram_of_every_decision_stage(
    observed: LocalPrometheus,
) -> None:
    name = _metric(f"{metrics.LABEL_STAGE}_{metrics.LATENCY}")
    quantiles = _values(observed, f'last_over_time({name}{{quantile="0.99"}}{WINDOW})')
    stages = {
        part.split("=")[1] for key in quantiles for part in key.split(",") if "stage=" in part
    }
    assert set(metrics.STAGES) <= stages, quantiles
    counts = observed.query(f"max by (stage) (last_over_time({name}_count{WINDOW}))")
    assert {r["metric"]["stage"] for r in counts if float(r["value"][1]) > 0} >= set(
        metrics.STAGES
    ), counts


def test_every_documented_riskstream_series_of_the_job_is_exported(
    observed: LocalPrometheus,
) -> None:
    stored = observed.metric_names()
    assert _expected_series() - stored == set(), sorted(n for n in stored if "riskstream" in n)
    assert any(m.lazy and m.name in stored for m in metrics.METRICS)  # e.g. scoring rows
