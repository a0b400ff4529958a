"""Columns to contract records: msgspec structs, JSON lines and Arrow tables.

Ids are derived from positions (``tx-<run>-<row>``), so a run is reproducible byte for byte and a
re-sent record is the very same bytes as the original.
"""

from __future__ import annotations

from itertools import repeat
from typing import Final

import msgspec
import numpy as np
import pyarrow as pa

from schemas.records import SCHEMA_VERSION, Label, Transaction
from training.simulator.columns import I64, LABEL_TYPES, SCENARIOS, Entities, Labels, Transactions

ENCODER: Final = msgspec.json.Encoder()
CHANNELS: Final = np.array(["card_present", "online"], dtype=object)
LABEL_NAMES: Final = np.array(["legit", "fraud"], dtype=object)
LABEL_TYPE_NAMES: Final = np.array(LABEL_TYPES, dtype=object)
SCENARIO_NAMES: Final = np.array([None, *SCENARIOS[1:]], dtype=object)
ARROW_TYPES: Final = {
    "event_time": pa.int64(),
    "transaction_time": pa.int64(),
    "amount": pa.float64(),
    "latitude": pa.float64(),
    "longitude": pa.float64(),
}  # every other contract column is a (nullable) string


def transaction_ids(run: str, rows: I64) -> list[str]:
    """Event ids of transaction rows."""
    return [f"tx-{run}-{i:09d}" for i in rows.tolist()]


def transaction_columns(
    tx: Transactions, entities: Entities, rows: I64, run: str
) -> dict[str, list[object]]:
    """Contract field name to Python values, for ``rows`` in that order."""
    ids = transaction_ids(run, rows)
    return {
        "event_id": list(ids),
        "event_time": tx.event_time[rows].tolist(),
        "correlation_id": ids,
        "card_id": entities.cards[tx.card[rows]].tolist(),
        "customer_id": entities.customers[tx.customer[rows]].tolist(),
        "merchant_id": entities.merchants[tx.merchant[rows]].tolist(),
        "terminal_id": entities.terminals[tx.terminal[rows]].tolist(),
        "mcc": entities.mccs[tx.mcc[rows]].tolist(),
        "amount": tx.amount[rows].tolist(),
        "currency": entities.currencies[tx.currency[rows]].tolist(),
        "channel": CHANNELS[tx.online[rows].astype(np.int64)].tolist(),
        "latitude": tx.latitude[rows].tolist(),
        "longitude": tx.longitude[rows].tolist(),
        "device_id": entities.devices[tx.device[rows]].tolist(),
        "country": entities.countries[tx.country[rows]].tolist(),
    }


def transactions(
    tx: Transactions, entities: Entities, rows: I64, run: str, source: str
) -> list[Transaction]:
    """Transaction records for ``rows``."""
    c = transaction_columns(tx, entities, rows, run)
    return list(
        map(
            Transaction,
            c["event_id"],
            c["event_time"],
            repeat(SCHEMA_VERSION),
            repeat(source),
            c["correlation_id"],
            c["card_id"],
            c["customer_id"],
            c["merchant_id"],
            c["terminal_id"],
            c["mcc"],
            c["amount"],
            c["currency"],
            c["channel"],
            c["latitude"],
            c["longitude"],
            c["device_id"],
            c["country"],
        )
    )


def label_columns(
    labels: Labels, tx: Transactions, entities: Entities, rows: I64, run: str
) -> dict[str, list[object]]:
    """Label field name to Python values, for label ``rows`` in that order."""
    target = labels.transaction[rows]
    tx_ids = transaction_ids(run, target)
    return {
        "event_id": [f"lb-{run}-{i:09d}" for i in target.tolist()],
        "event_time": labels.event_time[rows].tolist(),
        "correlation_id": tx_ids,
        "transaction_id": list(tx_ids),
        "transaction_time": tx.event_time[target].tolist(),
        "card_id": entities.cards[tx.card[target]].tolist(),
        "merchant_id": entities.merchants[tx.merchant[target]].tolist(),
        "terminal_id": entities.terminals[tx.terminal[target]].tolist(),
        "device_id": entities.devices[tx.device[target]].tolist(),
        "label": LABEL_NAMES[labels.fraud[rows].astype(np.int64)].tolist(),
        "label_type": LABEL_TYPE_NAMES[labels.label_type[rows]].tolist(),
        "scenario": SCENARIO_NAMES[tx.scenario[target]].tolist(),
    }


def labels_records(
    labels: Labels, tx: Transactions, entities: Entities, rows: I64, *, run: str, source: str
) -> list[Label]:
    """Label records for label ``rows``."""
    c = label_columns(labels, tx, entities, rows, run)
    return list(
        map(
            Label,
            c["event_id"],
            c["event_time"],
            repeat(SCHEMA_VERSION),
            repeat(source),
            c["correlation_id"],
            c["transaction_id"],
            c["transaction_time"],
            c["card_id"],
            c["merchant_id"],
            c["terminal_id"],
            c["device_id"],
            c["label"],
            c["label_type"],
            c["scenario"],
        )
    )


def lines(records: list[Transaction] | list[Label]) -> list[bytes]:
    """One JSON document per record, no trailing newline."""
    return list(map(ENCODER.encode, records))


def arrow_table(columns: dict[str, list[object]], source: str, extra: dict[str, I64]) -> pa.Table:
    """An Arrow table with the contract's columns in contract order, then ``extra`` columns."""
    n = len(columns["event_id"])
    data: dict[str, pa.Array] = {}
    order = list(columns)
    order.insert(2, "schema_version")
    order.insert(3, "source")
    for name in order:
        if name == "schema_version":
            data[name] = pa.array(np.full(n, SCHEMA_VERSION, dtype=np.int64))
        elif name == "source":
            data[name] = pa.array([source] * n, type=pa.string())
        else:
            data[name] = pa.array(columns[name], type=ARROW_TYPES.get(name, pa.string()))
    for name, values in extra.items():
        data[name] = pa.array(values)
    return pa.table(data)
