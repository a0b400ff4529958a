"""Delayed ground truth: chargebacks days after a fraud, confirmations of some legit payments."""

from __future__ import annotations

import numpy as np

from training.simulator.columns import (
    LABEL_TYPE_CODE,
    MS_PER_DAY,
    MS_PER_HOUR,
    Labels,
    Transactions,
)

FRAUD_REPORT_SHARE = 0.2  # cardholders who report fraud themselves, within hours
FRAUD_REPORT_DELAY_MS = (MS_PER_HOUR, 48 * MS_PER_HOUR)
MIN_CHARGEBACK_DELAY_MS = MS_PER_DAY  # no chargeback is filed the same day
CHARGEBACK_DELAY_SHAPE = 2.0  # gamma: most within a week or two, a long tail beyond
MIN_LEGIT_DELAY_MS = MS_PER_HOUR


def generate(
    gen: np.random.Generator,
    tx: Transactions,
    chargeback_delay_days: float,
    legit_share: float,
    legit_delay_days: float,
) -> Labels:
    """One label for every fraud and for a ``legit_share`` of legit transactions, by label time.

    A chargeback's delay is ``1 day + gamma``, with mean ``chargeback_delay_days``.
    """
    fraud = np.flatnonzero(tx.fraud)
    report = gen.random(len(fraud)) < FRAUD_REPORT_SHARE
    tail_scale = (chargeback_delay_days * MS_PER_DAY - MIN_CHARGEBACK_DELAY_MS) / (
        CHARGEBACK_DELAY_SHAPE
    )
    chargeback_delay = MIN_CHARGEBACK_DELAY_MS + gen.gamma(
        CHARGEBACK_DELAY_SHAPE, max(tail_scale, 0.0), len(fraud)
    )
    report_delay = gen.integers(*FRAUD_REPORT_DELAY_MS, len(fraud))
    fraud_delay = np.where(report, report_delay, chargeback_delay).astype(np.int64)
    fraud_type = np.where(
        report, LABEL_TYPE_CODE["fraud_report"], LABEL_TYPE_CODE["chargeback"]
    ).astype(np.int64)

    legit = np.flatnonzero(~tx.fraud)
    legit = legit[gen.random(len(legit)) < legit_share]
    legit_delay = MIN_LEGIT_DELAY_MS + gen.exponential(
        max(legit_delay_days * MS_PER_DAY - MIN_LEGIT_DELAY_MS, 0.0), len(legit)
    )
    rows = np.concatenate([fraud, legit]).astype(np.int64)
    labels = Labels(
        transaction=rows,
        event_time=tx.event_time[rows]
        + np.concatenate([fraud_delay, legit_delay.astype(np.int64)]),
        fraud=tx.fraud[rows],
        label_type=np.concatenate(
            [fraud_type, np.full(len(legit), LABEL_TYPE_CODE["confirmed_legitimate"])]
        ).astype(np.int64),
    )
    return labels.take(np.lexsort((labels.transaction, labels.event_time)))
