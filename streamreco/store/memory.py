"""An in-process :class:`~streamreco.store.base.Store`, for unit tests and offline replay.

>>> store = MemoryStore()
>>> store.zincr("pop", {"a": 1.0, "b": 3.0})
>>> store.zincr("pop", {"a": 5.0}, cap=1)
>>> store.ztop(["pop"], 10)
[[('a', 6.0)]]
"""

from __future__ import annotations

import heapq
from operator import itemgetter
from collections.abc import Iterable, Iterator, Mapping, Sequence

from streamreco.store.base import Store

#: Order of a sorted set, as Redis keeps it: by score, then by member.
RANK = itemgetter(1, 0)

class MemoryStore(Store):
    """Dictionaries in this process; nothing survives the process."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._sets: dict[str, dict[str, float]] = {}

    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._blobs.get(key) for key in keys]

    def put(self, values: Mapping[str, bytes]) -> None:
        self._blobs.update(values)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._blobs.pop(key, None)
            self._sets.pop(key, None)

    def zincr(self, key: str, deltas: Mapping[str, float], cap: int | None = None) -> None:
        scores = self._sets.setdefault(key, {})
        for member, delta in deltas.items():
            scores[member] = scores.get(member, 0.0) + delta
        if cap is not None and len(scores) > cap:  # drop the lowest, as ZREMRANGEBYRANK does
            for member, _ in heapq.nsmallest(len(scores) - cap, scores.items(), key=RANK):
                del scores[member]

    def ztop(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        sets = self._sets
        return [sorted(sets.get(key, {}).items(), key=RANK, reverse=True)[:n] for key in keys]

    def zscores(self, key: str, members: Sequence[str]) -> list[float | None]:
        scores = self._sets.get(key, {})
        return [scores.get(member) for member in members]

    def zremove(self, key: str, members: Iterable[str]) -> None:
        scores = self._sets.get(key)
        if scores is not None:
            for member in members:
                scores.pop(member, None)

    def scan(self, prefix: str) -> Iterator[str]:
        keys = set(self._blobs) | set(self._sets)
        return iter(sorted(key for key in keys if key.startswith(prefix)))
