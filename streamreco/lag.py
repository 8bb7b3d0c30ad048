"""Consumer lag of a consumer group, per topic-partition, from any Kafka-protocol broker."""

from __future__ import annotations

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
        self.consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=None)

    def read(self) -> list[PartitionLag]:
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        committed = self.admin.list_consumer_group_offsets(self.group, partitions=partitions)
        ends = self.consumer.end_offsets(partitions)
        result = []
        for tp in partitions:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            result.append(PartitionLag(tp.topic, tp.partition, offset, ends[tp]))
        return result

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()
