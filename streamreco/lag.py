"""Consumer lag of a consumer group, per topic-partition, from any Kafka-protocol broker.

Two readings some seconds apart give each partition's recent consume and
produce rates, and from them how long the group needs to catch up:

>>> before = [PartitionLag("events", 0, committed=100, end=400)]
>>> after = [PartitionLag("events", 0, committed=300, end=500)]
>>> (now,) = with_rates(before, after, seconds=2.0)
>>> now.lag, now.consumed_per_s, now.produced_per_s, now.catch_up_seconds
(200, 100.0, 50.0, 4.0)
>>> format_seconds(now.catch_up_seconds), format_seconds(754.0), format_seconds(math.inf)
('4s', '12m34s', 'never')
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from streamreco.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    """Where a group stands on one partition: ``lag = end - committed``."""

    topic: str
    partition: int
    committed: int | None
    end: int
    consumed_per_s: float | None = None  #: recent rate of the committed offset
    produced_per_s: float | None = None  #: recent rate of the end offset

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)

    @property
    def catch_up_seconds(self) -> float | None:
        """Seconds until the lag is gone at the recent rates: ``inf`` if it is not shrinking.

        ``None`` when the rates are unknown (a single reading).
        """
        if self.lag <= 0:
            return 0.0
        if self.consumed_per_s is None or self.produced_per_s is None:
            return None
        shrinking = self.consumed_per_s - self.produced_per_s
        return self.lag / shrinking if shrinking > 0 else math.inf


def with_rates(
    before: Sequence[PartitionLag], after: Sequence[PartitionLag], seconds: float
) -> list[PartitionLag]:
    """``after`` with the consume and produce rates since ``before``, taken ``seconds`` earlier."""
    earlier = {(p.topic, p.partition): p for p in before}
    result = []
    for now in after:
        then = earlier.get((now.topic, now.partition))
        if then is None or seconds <= 0:
            result.append(now)
            continue
        result.append(replace(
            now,
            consumed_per_s=max((now.committed or 0) - (then.committed or 0), 0) / seconds,
            produced_per_s=max(now.end - then.end, 0) / seconds,
        ))
    return result


def format_seconds(seconds: float | None) -> str:
    """A catch-up estimate for people: ``-`` unknown, ``never``, ``42s``, ``3m05s``, ``2h07m``."""
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "never"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def lag_table(rows: Sequence[PartitionLag]) -> str:
    """``rows`` as the table ``streamreco lag`` prints, with a total line.

    >>> print(lag_table([PartitionLag("events", 0, None, 7)]))
    topic                          partition  committed        end      lag consumed/s  catch-up
    events                                 0          -          7        7          -         -
    total                                                                 7
    """
    lines = [f"{'topic':<30} {'partition':>9} {'committed':>10} {'end':>10} {'lag':>8} "
             f"{'consumed/s':>10} {'catch-up':>9}"]
    for row in rows:
        committed = "-" if row.committed is None else str(row.committed)
        rate = "-" if row.consumed_per_s is None else f"{row.consumed_per_s:,.1f}"
        lines.append(f"{row.topic:<30} {row.partition:>9} {committed:>10} {row.end:>10} {row.lag:>8} "
                     f"{rate:>10} {format_seconds(row.catch_up_seconds):>9}")
    lines.append(f"{'total':<30} {'':>9} {'':>10} {'':>10} {sum(r.lag for r in rows):>8}")
    return "\n".join(lines)


class LagReader:
    """Reads committed and end offsets of ``group`` on ``topics``; reuse it between reads."""

    def __init__(self, settings: Settings, topics: list[str], group: str | None = None) -> None:
        self.group = group or settings.app_id
        self.topics = topics
        security = settings.kafka_client_options()
        self.admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_servers, client_id="streamreco-lag", **security
        )
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_servers,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=64 * 1024,
            **security,
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
