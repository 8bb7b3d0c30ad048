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

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from streamreco.store.base import Store
from streamreco.store.memory import RANK

_DELETED = object()


class BatchStore(Store):
    """Reads through to ``inner`` with this batch's own writes applied; writes on :meth:`flush`.

    Parameters
    ----------
    inner
        The store written to.
    reusable
        Which scored sets' reads may be kept for the next batches: sets that only
        this kind of batch changes, by increments (the models' item-level
        state). After a flush their cached tops and scores are updated with the
        batch's own increments, so a single writer reads exactly what the inner
        store holds without asking it again.
    reuse_seconds
        How long a reusable read is kept: the bound on how stale another
        writer's increments (another worker's) may be. 0 keeps nothing.
    """

    def __init__(
        self, inner: Store, reusable: Callable[[str], bool] | None = None, reuse_seconds: float = 0.0
    ) -> None:
        self.inner = inner
        self.reusable = reusable if reuse_seconds > 0 else None
        self.reuse_seconds = reuse_seconds
        self._reset()

    def _reset(self) -> None:
        self._blobs: dict[str, bytes | None] = {}  # read or written this batch
        self._dirty: dict[str, object] = {}  # key -> bytes, or _DELETED
        self._deltas: defaultdict[str, dict[str, float]] = defaultdict(dict)
        self._caps: dict[str, int] = {}
        self._removed: defaultdict[str, set[str]] = defaultdict(set)
        self._base_scores: defaultdict[str, dict[str, float | None]] = defaultdict(dict)
        self._base_tops: dict[str, tuple[int, list[tuple[str, float]]]] = {}
        self._merged_tops: dict[str, tuple[int, list[tuple[str, float]]]] = {}  # until the next write
        self._read_at: dict[str, float] = {}  # when each reusable set was first read from inner

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
            self._merged_tops.pop(key, None)
            self._removed.pop(key, None)

    # --- scored sets ---------------------------------------------------------------------
    def zincr(self, key: str, deltas: Mapping[str, float], cap: int | None = None) -> None:
        self._merged_tops.pop(key, None)
        pending = self._deltas[key]
        for member, delta in deltas.items():
            pending[member] = pending.get(member, 0.0) + delta
        if cap is not None:
            self._caps[key] = cap

    def _base_top(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        missing = [k for k in dict.fromkeys(keys) if self._base_tops.get(k, (0, None))[0] < n]
        if missing:
            self._note_read(missing)
            for key, rows in zip(missing, self.inner.ztop(missing, n), strict=True):
                self._base_tops[key] = (n, rows)
        return [self._base_tops[key][1] for key in keys]

    def _base(self, requests: Mapping[str, Sequence[str]]) -> None:
        """Remember the inner store's scores of these members, reading the unknown ones at once."""
        missing = {}
        for key, members in requests.items():
            known = self._base_scores[key]
            if unknown := [m for m in dict.fromkeys(members) if m not in known]:
                if self._dirty.get(key) is _DELETED:
                    known.update(dict.fromkeys(unknown))
                else:
                    missing[key] = unknown
        if missing:
            self._note_read(missing)
            for (key, members), scores in zip(missing.items(), self.inner.zscores_many(missing), strict=True):
                self._base_scores[key].update(zip(members, scores, strict=True))

    def ztop(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        merged_tops = self._merged_tops
        stale = [k for k in dict.fromkeys(keys) if merged_tops.get(k, (0, None))[0] < n]
        if stale:
            merged_tops.update(zip(stale, ((n, rows) for rows in self._merge_tops(stale, n)), strict=True))
        return [merged_tops[key][1][:n] for key in keys]

    def _merge_tops(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        """The top ``n`` of each set: the inner store's with this batch's changes applied."""
        base_tops = self._base_top(keys, n)
        outside: dict[str, list[str]] = {}  # members raised this batch that the read top misses
        for key, base_rows in zip(keys, base_tops, strict=True):
            if pending := self._deltas.get(key):
                listed = {m for m, _ in base_rows}
                removed = self._removed.get(key, ())
                outside[key] = [m for m in pending if m not in listed and m not in removed]
        self._base(outside)
        result = []
        for key, base_rows in zip(keys, base_tops, strict=True):
            pending = self._deltas.get(key)
            removed = self._removed.get(key)
            if not pending and not removed:
                result.append(base_rows[:n])
                continue
            removed = removed or set()
            merged = {m: score for m, score in base_rows if m not in removed}
            for member in outside.get(key, ()):  # a removed member restarts from zero
                if (score := self._base_scores[key][member]) is not None:
                    merged[member] = score
            for member, delta in (pending or {}).items():
                merged[member] = merged.get(member, 0.0) + delta
            result.append(sorted(merged.items(), key=RANK, reverse=True)[:n])
        return result

    def zscores(self, key: str, members: Sequence[str]) -> list[float | None]:
        (scores,) = self.zscores_many({key: members})
        return scores

    def zscores_many(self, requests: Mapping[str, Sequence[str]]) -> list[list[float | None]]:
        self._base(requests)
        return [self._current(key, members) for key, members in requests.items()]

    def _current(self, key: str, members: Iterable[str]) -> list[float | None]:
        """Scores of ``members`` (whose base is known) with this batch's changes applied."""
        base = self._base_scores[key]
        pending = self._deltas.get(key)
        removed = self._removed.get(key)
        if not pending and not removed:
            return [base[member] for member in members]
        pending, removed = pending or {}, removed or ()
        scores: list[float | None] = []
        for member in members:
            if member in removed:  # a removed member restarts from zero
                scores.append(pending.get(member))
            elif member in pending:
                scores.append((base[member] or 0.0) + pending[member])
            else:
                scores.append(base[member])
        return scores

    def zremove(self, key: str, members: Iterable[str]) -> None:
        self._merged_tops.pop(key, None)
        pending = self._deltas.get(key, {})
        for member in members:
            pending.pop(member, None)
            self._removed[key].add(member)

    def scan(self, prefix: str) -> Iterator[str]:
        return self.inner.scan(prefix)

    def ping(self) -> bool:
        return self.inner.ping()

    def discard(self) -> None:
        """Forget this batch's reads and writes, and every kept read (after a failure)."""
        self._reset()

    # --- reads kept across batches ----------------------------------------------------------
    def _note_read(self, keys: Iterable[str]) -> None:
        if self.reusable is not None:
            now = time.monotonic()
            for key in keys:
                if key not in self._read_at and self.reusable(key):
                    self._read_at[key] = now

    def _kept_reads(self) -> tuple[dict, dict, dict]:
        """The reusable reads, as they are after this batch's writes (those still fresh and exact)."""
        tops, scores, read_at = {}, defaultdict(dict), {}
        oldest = time.monotonic() - self.reuse_seconds
        for key, at in self._read_at.items():
            if at < oldest or self._dirty.get(key) is _DELETED:
                continue
            read_at[key] = at
            changed = key in self._deltas or key in self._removed
            if key in self._base_tops:
                top = self._merged_tops.get(key) if changed else self._base_tops[key]
                # a changed top not merged this batch is read again, as is one longer than a cap
                if top is not None and top[0] <= self._caps.get(key, top[0]):
                    tops[key] = top
            if key in self._base_scores and key not in self._caps:
                # (a capped set may have dropped members when trimmed: only its top stays exact)
                base = self._base_scores[key]
                scores[key] = dict(zip(base, self._current(key, base), strict=True)) if changed else base
        return tops, scores, read_at

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
        kept = self._kept_reads() if self.reusable is not None else ({}, {}, {})
        self._reset()
        self._base_tops, self._read_at = kept[0], kept[2]
        self._base_scores.update(kept[1])
