"""The agents: thin loops that hand batches to the processors and publish the results.

* ``process_events``: events topic -> :class:`~streams.processor.EventProcessor`
  -> recommendations topic (and dead letters, re-keyed events).
* ``process_catalog``: catalog topic -> :class:`~streams.catalog.CatalogProcessor`.

Processing runs in one worker thread so that the event loop keeps serving the
consumer's heartbeats and the web server while a batch is computed; a store or
broker error is retried with backoff, never dropped (a publish tried again may
send some messages twice: lists are keyed, so the latest one still wins).
Every batch is measured by :class:`~streams.metrics.WorkerMetrics`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import faust
import redis
from aiokafka.errors import KafkaError

from streamreco.settings import Settings
from streamreco.store import Store, open_store
from streams.catalog import CatalogProcessor
from streams.metrics import WorkerMetrics, logging_config
from streams.processor import BatchResult, DeadLetter, EventProcessor, RawMessage

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BACKOFF = 5.0
STORE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


@dataclass
class WorkerState:
    """What the web views and the demo read about the running worker."""

    store: Store
    topics: dict[str, faust.TopicT]
    metrics: WorkerMetrics
    events_processed: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    rekeyed: int = 0
    lists_published: int = 0
    store_errors: int = 0
    started_at: float = field(default_factory=time.time)
    processor: EventProcessor | None = None

    def quality(self) -> dict[str, float]:
        """The rolling online HR@N / NDCG@N of the lists this worker published."""
        if self.processor is None:
            return {}
        score = self.processor.quality
        return {"hr": score.hr, "ndcg": score.ndcg, "scored": score.scored, "window": score.window}


def _raw(event: faust.EventT) -> RawMessage:
    message = event.message
    value = message.value if isinstance(message.value, bytes) else bytes(message.value or b"")
    return RawMessage(message.key, value, message.topic, message.partition, message.offset, message.timestamp)


async def _retrying(
    state: WorkerState, service: str, errors: tuple[type[BaseException], ...],
    attempt: Callable[[], Awaitable[T]],
) -> T:
    """Await ``attempt()`` until ``service`` ("redis", "broker") lets it through."""
    delay = 0.05
    while True:
        try:
            return await attempt()
        except errors as exc:
            state.metrics.failed(service)
            if service == "redis":
                state.store_errors += 1
            log.warning("%s unavailable (%s); retrying in %.2fs", service, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)


def register(app: faust.App, settings: Settings) -> WorkerState:
    """Declare topics and agents on ``app``; returns the shared worker state."""
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    topics = {
        "events": app.topic(settings.events_topic, **raw),
        "catalog": app.topic(settings.catalog_topic, **raw),
        "recommendations": app.topic(settings.recommendations_topic, compacting=True, **raw),
        "dead_letter": app.topic(settings.dead_letter_topic, **raw),
    }
    redis_options = settings.redis_options()
    state = WorkerState(open_store(settings.redis_url, **redis_options), topics, WorkerMetrics(settings))
    json_logs = logging_config(settings.log_format, settings.log_level)
    if json_logs is not None:  # read by faust.Worker when it sets logging up
        app.conf.logging_config = json_logs
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="streamreco-batch")
    events = EventProcessor(settings, open_store(settings.redis_url, **redis_options))
    catalog = CatalogProcessor(settings, open_store(settings.redis_url, **redis_options))
    state.processor = events

    async def publish(result: BatchResult) -> None:
        pending = []
        for dead in result.dead_letters:
            headers = {
                "x-streamreco-reason": dead.reason.encode(),
                "x-streamreco-source": f"{dead.message.topic}:{dead.message.partition}:{dead.message.offset}".encode(),
            }
            pending.append(
                await topics["dead_letter"].send(
                    key=dead.message.key, value=dead.message.value, headers=headers, force=True
                )
            )
        for user_id, value in result.rekeyed:
            pending.append(await topics["events"].send(key=user_id, value=value, force=True))
        for user_id in result.tombstones:  # before the lists: a list after a forget is a new start
            pending.append(await topics["recommendations"].send(key=user_id, value=None, force=True))
        for rec in result.lists:
            pending.append(
                await topics["recommendations"].send(
                    key=rec.user_id.encode(), value=rec.value, force=True
                )
            )
        await asyncio.gather(*pending)
        state.dead_lettered += len(result.dead_letters)
        state.duplicates += result.duplicates
        state.rekeyed += len(result.rekeyed)
        state.lists_published += len(result.lists)
        state.events_processed += result.processed

    async def handle(stream: str, process: Any, batch: list[faust.EventT]) -> None:
        messages = [_raw(e) for e in batch]
        loop = asyncio.get_running_loop()
        started, clock = time.time(), time.perf_counter()
        try:
            result = await _retrying(
                state, "redis", STORE_ERRORS, lambda: loop.run_in_executor(executor, process, messages)
            )
        except Exception as exc:  # a bug must not lose the batch: dead-letter it, loudly
            log.exception("batch failed")
            result = BatchResult(dead_letters=[DeadLetter(m, f"worker error: {exc!r}") for m in messages])
        state.metrics.observe_batch(stream, messages, result, time.perf_counter() - clock)
        await _retrying(state, "broker", (KafkaError,), lambda: publish(result))
        state.metrics.observe_published(stream, messages, result, started)

    @app.agent(topics["events"], name="process_events")
    async def process_events(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_within):
            await handle("events", events.process, batch)

    @app.agent(topics["catalog"], name="process_catalog")
    async def process_catalog(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_within):
            await handle("catalog", catalog.process, batch)

    @app.timer(settings.lag_interval)
    async def sample_lag_and_quality() -> None:
        await state.metrics.sample_lag(app.consumer, {settings.events_topic, settings.catalog_topic})
        # in the processing thread: the rolling score changes there
        await asyncio.get_running_loop().run_in_executor(executor, state.metrics.observe_quality, events.quality)

    @app.task
    async def declare_output_topics() -> None:
        for name in ("recommendations", "dead_letter"):
            await topics[name].maybe_declare()

    return state
