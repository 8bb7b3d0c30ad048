"""Small Kafka helpers for tests: produce events, read a topic until a condition holds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

from kafka import KafkaConsumer, KafkaProducer

from streamreco.settings import Settings


def produce(settings: Settings, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all", linger_ms=2)
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def event_json(event_id: str, type_: str, user: str, item: str | None = None, **extra: object) -> bytes:
    body = {"event_id": event_id, "type": type_, "user_id": user, "ts": time.time(), **extra}
    if item is not None:
        body["item_id"] = item
    return json.dumps(body).encode()


class TopicReader:
    """Reads a topic from the beginning and keeps every record seen."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        self.records: list = []

    def until(self, done: Callable[[list], bool], timeout: float = 30.0) -> list:
        deadline = time.monotonic() + timeout
        while not done(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met after {timeout}s; saw {len(self.records)} records")
            for batch in self.consumer.poll(timeout_ms=100).values():
                self.records.extend(batch)
        return self.records

    def values(self) -> list[dict]:
        return [json.loads(r.value) for r in self.records if r.value is not None]

    def close(self) -> None:
        self.consumer.close()
