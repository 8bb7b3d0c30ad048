"""The worker's Prometheus metrics: one registry per worker process, updated by small functions.

The agents call :class:`WorkerMetrics` after each batch, a timer calls
:meth:`WorkerMetrics.sample_lag`, and ``GET /metrics`` (:mod:`streams.web`)
renders :attr:`WorkerMetrics.registry`. Every name starts with ``streamreco_``;
the README's Operations section says what each one means.

>>> from streamreco.settings import Settings
>>> from streams.processor import BatchResult, RawMessage
>>> metrics = WorkerMetrics(Settings(model="mf"))
>>> batch = [RawMessage(b"u1", b"{}", "events", 0, 41, timestamp=100.0)]
>>> metrics.observe_batch("events", batch, BatchResult(processed=1, by_type={"view": 1}), 0.002)
>>> metrics.value("streamreco_events_processed_total", stream="events", type="view")
1.0
>>> metrics.processed_offsets[("events", 0)]   # the next offset to process
42
>>> metrics.value("streamreco_model_info", model="mf", top_n="10", window="10000", version=VERSION)
1.0
"""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

from streamreco.evaluation import RollingScore
from streamreco.settings import Settings
from streams.processor import BatchResult, RawMessage

try:
    VERSION = version("streamreco")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    VERSION = "unknown"

#: Event time -> list acknowledged by the broker; the alert fires above 50 ms at p99.
FRESHNESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
PER_EVENT_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1)
BATCH_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
GC_PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)

#: The metrics that time this process's garbage collections (see :func:`_time_collection`).
_timing_collections: weakref.WeakSet = weakref.WeakSet()
_collection_started = 0.0


def _time_collection(phase: str, info: dict[str, Any]) -> None:
    """A :data:`gc.callbacks` entry: every collection's pause, into each live :class:`WorkerMetrics`."""
    global _collection_started
    if phase == "start":
        _collection_started = time.perf_counter()
        return
    pause = time.perf_counter() - _collection_started
    for metrics in list(_timing_collections):
        metrics.gc_pauses.labels(str(info["generation"])).observe(pause)


