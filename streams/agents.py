"""The worker's wiring: batches from the consumer to the processors, results to the topics.

:class:`~streams.consumer.BatchConsumer` takes batches from both input topics;
each topic's part goes to its processor:

* events topic -> :class:`~streams.processor.EventProcessor`
  -> recommendations topic (and dead letters, re-keyed events);
* catalog topic -> :class:`~streams.catalog.CatalogProcessor`.

Processing runs in one worker thread so that the event loop keeps serving the
consumer's heartbeats and the web server while a batch is computed. A batch's
output is sent as soon as it is final, while Redis applies the batch's writes,
and the broker acknowledges it while the next batch is computed; with
``write_behind`` Redis applies them then too. A batch counts as acknowledged (its
offsets may be committed) once its output is acknowledged and its state written. A store or
broker error is retried with backoff, never dropped (a batch tried again may
send some messages twice: lists are keyed, and a batch's lists are sent only
once everything sent before them was acknowledged, so the latest one still wins).
Every batch is measured by :class:`~streams.metrics.WorkerMetrics`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from typing import TypeVar

import faust
import redis
from aiokafka.errors import KafkaError

from streamreco.settings import Settings
from streamreco.store import MemoryStore, Store, open_store
from streams.catalog import CatalogProcessor
from streams.consumer import BatchConsumer
from streams.metrics import WorkerMetrics, logging_config
from streams.processor import BatchResult, DeadLetter, EventProcessor, RawMessage

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BACKOFF = 5.0
#: The store is away, or refuses writes for now (full under ``noeviction``, or a replica
#: during a failover): the batch waits and is tried again, never dead-lettered.
STORE_ERRORS = (
    redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError,
    OSError,
)


@dataclass
class WorkerState:
    """What the web views and the demo read about the running worker."""

    store: Store
    metrics: WorkerMetrics
    events_processed: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    rekeyed: int = 0
    lists_published: int = 0  # users' lists
    newcomer_lists_published: int = 0
    store_errors: int = 0
    started_at: float = field(default_factory=time.time)
    processor: EventProcessor | None = None
    consumer: BatchConsumer | None = None

    def quality(self) -> dict[str, float]:
        """The rolling online HR@N / NDCG@N of the lists this worker published."""
        if self.processor is None:
            return {}
        score = self.processor.quality
        return {"hr": score.hr, "ndcg": score.ndcg, "scored": score.scored, "window": score.window}


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
    """Wire the processors, the consumer and the timers into ``app``; returns the shared worker state."""
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    outputs = {  # declared by the app; written through its producer
        settings.recommendations_topic: app.topic(settings.recommendations_topic, compacting=True, **raw),
        settings.dead_letter_topic: app.topic(settings.dead_letter_topic, **raw),
    }
    redis_options = settings.redis_options()
    # the web views, the events and the catalogue each get a Redis client of their own (they run in
    # different threads); an in-process store is the state itself, so all three share it
    opened = open_store(settings.redis_url, **redis_options)
    web_store, events_store, catalog_store = (
        [opened] * 3 if isinstance(opened, MemoryStore)
        else [opened, *(open_store(settings.redis_url, **redis_options) for _ in range(2))]
    )
    state = WorkerState(web_store, WorkerMetrics(settings))
    json_logs = logging_config(settings.log_format, settings.log_level)
    if json_logs is not None:  # read by faust.Worker when it sets logging up
        app.conf.logging_config = json_logs
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="streamreco-batch")
    events = EventProcessor(settings, events_store)
    catalog = CatalogProcessor(settings, catalog_store)
    state.processor = events
    processors = {settings.events_topic: ("events", events.process),
                  settings.catalog_topic: ("catalog", catalog.process)}

    async def publish(result: BatchResult) -> None:
        send = app.producer.send
        pending = []
        for dead in result.dead_letters:
            headers = [
                ("x-streamreco-reason", dead.reason.encode()),
                ("x-streamreco-source", f"{dead.message.topic}:{dead.message.partition}:{dead.message.offset}".encode()),
            ]
            pending.append(await send(settings.dead_letter_topic, dead.message.key, dead.message.value,
                                      None, None, headers))
        for user_id, value in result.rekeyed:
            pending.append(await send(settings.events_topic, user_id, value, None, None, None))
        for user_id in result.tombstones:  # before the lists: a list after a forget is a new start
            pending.append(await send(settings.recommendations_topic, user_id, None, None, None, None))
        for rec in result.lists:
            pending.append(await send(settings.recommendations_topic, rec.user_id.encode(), rec.value,
                                      None, None, None))
        await asyncio.gather(*pending)

    def count(result: BatchResult) -> None:
        state.dead_lettered += len(result.dead_letters)
        state.duplicates += result.duplicates
        state.rekeyed += len(result.rekeyed)
        lists = len(result.users_lists())
        state.lists_published += lists
        state.newcomer_lists_published += len(result.lists) - lists
        state.events_processed += result.processed

    sent: asyncio.Future | None = None  # the output sent last: its seconds of publishing, once acknowledged

    def send(result: BatchResult) -> asyncio.Future:
        """Publish ``result`` after everything sent before it (so that, even when some of that is
        sent again, a user's latest list is the one sent last)."""
        nonlocal sent
        previous = sent

        async def after_previous() -> float:
            if previous is not None:
                await previous
            publishing = time.perf_counter()
            await _retrying(state, "broker", (KafkaError,), lambda: publish(result))
            return time.perf_counter() - publishing

        sent = asyncio.ensure_future(after_previous())
        return sent

    async def written(result: BatchResult) -> None:
        """Wait until the batch's state is in Redis (a transaction written behind); where it
        failed, have the processor apply that batch again."""
        try:
            await asyncio.wrap_future(result.written)
        except Exception:  # noqa: BLE001 - whatever failed, settle() applies the batch again or raises
            await asyncio.get_running_loop().run_in_executor(executor, events.settle)

    acknowledging: dict[str, asyncio.Future] = {}  # per stream: the last batch's acknowledgement

    def dead_lettered(messages: list[RawMessage], exc: Exception) -> BatchResult:
        """The batch given up on a worker error: every message to the dead-letter topic."""
        return BatchResult(dead_letters=[DeadLetter(m, f"worker error: {exc!r}") for m in messages])

    async def handle(topic: str, messages: list[RawMessage]) -> asyncio.Future:
        stream, process = processors[topic]
        loop = asyncio.get_running_loop()
        started, clock = time.time(), time.perf_counter()
        sending: list[asyncio.Future] = []  # the output of each try, sent while the try writes its state

        def publish_early(result: BatchResult) -> None:  # called in the processing thread
            loop.call_soon_threadsafe(lambda: sending.append(send(result)))

        while True:
            try:
                result = await _retrying(
                    state, "redis", STORE_ERRORS,
                    lambda: loop.run_in_executor(executor, process, messages, publish_early),
                )
            except Exception as exc:
                previous = acknowledging.get(stream)
                if stream == "events" and previous is not None and not previous.done() and events.write_failed():
                    # the error may be the last batch's, whose transaction failed: once its
                    # acknowledgement has applied or dead-lettered it, this batch is tried again
                    await asyncio.wait([previous])
                    continue
                log.exception("batch failed")  # a bug must not lose the batch: dead-letter it, loudly
                result = dead_lettered(messages, exc)
                sending.append(send(result))
            break
        state.metrics.observe_batch(stream, messages, result, time.perf_counter() - clock)
        # a try's output was scheduled before its end, so it is here; the last one is sent after all others
        last = sending[-1] if sending else send(result)

        async def acknowledged() -> None:
            publishing = await last
            lists_acknowledged = time.time()  # (freshness ends here, not once the state is written)
            outcome = result
            try:
                await _retrying(state, "redis", STORE_ERRORS, lambda: written(result))
            except Exception as exc:  # not the store being away: dead-letter the batch, loudly
                log.exception("batch state not written")
                await loop.run_in_executor(executor, events.drop_unwritten)
                dead = dead_lettered(messages, exc)
                await send(dead)
                state.metrics.dead_letters.labels(stream).inc(len(dead.dead_letters))
                # its lists went out, but none of its events was applied
                outcome = dataclasses.replace(result, processed=0, duplicates=0, by_type={},
                                              dead_letters=dead.dead_letters)
            count(outcome)
            state.metrics.observe_published(stream, messages, outcome, started, publishing, lists_acknowledged)

        acknowledging[stream] = asyncio.ensure_future(acknowledged())
        return acknowledging[stream]

    state.consumer = BatchConsumer(settings, processors, handle, loop=app.loop, beacon=app.beacon)

    @app.task
    async def consume() -> None:
        for topic in outputs.values():
            await topic.maybe_declare()
        await app.add_runtime_dependency(state.consumer)

    @app.timer(settings.lag_interval)
    async def sample_lag_and_quality() -> None:
        await state.metrics.sample_lag(state.consumer.consumer, set(processors))
        # in the processing thread: the rolling score changes there
        await asyncio.get_running_loop().run_in_executor(executor, state.metrics.observe_quality, events.quality)

    return state
