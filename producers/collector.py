"""The HTTP collector: browsers POST events, the collector validates and produces them.

``POST /events`` takes one event object, a JSON array of events, or
``{"events": [...]}``. Each event is checked against the contract
(:class:`~streamreco.events.ShopEvent`; a missing ``event_id`` or ``ts`` is
filled in, since browsers often leave them out; ``forget`` is refused, since a
browser's request proves nothing about who asks: deletion comes from the shop's
back end). With ``pseudonymise_key`` set, user ids are pseudonymised before
anything is produced. The valid ones are produced to ``settings.events_topic``
keyed by ``user_id`` and acknowledged by the broker, each on its own, before the
answer goes out:

=====  ==========================================================================
202    every event accepted: ``{"accepted": n, "rejected": []}``
207    some rejected: ``{"accepted": n, "rejected": [{"index": i, "error": "..."}]}``;
       an event the broker did not take is rejected too (send it again: the
       others are in)
400    not JSON, a body that cannot be decoded, no events, or every event
       rejected by validation (with the same ``rejected`` list)
413    body or event count over the :class:`Limits`
503    the broker took none of the valid events (with the ``rejected`` list)
=====  ==========================================================================

Every error body is JSON with an ``"error"`` field. ``GET /health`` answers
``{"status": "ok"}`` while the Kafka producer runs; ``GET /metrics`` gives the
collector's request counts and latencies to Prometheus
(``streamreco_collector_requests_total``, ``streamreco_collector_request_seconds``).

>>> from streamreco.settings import Settings
>>> run_collector(Settings())  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp_cors
import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from producers.sdk import shop_event, with_defaults
from streamreco.events import InvalidEvent, ShopEvent, dumps
from streamreco.privacy import Pseudonymiser
from streamreco.settings import Settings


@dataclass(frozen=True)
class Limits:
    """How much one request may carry."""

    max_body: int = 1 << 20  #: bytes
    max_events: int = 1000


class RequestMetrics:
    """The collector's own Prometheus metrics: requests by route and status, and their latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("streamreco_collector_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.seconds = Histogram("streamreco_collector_request_seconds", "Seconds to answer "
                                 "an HTTP request", ["method", "route"], registry=self.registry)


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", RequestMetrics)
LIMITS = web.AppKey("limits", Limits)
PRODUCER = web.AppKey("producer", AIOKafkaProducer)
PSEUDONYMISE = web.AppKey("pseudonymise", Pseudonymiser)


def _dumps(data: Any) -> str:
    return orjson.dumps(data).decode()


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status, dumps=_dumps)


def event_list(body: Any) -> list[Any]:
    """The events of a request body: one object, an array, or ``{"events": [...]}``.

    >>> event_list({"type": "view"}), event_list([{"a": 1}, 2]), event_list({"events": []})
    ([{'type': 'view'}], [{'a': 1}, 2], [])
    >>> event_list("view")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamreco.events.InvalidEvent: expected an event object, an array of events or ..., got str
    """
    if isinstance(body, dict) and set(body) == {"events"} and isinstance(body["events"], list):
        return body["events"]
    if isinstance(body, dict):
        return [body]
    if isinstance(body, list):
        return body
    raise InvalidEvent(
        'expected an event object, an array of events or {"events": [...]}, '
        f"got {type(body).__name__}"
    )


def validate_batch(items: list[Any]) -> tuple[dict[int, ShopEvent], list[dict[str, Any]]]:
    """Split ``items`` into valid events by index and ``{"index", "error"}`` rejections.

    >>> valid, rejected = validate_batch([
    ...     {"type": "view", "user_id": "u1", "item_id": "i1"},
    ...     {"type": "view", "user_id": "u1"},
    ...     "click",
    ...     {"type": "forget", "user_id": "u2"},
    ... ])
    >>> {index: e.item_id for index, e in valid.items()}
    {0: 'i1'}
    >>> rejected  # doctest: +NORMALIZE_WHITESPACE
    [{'index': 1, 'error': "item_id: a 'view' event needs an item_id"},
     {'index': 2, 'error': 'expected a JSON object, got str'},
     {'index': 3, 'error': "type: 'forget' is not taken from browsers; send it from the shop's back end
     (the SDK, `streamreco forget` or Kafka)"}]
    """
    valid, rejected = {}, []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise InvalidEvent(f"expected a JSON object, got {type(item).__name__}")
            event = shop_event(with_defaults(item))
            if event.type == "forget":
                raise InvalidEvent("type: 'forget' is not taken from browsers; send it from the shop's back end "
                                   "(the SDK, `streamreco forget` or Kafka)")
            valid[index] = event
        except InvalidEvent as exc:
            rejected.append({"index": index, "error": str(exc)})
    return valid, rejected