class WorkerMetrics:
    """The metrics of one worker process, in their own :class:`CollectorRegistry`."""

    def __init__(self, settings: Settings) -> None:
        self.registry = r = CollectorRegistry()
        for collector in (process_collector.ProcessCollector, platform_collector.PlatformCollector,
                          gc_collector.GCCollector):
            collector(registry=r)
        self.lag = Gauge("streamreco_consumer_lag", "Records on the partition not yet processed "
                         "by this worker: high watermark - next offset to process",
                         ["topic", "partition"], registry=r)
        self.events = Counter("streamreco_events_processed", "Events (and catalogue changes) "
                              "applied, by event type", ["stream", "type"], registry=r)
        self.dead_letters = Counter("streamreco_dead_letters", "Messages sent to the dead-letter "
                                    "topic", ["stream"], registry=r)
        self.duplicates = Counter("streamreco_duplicates", "Events skipped as repeats of an "
                                  "event_id the user just sent", ["stream"], registry=r)
        self.rekeyed = Counter("streamreco_events_rekeyed", "Events produced again keyed by "
                               "user_id", ["stream"], registry=r)
        self.lists = Counter("streamreco_lists_published", "Users' recommendation lists published",
                             registry=r)
        self.newcomer_lists = Counter("streamreco_newcomer_lists_published", "Newcomers' lists "
                                      "published (the list for users with none of their own)", registry=r)
        self.tombstones = Counter("streamreco_lists_deleted", "Tombstones published for users "
                                  "whose list was deleted", registry=r)
        self.batch_size = Histogram("streamreco_batch_size", "Messages per batch taken from the "
                                    "stream", ["stream"], buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.batch_seconds = Histogram("streamreco_batch_seconds", "Seconds to process and "
                                       "publish one batch", ["stream"],
                                       buckets=BATCH_SECONDS_BUCKETS, registry=r)
        self.publish_seconds = Histogram("streamreco_publish_seconds", "Seconds from a batch's "
                                         "first message sent to the broker acknowledging all of "
                                         "them", ["stream"], buckets=BATCH_SECONDS_BUCKETS, registry=r)
        self.event_seconds = Histogram("streamreco_event_processing_seconds", "Processing time "
                                       "per message (a batch's processing time / its size, "
                                       "one observation per batch)", ["stream"],
                                       buckets=PER_EVENT_BUCKETS, registry=r)
        self.freshness = Histogram("streamreco_freshness_seconds", "Kafka timestamp of the "
                                   "user's event -> its refreshed list acknowledged by the "
                                   "broker", buckets=FRESHNESS_BUCKETS, registry=r)
        self.gc_pauses = Histogram("streamreco_gc_pause_seconds", "Pauses of the garbage "
                                   "collector, by generation (2: a full collection; every "
                                   "thread waits)", ["generation"], buckets=GC_PAUSE_BUCKETS,
                                   registry=r)
        if _time_collection not in gc.callbacks:
            gc.callbacks.append(_time_collection)
        _timing_collections.add(self)
        self.errors = Counter("streamreco_errors", "Failed calls to Redis or the broker",
                              ["service"], registry=r)
        self.retries = Counter("streamreco_retries", "Calls to Redis or the broker tried "
                               "again after an error", ["service"], registry=r)
        self.hr = Gauge("streamreco_online_hr", f"Rolling online HR@{settings.top_n} of the "
                        "published lists (test-then-train)", registry=r)
        self.ndcg = Gauge("streamreco_online_ndcg", f"Rolling online NDCG@{settings.top_n} of "
                          "the published lists", registry=r)
        self.scored = Gauge("streamreco_online_scored_events", "Events in the rolling quality "
                            "window", registry=r)
        Info("streamreco_model", "The model this worker runs", registry=r).info({
            "model": settings.model, "top_n": str(settings.top_n),
            "window": str(settings.quality_window), "version": VERSION,
        })
        #: (topic, partition) -> the next offset this worker will process
        self.processed_offsets: dict[tuple[str, int], int] = {}

    # --- after each batch ----------------------------------------------------
    def observe_batch(
        self, stream: str, messages: Sequence[RawMessage], result: BatchResult, seconds: float
    ) -> None:
        """Count what one batch did; ``seconds`` is the time the processor took."""
        self.batch_size.labels(stream).observe(len(messages))
        if messages:
            self.event_seconds.labels(stream).observe(seconds / len(messages))
        by_type = getattr(result, "by_type", {})
        for type_, count in by_type.items():
            self.events.labels(stream, type_).inc(count)
        if result.processed > sum(by_type.values()):  # a processor that does not tell types
            self.events.labels(stream, "any").inc(result.processed - sum(by_type.values()))
        self.dead_letters.labels(stream).inc(len(result.dead_letters))
        self.duplicates.labels(stream).inc(getattr(result, "duplicates", 0))
        self.rekeyed.labels(stream).inc(len(result.rekeyed))
        offsets = self.processed_offsets
        for message in messages:
            if message.offset >= 0:
                key = (message.topic, message.partition)
                offsets[key] = max(offsets.get(key, 0), message.offset + 1)

    def observe_published(
        self, stream: str, messages: Iterable[RawMessage], result: BatchResult, started: float,
        publishing: float, acknowledged: float | None = None,
    ) -> None:
        """What a batch started at ``started`` (Unix time) published, acknowledged at
        ``acknowledged`` (default: now) after ``publishing`` seconds of sending.

        Freshness is measured from the Kafka timestamp of the user's latest
        message in the batch: with ``coalesce_lists`` (the default) exactly the
        event that caused the list. Lists made before ``started`` (stored lists
        sent again after a redelivery) are not measured.
        """
        now = time.time() if acknowledged is None else acknowledged
        self.batch_seconds.labels(stream).observe(now - started)
        self.publish_seconds.labels(stream).observe(publishing)
        lists = result.users_lists()
        self.lists.inc(len(lists))
        self.newcomer_lists.inc(len(result.lists) - len(lists))
        self.tombstones.inc(len(getattr(result, "tombstones", ())))
        produced = {m.key: m.timestamp for m in messages if m.timestamp is not None}
        for rec in lists:
            timestamp = produced.get(rec.user_id.encode())
            if timestamp is not None and rec.generated_at >= started:
                self.freshness.observe(max(now - timestamp, 0.0))

    def observe_quality(self, score: RollingScore) -> None:
        """Copy the rolling HR/NDCG into the gauges (run it where ``score`` is updated)."""
        self.hr.set(score.hr)
        self.ndcg.set(score.ndcg)
        self.scored.set(score.scored)

    def failed(self, service: str) -> None:
        """A call to ``service`` ("redis", "broker") failed, and will be tried again."""
        self.errors.labels(service).inc()
        self.retries.labels(service).inc()

    # --- on a timer ------------------------------------------------------------
    async def sample_lag(self, consumer: Any, topics: set[str], timeout: float = 1.0) -> None:
        """Set the lag gauge of every partition of ``topics`` assigned to ``consumer``.

        ``consumer`` is a Faust consumer: its fetches report each partition's
        high watermark (right on every Kafka-protocol broker, unlike
        ListOffsets on some). Lag is that minus the next offset this worker
        will process, or, before it processed any, the consumer's position.
        Partitions no longer assigned lose their series.
        """
        try:
            assigned = {tp for tp in consumer.assignment() if tp.topic in topics}
        except Exception:  # noqa: BLE001 - not started or rebalancing: try next time
            return
        current = {(tp.topic, tp.partition) for tp in assigned}
        for key in [k for k in self.processed_offsets if k not in current]:
            del self.processed_offsets[key]
        for labels in self.lag.collect()[0].samples:
            key = (labels.labels["topic"], int(labels.labels["partition"]))
            if key not in current:
                self.lag.remove(key[0], str(key[1]))
        for tp in assigned:
            high = consumer.highwater(tp)
            done = self.processed_offsets.get((tp.topic, tp.partition))
            if done is None:
                try:
                    done = await asyncio.wait_for(consumer.position(tp), timeout)
                except Exception:  # noqa: BLE001
                    done = None
            if high is not None and done is not None:
                self.lag.labels(tp.topic, str(tp.partition)).set(max(high - done, 0))

    # --- reading ---------------------------------------------------------------
    def render(self) -> bytes:
        """The registry in Prometheus's text exposition format."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float | None:
        """The current value of one sample (``None`` if absent), for tests and the demo."""
        return self.registry.get_sample_value(name, labels)


def logging_config(log_format: str, level: str) -> dict[str, Any] | None:
    """A :func:`logging.config.dictConfig` for the worker: ``None`` keeps Faust's text logs.

    >>> logging_config("json", "info")["formatters"]["json"]["()"]
    'pythonjsonlogger.json.JsonFormatter'
    >>> logging_config("text", "info") is None
    True
    """
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stdout"}},
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
