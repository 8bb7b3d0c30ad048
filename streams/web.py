"""The worker's HTTP views: the latest list per user, health, and Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import orjson
import redis
from aiokafka.admin import AIOKafkaAdminClient
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

import faust
from streamreco.events import NEWCOMERS
from streamreco.keys import Keys
from streamreco.privacy import Pseudonymiser
from streamreco.settings import Settings
from streams.agents import WorkerState


T = TypeVar("T")

#: Seconds a web view waits for the store before it gives up (the worker's Redis client waits 10).
STORE_TIMEOUT = 2.0


async def from_store(call: Callable[..., T], *args: object, timeout: float = STORE_TIMEOUT) -> T:
    """``call(*args)``, a blocking store call, in a thread: the event loop (Kafka heartbeats, fetches,
    the producer) goes on while it waits. Raises :class:`TimeoutError` after ``timeout`` seconds."""
    return await asyncio.wait_for(asyncio.to_thread(call, *args), timeout)


class BrokerProbe:
    """Does the broker answer? Asks it for the events topic's metadata, within ``timeout``."""

    def __init__(self, settings: Settings, timeout: float = 2.0) -> None:
        self.servers = settings.kafka_servers
        self.client_options = settings.kafka_client_options()
        self.topic = settings.events_topic
        self.timeout = timeout
        self.admin: AIOKafkaAdminClient | None = None

    async def answers(self) -> bool:
        try:
            if self.admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self.servers, client_id="streamreco-health",
                                            request_timeout_ms=int(self.timeout * 1000),
                                            **self.client_options)
                await asyncio.wait_for(admin.start(), self.timeout)
                self.admin = admin
            await asyncio.wait_for(self.admin.describe_topics([self.topic]), self.timeout)
        except Exception:  # noqa: BLE001 - any failure means: not answering now
            return False
        return True

    async def close(self) -> None:
        if self.admin is not None:
            await self.admin.close()
            self.admin = None


def register(app: faust.App, settings: Settings, state: WorkerState) -> None:
    keys = Keys(settings.namespace)
    pseudonymise = Pseudonymiser.from_settings(settings)
    broker = BrokerProbe(settings)

    @app.on_before_shutdown.connect
    async def close_probe(app: faust.App, **kwargs: object) -> None:  # noqa: ARG001
        await broker.close()

    async def store_answers() -> bool:
        try:
            return await from_store(state.store.ping)
        except TimeoutError:
            return False

    @app.page("/recommendations/{user_id}")
    class LatestRecommendations(View):
        """``GET /recommendations/{user_id}``: the last list published for the user; for a user
        with none yet, the newcomers' list (its ``user_id`` is empty)."""

        async def get(self, request: Request, user_id: str) -> Response:
            try:
                own, newcomers = await from_store(
                    state.store.get, [keys.latest(pseudonymise(user_id)), keys.latest(NEWCOMERS)]
                )
            except (TimeoutError, redis.RedisError) as exc:
                return self.json({"error": f"the store did not answer: {type(exc).__name__}"}, status=503)
            blob = own if own is not None else newcomers
            if blob is None:
                return self.json({"error": f"no recommendations for user {user_id!r} yet"}, status=404)
            return self.bytes(blob, content_type="application/json")

    @app.page("/health")
    class Health(View):
        """``GET /health``: 200 when Redis and the broker answer and the consumer has partitions."""

        async def get(self, request: Request) -> Response:
            assigned = state.consumer.assignment() if state.consumer is not None else set()
            redis_ok, broker_ok = await asyncio.gather(store_answers(), broker.answers())
            reachable = redis_ok and broker_ok
            body = {
                "status": "ok" if reachable and assigned else "starting" if reachable else "degraded",
                "redis": redis_ok,
                "broker": broker_ok,
                "assigned_partitions": len(assigned),
                "events_processed": state.events_processed,
                "lists_published": state.lists_published,
                "newcomer_lists_published": state.newcomer_lists_published,
                "dead_lettered": state.dead_lettered,
                "duplicates": state.duplicates,
                "rekeyed": state.rekeyed,
                "store_errors": state.store_errors,
                "quality": state.quality(),
            }
            return self.bytes(orjson.dumps(body), content_type="application/json",
                              status=200 if body["status"] == "ok" else 503)

    @app.page("/metrics")
    class Metrics(View):
        """``GET /metrics``: this worker's metrics in Prometheus's text format."""

        async def get(self, request: Request) -> Response:
            return self.bytes(state.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
