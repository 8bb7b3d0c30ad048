"""The worker's consumer: batches straight from aiokafka, handed over as raw messages.

Faust's agents wrap every record in an event, a stream step and an
acknowledgement; at thousands of events a second that machinery cost the worker
more CPU than its models did (``bench/results/speed.md``). The worker therefore
consumes with one :class:`aiokafka.AIOKafkaConsumer` in the app's consumer group
(``settings.app_id``) and hands each ``getmany`` batch to its handler, while
Faust keeps what it is good at: the app's lifecycle, its producer, timers and web
server (the app runs ``producer_only``, so Faust joins no group of its own).

The handler processes a batch and sends its output, and returns the
acknowledgement of that output, which the consumer awaits only after it has
handed over the next batch: a batch is processed while the broker acknowledges
the one before it. Offsets are committed after their batch's output has been
acknowledged, at most once per ``commit_interval`` and always before
partitions are given away or the worker stops. A batch interrupted by a
rebalance or a crash is delivered again; the processors recognise what they
already applied (see :meth:`streams.processor.EventProcessor.process`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from mode import Service

from streamreco.settings import Settings
from streams.processor import RawMessage

log = logging.getLogger(__name__)

#: ``await handle(topic, messages)``: process one topic's part of a batch and send its output;
#: the awaitable it returns completes when the broker has acknowledged that output.
BatchHandler = Callable[[str, list[RawMessage]], Awaitable[Awaitable[None]]]


def raw_message(record) -> RawMessage:  # noqa: ANN001 - aiokafka's ConsumerRecord
    """A consumed record as the processors take it (Kafka timestamps are in ms)."""
    return RawMessage(record.key, record.value or b"", record.topic, record.partition, record.offset,
                      record.timestamp / 1000.0 if record.timestamp is not None else None)


class BatchConsumer(Service):
    """Consumes ``topics`` in batches of up to ``settings.batch_max`` records; commits what was handled."""

    def __init__(self, settings: Settings, topics: Iterable[str], handle: BatchHandler,
                 commit_interval: float = 1.0, **kwargs) -> None:  # noqa: ANN003 - mode's options
        self.settings = settings
        self.topics = list(topics)
        self.handle = handle
        self.commit_interval = commit_interval
        self.consumer: AIOKafkaConsumer | None = None
        #: partition -> the next offset to commit (one past the last record handled)
        self._handled: dict[TopicPartition, int] = {}
        #: the last batch handed over: its output's acknowledgement, and its offsets to commit then
        self._unacknowledged: tuple[Awaitable[list[None]], dict[TopicPartition, int]] | None = None
        self._committed_at = time.monotonic()
        super().__init__(**kwargs)

    def assignment(self) -> set[TopicPartition]:
        """The partitions this worker consumes now (none before it joined the group)."""
        return set(self.consumer.assignment()) if self.consumer is not None else set()

    async def on_start(self) -> None:
        settings = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_servers,
            group_id=settings.app_id,
            client_id=f"{settings.app_id}-worker",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.session_timeout * 1000),
            rebalance_timeout_ms=int(settings.session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, settings.session_timeout / 4) * 1000),
            max_poll_records=settings.batch_max,
            fetch_max_wait_ms=max(1, round(settings.fetch_wait * 1000)),
            **settings.kafka_client_options(),
        )
        await self.consumer.start()
        self.consumer.subscribe(self.topics, listener=_CommitOnRevoke(self))

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.commit()
            await self.consumer.stop()

    @Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        while not self.should_stop:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=self.settings.batch_max)
            by_topic: dict[str, list[RawMessage]] = {}
            for tp, records in batches.items():
                by_topic.setdefault(tp.topic, []).extend(raw_message(r) for r in records)
            acknowledgements = [await self.handle(topic, messages) for topic, messages in by_topic.items()]
            await self._acknowledged()  # the batch before this one
            if batches:
                self._unacknowledged = (asyncio.gather(*acknowledgements),
                                        {tp: records[-1].offset + 1 for tp, records in batches.items()})
            if self._handled and time.monotonic() - self._committed_at >= self.commit_interval:
                await self.commit()

    async def _acknowledged(self) -> None:
        """Wait for the last batch's output to be acknowledged; its offsets may then be committed."""
        if self._unacknowledged is not None:
            acknowledgement, offsets = self._unacknowledged
            await acknowledgement
            self._unacknowledged = None
            self._handled.update(offsets)

    async def commit(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Commit the handled offsets of ``partitions`` (default: all still assigned)."""
        assert self.consumer is not None
        await self._acknowledged()
        chosen = self._handled.keys() if partitions is None else set(partitions) & self._handled.keys()
        offsets = {tp: self._handled.pop(tp) for tp in list(chosen)}
        self._committed_at = time.monotonic()
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # the partitions moved on: their new owner gets these records again and
            # recognises them as applied; nothing is lost
            log.info("offsets not committed (%s): the partitions were reassigned", exc)
        except KafkaError as exc:
            log.warning("offsets not committed (%s); trying again with the next batch", exc)
            assigned = self.assignment()
            for tp, offset in offsets.items():
                if tp in assigned:
                    self._handled.setdefault(tp, offset)


class _CommitOnRevoke(ConsumerRebalanceListener):
    """Commits what was handled on partitions before the group hands them to another worker."""

    def __init__(self, batches: BatchConsumer) -> None:
        self.batches = batches

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.batches.commit(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass  # new partitions start from their committed offsets: nothing to do
