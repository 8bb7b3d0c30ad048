"""Consumer lag read from a real broker with a known backlog."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from streamreco.lag import LagReader
from tests.kafka_helpers import produce

pytestmark = pytest.mark.integration


def test_lag_is_end_minus_committed_per_partition(settings_factory):
    settings = settings_factory()
    topic = settings.events_topic
    produce(settings, topic, [(f"u{n}".encode(), b"x") for n in range(30)])
    reader = LagReader(settings, [topic], group="lag-test")
    before = {p.partition: p for p in reader.read()}
    assert sum(p.end for p in before.values()) == 30
    assert all(p.committed is None and p.lag == p.end for p in before.values())

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id="lag-test",
                             enable_auto_commit=False)
    busiest = max(before.values(), key=lambda p: p.end)
    tp = TopicPartition(topic, busiest.partition)
    consumer.assign([tp])
    consumer.seek(tp, 2)
    consumer.commit({tp: OffsetAndMetadata(2, "", -1)})
    consumer.close()

    produce(settings, topic, [(f"u{n}".encode(), b"y") for n in range(30, 40)])  # the end moves on
    after = {p.partition: p for p in reader.read()}
    assert sum(p.end for p in after.values()) == 40
    assert after[busiest.partition].committed == 2
    assert after[busiest.partition].lag == after[busiest.partition].end - 2
    reader.close()
