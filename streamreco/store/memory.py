"""An in-process :class:`~streamreco.store.base.Store`, for unit tests and offline replay.

>>> store = MemoryStore()
>>> store.zincr("pop", {"a": 1.0, "b": 3.0})
>>> store.zincr("pop", {"a": 5.0}, cap=1)
>>> store.ztop(["pop"], 10)
[[('a', 6.0)]]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence

from sortedcontainers import SortedList

from streamreco.store.base import Store

class MemoryStore(Store):
    """Dictionaries in this process; nothing survives the process.

    Each scored set is kept twice, as Redis keeps it: ``member -> score`` for
    point reads, and ``(score, member)`` in order, so that a top-n read or a
    trim to the cap costs O(n + log size), not a sort of the set.
    """

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._sets: dict[str, dict[str, float]] = {}
        self._ranked: dict[str, SortedList] = {}  # (score, member), lowest first

    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._blobs.get(key) for key in keys]

    def put(self, values: Mapping[str, bytes]) -> None:
        self._blobs.update(values)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._blobs.pop(key, None)
            self._sets.pop(key, None)
            self._ranked.pop(key, None)

    def zincr(self, key: str, deltas: Mapping[str, float], cap: int | None = None) -> None:
        if not deltas:  # as Redis: nothing changes, not even the trim to the cap
            return
        scores = self._sets.setdefault(key, {})
        ranked = self._ranked.setdefault(key, SortedList())
        for member, delta in deltas.items():
            old = scores.get(member)
            new = (old or 0.0) + delta
            if math.isnan(new):  # as Redis refuses it: NaN has no place in an order
                raise ValueError(f"{key}: the score of {member!r} would not be a number")
            if old is not None:
                ranked.remove((old, member))
            scores[member] = new
            ranked.add((new, member))
        if cap is not None and (excess := len(ranked) - cap) > 0:  # drop the lowest, as ZREMRANGEBYRANK does
            for _, member in ranked[:excess]:
                del scores[member]
            del ranked[:excess]

    def ztop(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        if n <= 0:
            return [[] for _ in keys]
        top = []
        for key in keys:
            ranked = self._ranked.get(key, ())
            top.append([(member, score) for score, member in itertools.islice(reversed(ranked), n)])
        return top

    def zscores(self, key: str, members: Sequence[str]) -> list[float | None]:
        scores = self._sets.get(key, {})
        return [scores.get(member) for member in members]

    def zremove(self, key: str, members: Iterable[str]) -> None:
        scores = self._sets.get(key)
        if scores is not None:
            for member in members:
                if (score := scores.pop(member, None)) is not None:
                    self._ranked[key].remove((score, member))

    def scan(self, prefix: str) -> Iterator[str]:
        keys = set(self._blobs) | set(self._sets)
        return iter(sorted(key for key in keys if key.startswith(prefix)))
