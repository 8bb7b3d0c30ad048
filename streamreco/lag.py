"""Consumer lag of a consumer group, per topic-partition, from any Kafka-protocol broker."""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from streamreco.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    """Where a group stands on one partition: ``lag = end - committed``."""

    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


class LagReader:
    """Reads committed and end offsets of ``group`` on ``topics``; reuse it between reads."""

    def __init__(self, settings: Settings, topics: list[str], group: str | None = None) -> None:
        self.group = group or settings.app_id
        self.topics = topics
        self.admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers, client_id="streamreco-lag")
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_servers,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=64 * 1024,
        )

    def _end_offsets(self, partitions: list[TopicPartition], timeout: float = 2.0) -> dict[TopicPartition, int]:
        """End offsets as the high watermark of a fetch at the listed end.

        Some Kafka-protocol brokers (Tansu 0.x) answer ListOffsets(latest) with the
        base offset of the last record batch plus one, not the offset after its
        last record; the high watermark that a fetch reports is right on all of
        them, so the listed end is only used as a place to fetch from.
        """
        listed = self.consumer.end_offsets(partitions)
        self.consumer.unsubscribe()  # fresh partition states: no high watermark from before
        self.consumer.assign(partitions)
        waiting = []
        for tp in partitions:
            if listed[tp] > 0:
                self.consumer.seek(tp, listed[tp] - 1)
                waiting.append(tp)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            self.consumer.poll(timeout_ms=100)
            waiting = [tp for tp in waiting if self.consumer.highwater(tp) is None]
        return {tp: max(listed[tp], self.consumer.highwater(tp) or 0) for tp in partitions}

    def read(self) -> list[PartitionLag]:
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        committed = self.admin.list_group_offsets({self.group: partitions}).get(self.group, {})
        ends = self._end_offsets(partitions)
        result = []
        for tp in partitions:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            result.append(PartitionLag(tp.topic, tp.partition, offset, ends[tp]))
        return result

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()
