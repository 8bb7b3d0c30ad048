"""The straightforward Faust version of the worker, for the speed benchmark's ratio.

What a first version written from the Faust tutorial looks like, kept small
and honest: one event at a time, every Redis command its own awaited round
trip (no pipeline), every catalogue item scored for every event (co-occurrence
with the user's last item plus a little popularity), and one awaited
``topic.send`` per event. At startup it reads the catalogue topic to its end
(with a consumer of its own) before it serves any event. It is not part of the
product; ``bench.speed`` runs it as its own worker process against the same
topics and data.

    STREAMRECO_KAFKA_BOOTSTRAP=kafka://127.0.0.1:9092 STREAMRECO_REDIS_URL=redis://127.0.0.1:6379/0 \\
        python -m bench.naive

``GET /health`` on the web port answers ``{"events": n, "catalog": m}``.
"""

from __future__ import annotations

import asyncio
import heapq
import time

import faust
import orjson
import redis.asyncio
from aiokafka import AIOKafkaConsumer
from faust.web import Request, Response, View

from streamreco.settings import Settings

HISTORY = 50
PAIRS = 5  # co-occurrence pairs learned per event: the item with the user's last 5 items
POPULARITY_WEIGHT = 0.01


def create_app(settings: Settings) -> faust.App:
    """A Faust app that recommends the naive way, state under ``settings.namespace``."""
    app = faust.App(
        settings.app_id,
        broker=settings.faust_broker,
        store="memory://",
        topic_partitions=settings.partitions,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        consumer_auto_offset_reset="earliest",
        loghandlers=[],
    )
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    events = app.topic(settings.events_topic, **raw)
    catalog = app.topic(settings.catalog_topic, **raw)
    lists = app.topic(settings.recommendations_topic, **raw)
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    store = redis.asyncio.Redis.from_url(settings.redis_url, password=password, decode_responses=True)
    ns = settings.namespace
    catalogue: list[str] = []
    known: set[str] = set()
    done = {"events": 0, "catalog": 0}

    loaded = asyncio.Event()
    loaded_to: dict[int, int] = {}  # catalogue partition -> the offset the startup load read to

    async def add_item(value: bytes) -> None:
        item = orjson.loads(value)
        await store.set(f"{ns}:item:{item['item_id']}", value)
        if item["item_id"] not in known:
            known.add(item["item_id"])
            catalogue.append(item["item_id"])
        done["catalog"] += 1

    @app.task
    async def load_catalogue_first() -> None:
        """The catalogue as it is at startup, read to its end before any event is served.

        With its own consumer: one Faust consumer would serve the catalogue agent only
        as far as the events agent's backlog lets it (head-of-line), sometimes not at all.
        """
        consumer = AIOKafkaConsumer(settings.catalog_topic, bootstrap_servers=settings.kafka_servers,
                                    group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in records:
                        await add_item(record.value)
                if await _at_end(consumer):
                    break
            loaded_to.update({tp.partition: await consumer.position(tp) for tp in consumer.assignment()})
        finally:
            await consumer.stop()
            loaded.set()

    @app.agent(catalog)
    async def load_catalogue(stream: faust.StreamT) -> None:
        """Catalogue changes after startup (what the startup load read is skipped)."""
        await loaded.wait()
        async for event in stream.events():
            if event.message.offset >= loaded_to.get(event.message.partition, 0):
                await add_item(event.value)

    @app.agent(events)
    async def recommend(stream: faust.StreamT) -> None:
        await loaded.wait()
        async for value in stream:
            event = orjson.loads(value)
            user, item = event["user_id"], event.get("item_id")
            blob = await store.get(f"{ns}:profile:{user}")
            history: list[str] = orjson.loads(blob) if blob else []
            if item:
                await store.zincrby(f"{ns}:pop", 1.0, item)
                for other in history[-PAIRS:]:
                    if other != item:
                        await store.zincrby(f"{ns}:co:{item}", 1.0, other)
                        await store.zincrby(f"{ns}:co:{other}", 1.0, item)
                history = [*history, item][-HISTORY:]
                await store.set(f"{ns}:profile:{user}", orjson.dumps(history))
            popularity = dict(await store.zrange(f"{ns}:pop", 0, -1, withscores=True))
            together = dict(await store.zrange(f"{ns}:co:{history[-1]}", 0, -1, withscores=True)) if history else {}
            seen = set(history)
            top = heapq.nlargest(
                10,
                ((together.get(i, 0.0) + POPULARITY_WEIGHT * popularity.get(i, 0.0), i) for i in catalogue if i not in seen),
            )
            body = orjson.dumps({
                "user_id": user,
                "items": [{"item_id": i, "score": s} for s, i in top],
                "caused_by": event["event_id"],
                "generated_at": time.time(),
            })
            await store.set(f"{ns}:latest:{user}", body)
            await lists.send(key=user.encode(), value=body)
            done["events"] += 1

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json(done)

    return app


async def _at_end(consumer: AIOKafkaConsumer) -> bool:
    """Whether ``consumer`` has read every partition it has up to the high watermark of its last fetch."""
    assigned = consumer.assignment()
    for tp in assigned:
        high = consumer.highwater(tp)
        if high is None or await consumer.position(tp) < high:
            return False
    return bool(assigned)


def main() -> None:
    app = create_app(Settings())
    faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
