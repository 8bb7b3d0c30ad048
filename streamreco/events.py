"""The event contract: what the shop sends and what streamreco publishes.

Version 1 of the contract. Every message is one JSON object.

* :class:`ShopEvent` -- user behaviour, on the events topic, keyed by ``user_id``.
* :class:`CatalogEvent` -- item upserts and deletes, on the catalog topic, keyed
  by ``item_id``.
* :class:`RecommendationList` -- what the worker publishes on the
  recommendations topic, keyed by ``user_id``.

>>> e = parse_event(b'{"event_id": "e1", "type": "view", "user_id": "u1", '
...                 b'"item_id": "i9", "ts": 1700000000}')
>>> e.type, e.user_id, e.item_id
('view', 'u1', 'i9')
>>> parse_event(b'{"event_id": "e2", "type": "purchase", "user_id": "u1", "ts": 1}')
Traceback (most recent call last):
...
streamreco.events.InvalidEvent: item_id: a 'purchase' event needs an item_id

JSON Schemas of all three are printed by ``streamreco schema``.
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCHEMA_VERSION = 1

EventType = Literal[
    "view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating", "review", "search",
    "forget",
]
#: Event types that are about one item and therefore need an ``item_id``.
ITEM_EVENT_TYPES = frozenset(
    {"view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating", "review"}
)

Id = Annotated[str, Field(min_length=1, max_length=256)]
#: Unix seconds; 1970 .. 2100 so that a millisecond timestamp is caught.
Timestamp = Annotated[float, Field(ge=0, le=4_102_444_800, allow_inf_nan=False)]
ContextValue = str | int | float | bool | None


class InvalidEvent(ValueError):
    """A message that does not follow the contract; ``str()`` says why."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    v: Literal[1] = Field(SCHEMA_VERSION, description="contract version")


class ShopEvent(_Message):
    """One user-behaviour event from the shop, or ``forget``: delete all that is held about the user."""

    event_id: Id = Field(description="unique per event; a redelivered id changes nothing")
    type: EventType
    user_id: Id
    item_id: Id | None = None
    ts: Timestamp = Field(description="when it happened, Unix seconds")
    value: float | None = Field(
        None, allow_inf_nan=False, description="rating, price or quantity"
    )
    text: str | None = Field(None, max_length=10_000, description="review text or search query")
    session_id: Id | None = None
    context: dict[Annotated[str, Field(max_length=64)], ContextValue] = Field(
        default_factory=dict, max_length=32, description="device, page, ..."
    )

    @field_validator("context")
    @classmethod
    def _short_context_values(cls, context: dict[str, Any]) -> dict[str, Any]:
        for key, value in context.items():
            if isinstance(value, str) and len(value) > 1024:
                raise ValueError(f"context[{key!r}] is longer than 1024 characters")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"context[{key!r}] is not a finite number")
        return context

    @model_validator(mode="after")
    def _item_where_it_applies(self) -> ShopEvent:
        if self.type in ITEM_EVENT_TYPES and self.item_id is None:
            raise ValueError(f"item_id: a {self.type!r} event needs an item_id")
        if self.type == "rating" and self.value is None:
            raise ValueError("value: a 'rating' event needs a value")
        if self.type == "search" and not self.text:
            raise ValueError("text: a 'search' event needs the query in text")
        return self


class CatalogEvent(_Message):
    """An item was created or changed (``upsert``) or removed (``delete``)."""

    op: Literal["upsert", "delete"] = "upsert"
    item_id: Id
    ts: Timestamp
    title: str | None = Field(None, max_length=1000)
    category: str | None = Field(None, max_length=256)
    brand: str | None = Field(None, max_length=256)
    price: float | None = Field(None, ge=0, allow_inf_nan=False)
    in_stock: bool = True
    attributes: dict[Annotated[str, Field(max_length=64)], ContextValue] = Field(
        default_factory=dict, max_length=64
    )
    created_at: Timestamp | None = None


#: The ``user_id`` of the list for newcomers: what a user with no list of their own is shown
#: (no user has an empty id). The worker publishes it again whenever a new user's first
#: interaction changes it.
NEWCOMERS = ""


class RecommendedItem(BaseModel):
    """One entry of a list: the item, its score and what produced it."""

    model_config = ConfigDict(frozen=True)

    item_id: str
    score: float
    reason: str = Field(description="similar_to:<item_id> | for_you | popular_with_new_users | new | popular")


class RecommendationList(BaseModel):
    """A user's refreshed top-N list, published after each event of that user."""

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    user_id: str
    items: list[RecommendedItem]
    model: str
    generated_at: float = Field(description="when the list was computed, Unix seconds")
    caused_by: str = Field(description="event_id of the event that refreshed it")
    event_ts: float = Field(description="ts of that event")

    @functools.cached_property
    def value(self) -> bytes:
        """The list as published and stored: JSON bytes, encoded once.

        >>> RecommendationList(user_id="u", items=[], model="m", generated_at=1.0,
        ...                    caused_by="e", event_ts=0.5).value[:24]
        b'{"v":1,"user_id":"u","it'
        """
        return orjson.dumps(self.model_dump())


def _explain(error: ValidationError) -> str:
    parts = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(p) for p in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] != "value_error" and problem["type"] != "missing":
            message = f"{message} (got {repr(problem['input'])[:80]})"
        parts.append(message if message.startswith(f"{where}:") or not where else f"{where}: {message}")
    return "; ".join(parts)[:1000]


def _parse(model: type[_Message], raw: bytes | str) -> Any:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON (UTF-8): {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEvent(f"expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(_explain(exc)) from None


def parse_event(raw: bytes | str) -> ShopEvent:
    """Validate one events-topic message, or raise :class:`InvalidEvent`."""
    return _parse(ShopEvent, raw)


def parse_catalog_event(raw: bytes | str) -> CatalogEvent:
    """Validate one catalog-topic message, or raise :class:`InvalidEvent`.

    >>> parse_catalog_event('{"item_id": "i1", "ts": 5, "in_stock": false}').in_stock
    False
    """
    return _parse(CatalogEvent, raw)


def dumps(message: BaseModel) -> bytes:
    """Serialise a contract message to compact JSON bytes, without unset defaults.

    >>> dumps(ShopEvent(event_id="e", type="search", user_id="u", ts=1.0, text="red shoes"))
    b'{"event_id":"e","type":"search","user_id":"u","ts":1.0,"text":"red shoes"}'
    """
    return orjson.dumps(message.model_dump(exclude_defaults=True, exclude={"v"}))


def json_schemas() -> dict[str, Any]:
    """The JSON Schema of each message of the contract, by name."""
    return {
        model.__name__: model.model_json_schema()
        for model in (ShopEvent, CatalogEvent, RecommendationList)
    }
