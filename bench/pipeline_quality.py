"""The quality bench through the pipeline: the same prequential score, from published lists.

The events go to a real Kafka-protocol broker, one producer in file order; a
real ``streamreco worker`` process learns from them with its state in Redis and
publishes one list per event (``coalesce_lists=false``); then the whole
recommendations topic is read back and every event is scored against the last
list the worker *published* for its user before it: the list caused by the
user's previous event (a user's first event meets the newcomers' list, the
one published after the last new user's first interaction before it).
Re-interactions are learned from but not scored, exactly as in
:func:`streamreco.evaluation.replay_offline`, so the two modes count the same
events and, for the same model and settings, should give the same numbers.

:func:`score_published` is the scoring alone, on lists keyed by the event
that caused them:

>>> from streamreco.events import ShopEvent
>>> events = [ShopEvent(event_id=f"e{k}", type="view", user_id=u, item_id=i, ts=k)
...           for k, (u, i) in enumerate([("a", "x"), ("a", "y"), ("a", "x"), ("b", "y")])]
>>> published = {"e0": ["y", "z"], "e1": ["z"], "e2": ["z"], "e3": ["x"]}
>>> newcomers = {"e0": ["y"]}  # published after a's first interaction, e0
>>> first, last = score_published(events, published, newcomers, split_at=[2])
>>> (first.scored, first.hits), (last.events, last.scored, last.hits)  # e1 and e3 hit; e2 is a repeat
((2, 1), (2, 1, 1))

:func:`replay_through_pipeline` runs one model end to end on a broker and Redis
that are already up; :func:`measure`, what ``bench.quality --pipeline`` calls,
starts them and compares with the offline replay.
"""

from __future__ import annotations

import bisect
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import orjson
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic

from bench.harness import WorkerProcess, wait_until
from bench.quality import segment_scores
from bench.speed import delete_namespace
from online_models.feedback import interaction_weight
from producers.replay import produce_events
from streamreco.embedded import free_port, services
from streamreco.evaluation import PrequentialScore, ReplayResult
from streamreco.events import NEWCOMERS, ShopEvent
from streamreco.settings import EMBEDDED, Settings

#: Seconds between two progress lines while the worker catches up.
PROGRESS_EVERY = 15.0


def run_settings(base: Settings, model: str, partitions: int) -> Settings:
    """``base`` with fresh topics, consumer group, Redis namespace and ports, for one run.

    One list per event (``coalesce_lists=false``) and a live-quality window as
    long as any run, so the worker's own score covers the whole stream too.

    >>> s = run_settings(Settings(kafka_bootstrap="kafka://b:9092"), "blend", 1)
    >>> s.coalesce_lists, s.partitions, s.events_topic.startswith("quality-events-")
    (False, 1, True)
    """
    tag = uuid.uuid4().hex[:10]
    return base.model_copy(update={
        "model": model,
        "partitions": partitions,
        "coalesce_lists": False,
        "quality_window": 1_000_000,
        "namespace": f"q{tag}",
        "app_id": f"streamreco-quality-{tag}",
        "events_topic": f"quality-events-{tag}",
        "catalog_topic": f"quality-catalog-{tag}",
        "recommendations_topic": f"quality-recommendations-{tag}",
        "dead_letter_topic": f"quality-dead-letter-{tag}",
        "session_timeout": 6.0,
        "web_port": free_port(),
        "collector_port": free_port(),
    })  # fmt: skip


def create_events_topic(settings: Settings) -> None:
    """Create the events topic with ``settings.partitions`` partitions.

    The worker does not: it subscribes, and the broker creates a missing topic
    with its own default partition count (4 on Tansu).
    """
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    try:
        admin.create_topics([NewTopic(settings.events_topic, settings.partitions, settings.replication_factor)])
    finally:
        admin.close()


