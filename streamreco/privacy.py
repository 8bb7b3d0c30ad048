"""Pseudonymous user ids: a keyed hash applied once, wherever an event enters streamreco.

A pseudonym carries the prefix ``p1:``, so applying the function again changes
nothing: the SDK, the collector and the worker can all apply it, and an id is
hashed exactly once whichever of them sees it first.

>>> pseudonymise = Pseudonymiser("a secret key")
>>> alias = pseudonymise("alice@example.com")
>>> alias.startswith("p1:"), len(alias), pseudonymise(alias) == alias
(True, 35, True)
>>> Pseudonymiser(None)("alice")   # no key configured: ids pass through
'alice'
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from streamreco.events import ShopEvent
    from streamreco.settings import Settings

    Event = TypeVar("Event", bound=ShopEvent)

PREFIX = "p1:"


class Pseudonymiser:
    """HMAC-SHA256 of the user id under ``key``, shortened to 128 bits (32 hex digits)."""

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Pseudonymiser:
        """The one ``settings.pseudonymise_key`` names (none: ids pass through)."""
        key = settings.pseudonymise_key
        return cls(key.get_secret_value() if key else None)

    def __call__(self, user_id: str) -> str:
        if self._key is None or user_id.startswith(PREFIX):
            return user_id
        digest = hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()[:32]
        return PREFIX + digest

    def event(self, event: Event) -> Event:
        """``event`` with its ``user_id`` pseudonymised; ``event`` itself where that changes nothing.

        >>> from streamreco.events import ShopEvent
        >>> seen = ShopEvent(event_id="e1", type="view", user_id="alice", item_id="i1", ts=0)
        >>> Pseudonymiser("k").event(seen).user_id.startswith("p1:"), Pseudonymiser(None).event(seen) is seen
        (True, True)
        """
        alias = self(event.user_id)
        return event if alias == event.user_id else event.model_copy(update={"user_id": alias})

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymiser({'on' if self._key else 'off'})"
