"""A user's profile: what streamreco keeps per user, as one compact blob.

>>> p = Profile("u1")
>>> p.add("i1", ts=10.0, weight=1.0)
>>> p.add("i2", ts=11.0, weight=5.0, purchased=True)
>>> q = Profile.decode("u1", p.encode())
>>> q.recent_items(), sorted(q.purchased), q.n_events
(['i2', 'i1'], ['i2'], 2)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import hashlib
import math

import msgpack
import numpy as np

#: How many of a user's latest event ids are remembered to drop duplicates
#: (a producer's retry); redeliveries by Kafka are caught by offset instead.
RECENT_EVENT_IDS = 16

#: Bytes kept of each event id's digest: a false duplicate among 16 ids has odds of
#: about 16 in 2**48, and a profile stays small.
EVENT_DIGEST_BYTES = 6


def _event_digests(stored: bytes | list[int]) -> list[bytes]:
    """The digests of a stored profile (8-byte integers in profiles written by 0.1.0)."""
    if isinstance(stored, list):
        return [n.to_bytes(8, "big")[:EVENT_DIGEST_BYTES] for n in stored]
    return [stored[at : at + EVENT_DIGEST_BYTES] for at in range(0, len(stored), EVENT_DIGEST_BYTES)]


@dataclass
class Profile:
    """Recent history (newest last), purchases, seen items, latent factors, last list shown."""

    user_id: str
    history: list[tuple[str, float, float]] = field(default_factory=list)  # (item, ts, weight)
    seen: set[str] = field(default_factory=set)
    purchased: set[str] = field(default_factory=set)
    factors: np.ndarray | None = None
    shown: list[str] = field(default_factory=list)
    n_events: int = 0
    last_ts: float = 0.0
    recent_events: list[bytes] = field(default_factory=list)  # digests of the last event ids
    history_size: int = 50

    def is_duplicate(self, event_id: str) -> bool:
        """Whether ``event_id`` is among the user's last recorded events; records it if not.

        >>> p = Profile("u")
        >>> p.is_duplicate("e1"), p.is_duplicate("e2"), p.is_duplicate("e1")
        (False, False, True)
        """
        digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()[:EVENT_DIGEST_BYTES]
        if digest in self.recent_events:
            return True
        self.recent_events.append(digest)
        del self.recent_events[:-RECENT_EVENT_IDS]
        return False

    def add(self, item: str, ts: float, weight: float, purchased: bool = False) -> None:
        """Record an interaction, keeping the ``history_size`` most recent."""
        self.history.append((item, ts, weight))
        if len(self.history) > self.history_size:
            del self.history[: len(self.history) - self.history_size]
        self.seen.add(item)
        if purchased:
            self.purchased.add(item)
        self.n_events += 1
        self.last_ts = max(self.last_ts, ts)

    def recent_items(self, n: int | None = None) -> list[str]:
        """Distinct items of the history, most recent first."""
        items: dict[str, None] = {}
        for item, _, _ in reversed(self.history):
            items.setdefault(item)
            if n is not None and len(items) >= n:
                break
        return list(items)

    def recent_moments(self, n: int, moment: float) -> list[tuple[str, int]]:
        """The ``n`` most recent distinct items, each with how many moments back it was last seen.

        A moment is ``moment`` seconds of ``ts``: the events of one moment are one
        step back (0 for the latest), however many they are.

        >>> p = Profile("u")
        >>> for item, ts in [("a", 1.0), ("b", 5.2), ("c", 5.7), ("b", 9.0)]:
        ...     p.add(item, ts, weight=1.0)
        >>> p.recent_moments(3, moment=1.0)
        [('b', 0), ('c', 1), ('a', 2)]
        """
        items: dict[str, int] = {}
        steps, latest = -1, None
        for item, ts, _ in reversed(self.history):
            if (at := ts // moment) != latest:
                steps, latest = steps + 1, at
            if items.setdefault(item, steps) == steps and len(items) >= n:
                break
        return list(items.items())

    def encode(self) -> bytes:
        """The profile as one compact blob (format 2: see :func:`_compact`)."""
        items = list(dict.fromkeys(item for item, _, _ in self.history))
        at = {item: index for index, item in enumerate(items)}
        return msgpack.packb(
            [
                PROFILE_FORMAT,
                items,  # each distinct item of the history once; entries point at them
                [at[item] for item, _, _ in self.history],
                [_compact(ts) for _, ts, _ in self.history],
                [_compact(weight) for _, _, weight in self.history],
                sorted(self.seen.difference(items)),  # the history's items are seen: not stored twice
                sorted(self.purchased),
                None if self.factors is None else self.factors.astype(np.float32).tobytes(),
                self.shown,
                self.n_events,
                _compact(self.last_ts),
                b"".join(self.recent_events),
            ],
            use_bin_type=True,
        )

    @classmethod
    def decode(cls, user_id: str, blob: bytes | None, history_size: int = 50) -> Profile:
        """A profile from :meth:`encode`'s blob (or from 0.1's format), a new one for ``None``."""
        if blob is None:
            return cls(user_id, history_size=history_size)
        fields = msgpack.unpackb(blob)
        if fields[0] == PROFILE_FORMAT:
            _, items, at, times, weights, more_seen, purchased, factors, shown, n_events, last_ts, recent = fields
            history = [(items[i], float(ts), float(w)) for i, ts, w in zip(at, times, weights, strict=True)]
            seen = {*items, *more_seen}
        else:  # 0.1: [history, seen, purchased, factors, shown, n_events, last_ts, recent]
            history, seen, purchased, factors, shown, n_events, last_ts, recent = fields
            history, seen = [tuple(h) for h in history], set(seen)
        return cls(
            user_id,
            history=history,
            seen=seen,
            purchased=set(purchased),
            factors=None if factors is None else np.frombuffer(factors, np.float32).copy(),
            shown=shown,
            n_events=n_events,
            last_ts=float(last_ts),
            recent_events=_event_digests(recent),
            history_size=history_size,
        )


#: The first field of an encoded profile (0.1's profiles start with their history, a list).
PROFILE_FORMAT = 2


def _compact(number: float) -> int | float:
    """A whole number as an int (1 to 5 bytes in msgpack instead of 9), exactly as it was.

    >>> _compact(3.0), _compact(1.5), _compact(1700000000.0), _compact(1e300)
    (3, 1.5, 1700000000, 1e+300)
    """
    number = float(number)
    negative_zero = number == 0 and math.copysign(1.0, number) < 0
    if not number.is_integer() or abs(number) >= 2**63 or negative_zero:
        return number  # a fraction, too large for msgpack's integers, or -0.0
    return int(number)
