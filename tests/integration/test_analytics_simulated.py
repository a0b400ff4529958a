"""On real Kafka with the simulator's late, out-of-order and duplicate deliveries, the final
revisions plus the too-late events equal an offline computation of the same windows over every
event of the topic; ``riskstream analytics tail`` shows the newest revisions."""

from __future__ import annotations

import collections

import pytest

from core.config import Settings
from core.errors import SchemaError
from core.progress import Progress
from jobs.analytics import window_params
from riskstream import jobrunner
from riskstream.cli import main as cli_main
from riskstream.simulate_kafka import produce
from riskstream.support.kafka_io import read_values
from riskstream.support.topics import private_settings
from schemas.validation import decode
from training.simulator.generate import simulate
from udfs.analytics.encode import decode_late, decode_window, latest_revisions
from udfs.analytics.offline import final_windows
from udfs.analytics.records import ScoredPayment, unscored
from udfs.analytics.windows import Totals, WindowId

pytestmark = [pytest.mark.integration, pytest.mark.flink]

RATE = 50_000.0


def _settings(base: Settings, parallelism: int) -> Settings:
    roles = {"transactions": 3, "labels": 1, "analytics": 1, "late_events": 1, "dead_letter": 1}
    return private_settings(
        base,
        f"an-sim{parallelism}",
        roles,
        features={"out_of_orderness_ms": 5_000, "idleness_ms": 30_000},
        analytics={
            "group_id": f"an-sim{parallelism}-group",
            "transactional_id_prefix": f"an-sim{parallelism}-tx",
            # The job reads this backlog at thousands of payments per second: with the default
            # 200 ms the watermark would jump hours of event time per step and no late payment
            # would meet a window that already fired. 2 ms keeps it close to arrival order.
            "watermark_interval_ms": 2,
        },
        flink={"parallelism": parallelism},
        simulator={
            "days": 2,
            "cards": 2_000,
            "merchants": 50,
            "late_share": 0.05,
            "late_max_s": 3_600.0,
        },
    )


def _topic_payments(settings: Settings) -> list[ScoredPayment]:
    """Every valid transaction of the topic, in partition order (malformed ones are skipped)."""
    payments = []
    for raw in read_values(
        settings, settings.kafka.topic("transactions"), timeout_s=60, committed=False
    ):
        try:
            payments.append(unscored(decode("transaction", raw)))
        except SchemaError:
            continue
    return payments


@pytest.mark.parametrize("parallelism", [1, 2])
def test_final_revisions_equal_offline_windows(
    kafka_settings: Settings, capsys: pytest.CaptureFixture[str], parallelism: int
) -> None:
    settings = _settings(kafka_settings, parallelism)
    sim = simulate(settings.simulator)
    produce(sim, settings.kafka, RATE, Progress(len(sim.delivery), "simulate", quiet=True))
    jobrunner.run_local(settings, "analytics", bounded=True)

    payments = _topic_payments(settings)
    params = window_params(settings)
    offline = final_windows(payments, params)
    results = [decode_window(v) for v in read_values(settings, settings.kafka.topic("analytics"))]
    late = [decode_late(v) for v in read_values(settings, settings.kafka.topic("late_events"))]

    # A payment is missing from the windows iff every copy of it came too late (all copies of an
    # event share a card, hence a partition, so the job saw them in topic order).
    copies = collections.Counter(p.event_id for p in payments)
    late_copies = collections.Counter(e.event_id for e in late)
    too_late = {
        e.event_id: e.payment() for e in late if late_copies[e.event_id] == copies[e.event_id]
    }
    recombined: dict[WindowId, Totals] = {
        wid: Totals(
            r.transactions,
            round(r.amount_sum * 100),
            r.decisions.approve,
            r.decisions.step_up,
            r.decisions.block,
        )
        for wid, r in latest_revisions(results).items()
    }
    for p in too_late.values():
        for spec in params.specs():
            wid = spec.window_id(p)
            recombined[wid] = recombined.get(wid, Totals()).add(p)
    assert recombined == offline

    revisions = collections.Counter(r.revision for r in results)
    assert revisions[1] == len(latest_revisions(results))  # every window has one revision 1
    assert revisions[2] > 0, "the late share must produce updates"
    assert len(too_late) > 0, "and events beyond the allowed lateness"
    assert all(e.late_by_ms >= settings.analytics.allowed_lateness_ms for e in late)

    busiest = collections.Counter(p.merchant_id for p in payments).most_common(1)[0][0]
    args = ["--set", f"kafka.port={settings.kafka.port}"]
    args += ["--set", f"kafka.topics.analytics.name={settings.kafka.topic('analytics')}"]
    assert cli_main([*args, "analytics", "tail", "--merchant", busiest, "--last", "1000"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    mine = {w: r for w, r in latest_revisions(results).items() if w[:2] == ("merchant", busiest)}
    assert len(rows) == len(mine) > 0
    assert [int(row.split()[4]) for row in rows] == [r.revision for _, r in sorted(mine.items())]