async def post_events(request: web.Request) -> web.Response:
    limits = request.app[LIMITS]
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"body larger than {limits.max_body} bytes")
    except web.RequestPayloadError as exc:  # a Content-Encoding the body does not match
        return _error(400, f"the body could not be decoded: {exc}")
    try:
        items = event_list(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        return _error(400, f"not valid JSON (UTF-8): {exc}")
    except InvalidEvent as exc:
        return _error(400, str(exc))
    if len(items) > limits.max_events:
        return _error(413, f"{len(items)} events in one request; at most {limits.max_events}")
    if not items:
        return _error(400, "no events")
    valid, rejected = validate_batch(items)
    if not valid:
        return _error(400, "every event was rejected", accepted=0, rejected=rejected)
    failed = await _produce(request.app, valid)
    rejected = sorted(rejected + failed, key=lambda rejection: rejection["index"])
    if len(failed) == len(valid):
        return _error(503, "the broker did not take the events", accepted=0, rejected=rejected)
    return web.json_response(
        {"accepted": len(valid) - len(failed), "rejected": rejected},
        status=207 if rejected else 202,
        dumps=_dumps,
    )


async def _produce(app: web.Application, events: dict[int, ShopEvent]) -> list[dict[str, Any]]:
    """Produce ``events`` (pseudonymised), each acknowledged on its own; a rejection for each the broker did not take.

    Each event's fate is its own, so that a client sends again only the events that failed
    (a whole request sent again would produce the others twice, under new event ids where
    the collector made them up).
    """
    settings, producer, pseudonymise = app[SETTINGS], app[PRODUCER], app[PSEUDONYMISE]
    sent: list[asyncio.Future] = []
    for event in events.values():  # queued one after another: a user's events keep their order
        event = pseudonymise.event(event)
        try:
            sent.append(await producer.send(settings.events_topic, dumps(event), key=event.user_id.encode()))
        except KafkaError as exc:  # not even queued
            refused = asyncio.get_running_loop().create_future()
            refused.set_exception(exc)
            sent.append(refused)
    outcomes = await asyncio.gather(*sent, return_exceptions=True)
    failed = []
    for index, outcome in zip(events, outcomes, strict=True):
        if isinstance(outcome, KafkaError):
            failed.append({"index": index, "error": f"the broker did not take it: {outcome!r}"})
        elif isinstance(outcome, BaseException):
            raise outcome
    return failed


@web.middleware
async def measure(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count and time every request, by route (not by path: unknown paths are one series)."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    started, status = time.perf_counter(), 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics = request.app[METRICS]
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.seconds.labels(request.method, route).observe(time.perf_counter() - started)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health(request: web.Request) -> web.Response:
    if PRODUCER not in request.app:
        return web.json_response({"status": "starting"}, status=503)
    return web.json_response({"status": "ok"})


async def _producer(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_servers, acks="all", linger_ms=5, **settings.kafka_client_options()
    )
    await producer.start()
    app[PRODUCER] = producer
    try:
        yield
    finally:
        await producer.stop()


def make_app(settings: Settings, limits: Limits = Limits()) -> web.Application:
    """The collector's aiohttp application; its Kafka producer starts with the app.

    Parameters
    ----------
    settings
        Broker (address and :meth:`~streamreco.settings.Settings.kafka_client_options`)
        and ``events_topic``.
    limits
        Largest body (bytes) and most events one request may carry; beyond: 413.
    """
    app = web.Application(client_max_size=limits.max_body, middlewares=[measure])
    app[SETTINGS] = settings
    app[LIMITS] = limits
    app[METRICS] = RequestMetrics()
    app[PSEUDONYMISE] = Pseudonymiser.from_settings(settings)
    app.cleanup_ctx.append(_producer)
    app.router.add_post("/events", post_events)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    origins = [o.strip() for o in settings.collector_cors_origins.split(",") if o.strip()]
    if origins:  # browsers on the shop's pages post from another origin
        cors = aiohttp_cors.setup(app, defaults={
            origin: aiohttp_cors.ResourceOptions(allow_headers="*", allow_methods=["POST", "GET"])
            for origin in origins
        })
        for route in list(app.router.routes()):
            cors.add(route)
    return app


def run_collector(settings: Settings) -> None:
    """Serve the collector on ``settings.web_host:settings.collector_port`` until stopped."""
    web.run_app(make_app(settings), host=settings.web_host, port=settings.collector_port)
