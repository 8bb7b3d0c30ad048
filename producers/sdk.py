"""The Python SDK the shop back end imports to send events to streamreco.

:class:`EventProducer` validates every message against the contract in
:mod:`streamreco.events` before it is sent: an invalid event raises
:class:`~streamreco.events.InvalidEvent` and never reaches Kafka. Behaviour
events go to ``settings.events_topic`` keyed by ``user_id`` (so one user's
events stay in order on one partition), catalogue changes to
``settings.catalog_topic`` keyed by ``item_id``.

>>> from streamreco.settings import Settings
>>> with EventProducer(Settings()) as producer:  # doctest: +SKIP
...     producer.track("view", user_id="u1", item_id="i9", context={"page": "home"})
...     producer.send_catalog({"item_id": "i9", "ts": 1700000000, "price": 19.9})

The pure helpers are what the HTTP collector shares:

>>> event = shop_event(with_defaults({"type": "view", "user_id": "u1", "item_id": "i9"}))
>>> event.type, len(event.event_id), event.ts > 1_700_000_000
('view', 32, True)
>>> shop_event({"event_id": "e1", "type": "view", "user_id": "u1", "ts": 1})
Traceback (most recent call last):
...
streamreco.events.InvalidEvent: item_id: a 'view' event needs an item_id
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from streamreco.events import (
    CatalogEvent,
    InvalidEvent,
    ShopEvent,
    dumps,
    parse_catalog_event,
    parse_event,
)
from streamreco.privacy import Pseudonymiser
from streamreco.settings import Settings


def with_defaults(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with a fresh ``event_id`` (uuid4 hex) and ``ts`` (now) where they are missing.

    Browsers and quick integrations often leave both out; a ``None`` counts as missing.

    >>> filled = with_defaults({"type": "search", "user_id": "u1", "text": "shoes", "ts": 5})
    >>> filled["ts"], len(filled["event_id"])
    (5, 32)
    """
    filled = dict(data)
    if filled.get("event_id") is None:
        filled["event_id"] = uuid.uuid4().hex
    if filled.get("ts") is None:
        filled["ts"] = time.time()
    return filled


def _json(data: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(data)
    except TypeError as exc:
        raise InvalidEvent(f"not serialisable to JSON: {exc}") from None


def _validated(event: Any, model: type, parse: Callable[[bytes], Any]) -> Any:
    if isinstance(event, model):
        return event
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"expected a {model.__name__} or a mapping, got {type(event).__name__}")
    return parse(_json(event))


def shop_event(event: ShopEvent | Mapping[str, Any]) -> ShopEvent:
    """``event`` as a validated :class:`ShopEvent`, or raise :class:`InvalidEvent` saying why.

    A mapping goes through :func:`streamreco.events.parse_event`, so it is
    judged (and explained) exactly as the worker will judge it.
    """
    return _validated(event, ShopEvent, parse_event)


def catalog_event(event: CatalogEvent | Mapping[str, Any]) -> CatalogEvent:
    """``event`` as a validated :class:`CatalogEvent`, or raise :class:`InvalidEvent`.

    >>> catalog_event({"item_id": "i1", "ts": 1, "price": -2})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamreco.events.InvalidEvent: price: Input should be greater than or equal to 0...
    """
    return _validated(event, CatalogEvent, parse_catalog_event)


class DeliveryError(Exception):
    """Events sent through an :class:`EventProducer` that the broker did not acknowledge."""

    def __init__(self, failed: list[BaseException]) -> None:
        self.failed = failed
        super().__init__(f"{len(failed)} event(s) sent were not delivered; the first: {failed[0]!r}")


class EventProducer:
    """Sends contract-valid events to Kafka with kafka-python's ``KafkaProducer``.

    Parameters
    ----------
    settings
        Where to send: ``kafka_servers``, ``events_topic``, ``catalog_topic``, and how:
        :meth:`~streamreco.settings.Settings.kafka_client_options` (SASL, TLS).
    acks
        ``'all'`` (default) waits until every in-sync replica has the message.
    linger_ms
        How long the client waits to fill a batch before sending it.
    **config
        Any other ``KafkaProducer`` option (``compression_type``, ``batch_size``, ...);
        these win over the settings' security options.

    Sends are asynchronous: each returns kafka-python's future, and
    :meth:`flush` (or leaving the ``with`` block) waits until all are written,
    then raises :class:`DeliveryError` for those the broker did not take (each
    failure is raised once).
    """

    def __init__(
        self, settings: Settings, *, acks: str | int = "all", linger_ms: int = 5, **config: Any
    ) -> None:
        self.settings = settings
        self._pseudonymise = Pseudonymiser.from_settings(settings)
        self._failed: list[BaseException] = []  # appended to by the client's sender thread
        self._producer = KafkaProducer(
            bootstrap_servers=settings.kafka_servers, acks=acks, linger_ms=linger_ms,
            **settings.kafka_client_options() | config,
        )

    def send(self, event: ShopEvent | Mapping[str, Any]) -> FutureRecordMetadata:
        """Validate ``event`` and send it to the events topic keyed by its ``user_id``.

        With ``pseudonymise_key`` set, the user id is replaced by its pseudonym first,
        so the raw id never reaches Kafka.
        """
        event = self._pseudonymise.event(shop_event(event))
        return self._watched(self._producer.send(
            self.settings.events_topic, value=dumps(event), key=event.user_id.encode()
        ))

    def send_catalog(self, event: CatalogEvent | Mapping[str, Any]) -> FutureRecordMetadata:
        """Validate ``event`` and send it to the catalog topic keyed by its ``item_id``."""
        event = catalog_event(event)
        return self._watched(self._producer.send(
            self.settings.catalog_topic, value=dumps(event), key=event.item_id.encode()
        ))

    def _watched(self, sent: FutureRecordMetadata) -> FutureRecordMetadata:
        sent.add_errback(self._failed.append)
        return sent

    def _raise_failures(self) -> None:
        if self._failed:
            failed, self._failed = self._failed, []
            raise DeliveryError(failed)

    def track(
        self, type: str, user_id: str, item_id: str | None = None, **fields: Any
    ) -> ShopEvent:
        """Build an event (new ``event_id``, ``ts`` now unless given), send it, return it."""
        event = shop_event(
            with_defaults({"type": type, "user_id": user_id, "item_id": item_id, **fields})
        )
        self.send(event)
        return event

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every message sent so far is acknowledged or has failed; raise
        :class:`DeliveryError` if any failed."""
        self._producer.flush(timeout)
        self._raise_failures()

    def close(self, timeout: float | None = None) -> None:
        """Flush and release the connection; raise :class:`DeliveryError` if any message failed."""
        self._producer.close(timeout)
        self._raise_failures()

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if exc_type is None:
            self.close()
        else:  # the error on its way out says more than a failed delivery would
            self._producer.close()
