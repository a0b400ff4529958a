"""``riskstream archive`` on the real broker: every record, per partition in offset order."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from confluent_kafka import Producer

from core.config import Settings
from features.archive import ARCHIVE_MANIFEST
from riskstream.archive import archive_topic
from riskstream.support.topics import create_topic

pytestmark = [pytest.mark.integration]

RECORDS_PER_PARTITION = 25
BASE_TS = 1_522_540_800_000
NOT_UTF8 = b"\xff\xfe not utf-8"


def test_archive_keeps_partition_offset_timestamp_and_payload(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    topic = create_topic(kafka_settings, "archive", partitions=2)
    producer = Producer({"bootstrap.servers": kafka_settings.kafka.bootstrap})
    for i in range(RECORDS_PER_PARTITION):
        for partition in (0, 1):
            value = json.dumps({"i": i, "p": partition}).encode()
            producer.produce(
                topic, value, key=f"k{i}", partition=partition, timestamp=BASE_TS + 1000 * i
            )
    producer.produce(topic, NOT_UTF8, partition=1, timestamp=BASE_TS)
    producer.flush(30)

    result = archive_topic(kafka_settings, topic, tmp_path / "arch", progress=lambda _: None)

    assert result.records == 2 * RECORDS_PER_PARTITION + 1
    for partition in (0, 1):
        lines = (tmp_path / "arch" / f"partition={partition}" / "part-000000.jsonl").read_text()
        docs = [json.loads(line) for line in lines.splitlines()]
        assert [d["offset"] for d in docs] == list(range(len(docs)))
        assert all(d["partition"] == partition and d["topic"] == topic for d in docs)
        assert all(d["timestamp_type"] == "create" for d in docs)
        plain = [d for d in docs if "value" in d]
        assert [json.loads(d["value"])["i"] for d in plain] == list(range(RECORDS_PER_PARTITION))
        assert [d["timestamp"] for d in plain] == [
            BASE_TS + 1000 * i for i in range(RECORDS_PER_PARTITION)
        ]
        if partition == 1:
            assert base64.b64decode(docs[-1]["value_b64"]) == NOT_UTF8
    manifest = json.loads((tmp_path / "arch" / ARCHIVE_MANIFEST).read_text())
    assert manifest["partitions"]["1"] == {"first": 0, "end": RECORDS_PER_PARTITION + 1}
