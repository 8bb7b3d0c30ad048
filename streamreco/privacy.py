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

PREFIX = "p1:"


class Pseudonymiser:
    """HMAC-SHA256 of the user id under ``key``, shortened to 128 bits (32 hex digits)."""

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None

    def __call__(self, user_id: str) -> str:
        if self._key is None or user_id.startswith(PREFIX):
            return user_id
        digest = hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()[:32]
        return PREFIX + digest

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymiser({'on' if self._key else 'off'})"
