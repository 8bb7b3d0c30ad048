"""A write-behind overlay that turns a batch of events into one write to the store.

The worker wraps its store in a :class:`BatchStore` per batch: reads go to the
inner store once per key and are remembered; writes are kept here and read back
by later events of the same batch (so event *k+1* sees what event *k* learned);
:meth:`BatchStore.flush` sends all of them to the inner store inside one
``pipeline()`` -- a single Redis transaction.

>>> from streamreco.store.memory import MemoryStore
>>> inner = MemoryStore()
>>> batch = BatchStore(inner)
>>> batch.zincr("pop", {"a": 2.0})
>>> batch.ztop(["pop"], 5), inner.ztop(["pop"], 5)
([[('a', 2.0)]], [[]])
>>> batch.flush()
>>> inner.ztop(["pop"], 5)
[[('a', 2.0)]]
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence

from streamreco.store.base import Store

_DELETED = object()


class BatchStore(Store):
    """Reads through to ``inner`` with this batch's own writes applied; writes on :meth:`flush`."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self._reset()

    def _reset(self) -> None:
        self._blobs: dict[str, bytes | None] = {}  # read or written this batch
        self._dirty: dict[str, object] = {}  # key -> bytes, or _DELETED
        self._deltas: defaultdict[str, dict[str, float]] = defaultdict(dict)
        self._caps: dict[str, int] = {}
        self._removed: defaultdict[str, set[str]] = defaultdict(set)
        self._base_scores: dict[tuple[str, str], float | None] = {}
        self._base_tops: dict[str, tuple[int, list[tuple[str, float]]]] = {}

    # --- blobs ---------------------------------------------------------------------
    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        missing = [key for key in dict.fromkeys(keys) if key not in self._blobs]
        if missing:
            self._blobs.update(zip(missing, self.inner.get(missing), strict=True))
        return [self._blobs[key] for key in keys]

    def put(self, values: Mapping[str, bytes]) -> None:
        self._blobs.update(values)
        self._dirty.update(values)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._blobs[key] = None
            self._dirty[key] = _DELETED
            self._deltas.pop(key, None)
            self._base_tops[key] = (1 << 62, [])
            self._removed.pop(key, None)

    # --- scored sets ---------------------------------------------------------------------
    def zincr(self, key: str, deltas: Mapping[str, float], cap: int | None = None) -> None:
        pending = self._deltas[key]
        for member, delta in deltas.items():
            pending[member] = pending.get(member, 0.0) + delta
        if cap is not None:
            self._caps[key] = cap

    def _base_top(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        missing = [k for k in dict.fromkeys(keys) if self._base_tops.get(k, (0, None))[0] < n]
        if missing:
            for key, rows in zip(missing, self.inner.ztop(missing, n), strict=True):
                self._base_tops[key] = (n, rows)
        return [self._base_tops[key][1] for key in keys]

    def _base(self, key: str, members: Sequence[str]) -> list[float | None]:
        missing = [m for m in dict.fromkeys(members) if (key, m) not in self._base_scores]
        if missing:
            for member, score in zip(missing, self.inner.zscores(key, missing), strict=True):
                self._base_scores[key, member] = score
        return [self._base_scores[key, m] for m in members]

    def ztop(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        result = []
        for key, base_rows in zip(keys, self._base_top(keys, n), strict=True):
            pending = self._deltas.get(key)
            removed = self._removed.get(key)
            if not pending and not removed:
                result.append(base_rows[:n])
                continue
            removed = removed or set()
            merged = {m: score for m, score in base_rows if m not in removed}
            if pending:  # a removed member restarts from zero: flush removes before adding
                outside = [m for m in pending if m not in merged and m not in removed]
                for member, score in zip(outside, self._base(key, outside), strict=True):
                    if score is not None:
                        merged[member] = score
                for member, delta in pending.items():
                    merged[member] = merged.get(member, 0.0) + delta
            result.append(heapq.nlargest(n, merged.items(), key=lambda e: (e[1], e[0])))
        return result

    def zscores(self, key: str, members: Sequence[str]) -> list[float | None]:
        pending = self._deltas.get(key, {})
        removed = self._removed.get(key, ())
        scores: list[float | None] = []
        for member, base in zip(members, self._base(key, members), strict=True):
            if member in removed:
                scores.append(pending.get(member))
            elif member in pending:
                scores.append((base or 0.0) + pending[member])
            else:
                scores.append(base)
        return scores

    def zremove(self, key: str, members: Iterable[str]) -> None:
        pending = self._deltas.get(key, {})
        for member in members:
            pending.pop(member, None)
            self._removed[key].add(member)

    def scan(self, prefix: str) -> Iterator[str]:
        return self.inner.scan(prefix)

    def ping(self) -> bool:
        return self.inner.ping()

    def discard(self) -> None:
        """Forget this batch's reads and writes (after a failure, before a retry)."""
        self._reset()

    # --- the one write ----------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything this batch changed to the inner store, then start afresh."""
        with self.inner.pipeline():
            deleted = [key for key, value in self._dirty.items() if value is _DELETED]
            self.inner.delete(deleted)
            self.inner.put({k: v for k, v in self._dirty.items() if v is not _DELETED})
            for key, members in self._removed.items():
                self.inner.zremove(key, members)
            for key, deltas in self._deltas.items():
                self.inner.zincr(key, deltas, self._caps.get(key))
        self._reset()