def published_lists(
    settings: Settings, causes: Collection[str], timeout: float = 120
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The lists on the recommendations topic, as item ids by the event that caused them:
    the users' own, and the newcomers' (:data:`~streamreco.events.NEWCOMERS`).

    Reads from the beginning until a list caused by each of ``causes`` has
    been seen, or nothing new has come for ``timeout`` seconds. (Tansu answers
    an end-offset request with the first offset of the last record batch, so
    the topic's end cannot be asked for.) A later list for the same cause wins.
    """
    consumer = KafkaConsumer(
        settings.recommendations_topic, bootstrap_servers=settings.kafka_servers,
        auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
    )  # fmt: skip
    lists: dict[str, list[str]] = {}
    newcomers: dict[str, list[str]] = {}
    missing = set(causes)
    quiet_since = time.monotonic()
    try:
        while missing and time.monotonic() - quiet_since < timeout:
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                quiet_since = time.monotonic()
                for record in batch:
                    if record.value is not None:  # a tombstone (forget) is no list
                        body = orjson.loads(record.value)
                        items = [entry["item_id"] for entry in body["items"]]
                        if body["user_id"] == NEWCOMERS:
                            newcomers[body["caused_by"]] = items
                        else:
                            lists[body["caused_by"]] = items
                            missing.discard(body["caused_by"])
    finally:
        consumer.close()
    return lists, newcomers


def score_published(
    events: Sequence[ShopEvent], published: Mapping[str, list[str]], newcomers: Mapping[str, list[str]],
    n: int = 10, split_at: Sequence[int] = (),
) -> list[PrequentialScore]:
    """Each event tested against the list published after its user's previous event; a user's
    first, against the newcomers' list published after the latest event before it that caused one.

    The same protocol as :func:`~streamreco.evaluation.replay_offline`: an event
    that teaches no model (no item, no weight) is neither tested nor learned
    from but still refreshes the list; an item the user had already
    interacted with is counted, not scored. ``split_at`` starts a new segment
    at each event index given.
    """
    boundaries = sorted(set(split_at))
    segments = [PrequentialScore(n=n) for _ in range(len(boundaries) + 1)]
    previous: dict[str, str] = {}  # user -> id of their latest event
    seen: defaultdict[str, set[str]] = defaultdict(set)
    newcomers_shown: list[str] = []
    for index, event in enumerate(events):
        user, item = event.user_id, event.item_id
        if item is not None and interaction_weight(event) is not None:
            shown = published[previous[user]] if user in previous else newcomers_shown
            segments[bisect.bisect_right(boundaries, index)].update(shown, item, seen_before=item in seen[user])
            seen[user].add(item)
        previous[user] = event.event_id
        newcomers_shown = newcomers.get(event.event_id, newcomers_shown)
    return segments


def _wait_processed(worker: WorkerProcess, total: int) -> None:
    """Until the worker's ``events_processed`` reaches ``total``; progress on stderr."""
    last_said = time.monotonic()

    def done() -> bool:
        nonlocal last_said
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.process.returncode}:\n{worker.log.read_text()[-3000:]}")
        processed = worker.health().get("events_processed", 0)
        if time.monotonic() - last_said > PROGRESS_EVERY:
            print(f"pipeline: {processed:,}/{total:,} events processed", file=sys.stderr, flush=True)
            last_said = time.monotonic()
        return processed >= total

    wait_until(done, timeout=120 + total / 20, what=f"{total:,} events processed")  # 20 events/s at worst


def replay_through_pipeline(
    settings: Settings, events: Sequence[ShopEvent], log_dir: Path, split_at: Sequence[int] = ()
) -> tuple[ReplayResult, dict]:
    """Run ``events`` through a worker with ``settings``; the score and the worker's last health.

    ``settings`` must have ``coalesce_lists=false`` (one list per event) and
    topics, group and namespace of its own (see :func:`run_settings`); the
    events topic is created with ``settings.partitions`` partitions. The
    worker's log goes to ``log_dir``. The time runs from the first event
    produced until the worker has processed the last. Raises when an event
    got no list or was dead-lettered.
    """
    if settings.coalesce_lists:
        raise ValueError("scoring every event needs its own list: coalesce_lists=false")
    create_events_topic(settings)  # before the worker subscribes to it
    worker = WorkerProcess(settings, log_dir / f"worker-{settings.app_id}.log")
    try:
        worker.wait_ready()
        started = time.perf_counter()
        produce_events(settings, events)
        _wait_processed(worker, len(events))
        seconds = time.perf_counter() - started
        health = worker.health()
    finally:
        worker.stop()
    published, newcomers = published_lists(settings, [e.event_id for e in events])
    unlisted = [e.event_id for e in events if e.event_id not in published]
    if unlisted or health["dead_lettered"]:
        raise RuntimeError(
            f"{len(unlisted):,} events without a published list (first: {unlisted[:5]}), "
            f"{health['dead_lettered']:,} dead-lettered"
        )
    segments = score_published(events, published, newcomers, settings.top_n, split_at)
    return ReplayResult(settings.model, segments, seconds), health


def relative_difference(pipeline: float, offline: float) -> float:
    """``(pipeline - offline) / offline``; 0 when both are 0.

    >>> round(relative_difference(0.198, 0.2), 6), relative_difference(0.0, 0.0)
    (-0.01, 0.0)
    """
    if offline == 0:
        return 0.0 if pipeline == 0 else float("inf")
    return (pipeline - offline) / offline


def measure(
    models: Sequence[str], partitions: Sequence[int], events: Sequence[ShopEvent],
    offline: Callable[[], Mapping[str, Mapping[str, Mapping]]],
) -> list[dict]:
    """For each model and partition count, the pipeline's scores beside the offline ones.

    ``offline()`` returns :func:`bench.quality.measure`'s report on the same events;
    it is called once the pipeline runs are done, so that the offline replay can
    run beside them (in another process). Starts a Tansu broker (and uses the
    Redis on 127.0.0.1:6379, or an embedded one); each run has its own topics and
    Redis namespace, deleted afterwards.
    """
    catalogue = len({e.item_id for e in events})
    runs = []
    started_here = Settings(kafka_bootstrap=EMBEDDED, redis_url=EMBEDDED)
    with tempfile.TemporaryDirectory(prefix="streamreco-quality-") as logs, services(started_here, Path(logs)) as base:
        for model in models:
            for count in partitions:
                settings = run_settings(base, model, count)
                try:
                    result, health = replay_through_pipeline(settings, events, Path(logs), [len(events) // 2])
                finally:
                    delete_namespace(settings.redis_url, settings.namespace)
                runs.append((model, count, settings.batch_max, health, segment_scores(result, catalogue)))
    scores = offline()
    return [
        {
            "model": model,
            "partitions": count,
            "batch_max": batch_max,
            "lists_published": health["lists_published"],
            "worker_live_quality": health["quality"],
            "offline": scores[model],
            "pipeline": pipeline,
            "relative_difference": {
                segment: {m: relative_difference(pipeline[segment][m], scores[model][segment][m])
                          for m in ("hr", "ndcg")}
                for segment in pipeline
            },
        }
        for model, count, batch_max, health, pipeline in runs
    ]  # fmt: skip
