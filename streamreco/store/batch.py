"""A write-behind overlay that turns a batch of events into one write to the store.

The worker wraps its store in a :class:`BatchStore` per batch: reads go to the
inner store once per key and are remembered; writes are kept here and read back
by later events of the same batch (so event *k+1* sees what event *k* learned);
:meth:`BatchStore.flush` sends all of them to the inner store inside one
``pipeline()`` -- a single Redis transaction. With ``write_behind`` that write is
sent from a thread of its own while the next batch is computed: that batch reads
what the write changes from memory (blobs, members removed and set again) or,
for the rest, once the write is applied (:meth:`BatchStore.settle`).

>>> from streamreco.store.memory import MemoryStore
>>> inner = MemoryStore()
>>> batch = BatchStore(inner)
>>> batch.zincr("pop", {"a": 2.0})
>>> batch.ztop(["pop"], 5), inner.ztop(["pop"], 5)
([[('a', 2.0)]], [[]])
>>> _ = batch.flush()
>>> inner.ztop(["pop"], 5)
[[('a', 2.0)]]
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import operator
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from streamreco.store.base import WHOLE, Store
from streamreco.store.held import HeldRow, HeldScores

#: Order of a sorted set's ``(member, score)`` entries, as Redis keeps it: by score, then by member.
RANK = operator.itemgetter(1, 0)

_DELETED = object()



def written() -> concurrent.futures.Future:
    """The outcome of a write already applied."""
    done: concurrent.futures.Future = concurrent.futures.Future()
    done.set_result(None)
    return done


@dataclass(frozen=True)
class _InFlight:
    """A batch's write sent but not known to be applied: what it changes (the arguments of
    :meth:`BatchStore._write`)."""

    future: concurrent.futures.Future
    blobs: Mapping[str, object]  # key -> bytes, or _DELETED
    removed: Mapping[str, set[str]]
    deltas: Mapping[str, Mapping[str, float]]
    capped: Mapping[str, int]  # sets trimmed to a cap: any member may go

    @functools.cached_property
    def deleted(self) -> frozenset[str]:
        return frozenset(key for key, value in self.blobs.items() if value is _DELETED)

    @functools.cached_property
    def sets(self) -> frozenset[str]:
        """The scored sets it changes (incremented, members removed, deleted)."""
        return frozenset(self.deleted | self.deltas.keys() | self.removed.keys())

    def scores(self, key: str, members: Sequence[str]) -> list[float | None] | None:
        """The scores of ``members`` once it is applied, where that does not depend on the
        store's: a deleted set's, or members removed (then maybe incremented), unless the set
        is trimmed to a cap; else ``None``."""
        if key in self.capped:
            return None
        removed = self.removed.get(key) or ()
        if key in self.deleted or all(member in removed for member in members):
            pending = self.deltas.get(key) or {}
            return [pending.get(member) for member in members]
        return None

    def changes(self, key: str, members: Iterable[str]) -> bool:
        """Whether it may change the score of any of ``members`` of ``key``."""
        if key not in self.sets:
            return False
        if key in self.deleted or key in self.capped:
            return True
        deltas, removed = self.deltas.get(key) or {}, self.removed.get(key) or ()
        return any(member in deltas or member in removed for member in members)


#: Up to this many members changed in a set's read top are put back in place one by one;
#: more are sorted in with the rest (a Python binary search each costs more than a C sort).
MOVED_ONE_BY_ONE = 16


class BatchStore(Store):
    """Reads through to ``inner`` with this batch's own writes applied; writes on :meth:`flush`.

    Parameters
    ----------
    inner
        The store written to.
    reusable
        Which scored sets' reads may be kept for the next batches: sets that only
        this kind of batch changes, by increments (the models' item-level
        state), or that another writer may change with a delay of up to
        ``reuse_seconds`` showing (the new arrivals). After a flush their cached tops and scores are updated with the
        batch's own increments, so a single writer reads exactly what the inner
        store holds without asking it again.
    reuse_seconds
        How long a reusable read is kept: the bound on how stale another
        writer's increments (another worker's) may be. 0 keeps nothing.
    write_behind
        :meth:`flush` hands the write to a thread of its own and returns at
        once, so that the next batch is computed while the inner store applies
        it (one write in flight at a time, in order). What the next batch reads
        of what it changes comes from memory where this store knows it exactly
        (blobs, members removed), and from the inner store once it is applied
        otherwise; members and keys it does not change are read at once. A
        failed write raises its error on the next read that waits for it, the
        next flush or :meth:`settle`, and from the future :meth:`flush` returned.

    Sets read through :meth:`zrows` and :meth:`zscores_of` are held apart, as
    arrays (:mod:`streamreco.store.held`) that this batch's increments change in
    place, so that the models' numpy code reads them without a per-member step.
    """

    def __init__(
        self, inner: Store, reusable: Callable[[str], bool] | None = None, reuse_seconds: float = 0.0,
        write_behind: bool = False,
    ) -> None:
        self.inner = inner
        self.reusable = reusable if reuse_seconds > 0 else None
        self.reuse_seconds = reuse_seconds
        self._writer = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="streamreco-write") if write_behind else None
        )
        self._in_flight: _InFlight | None = None
        self.discard()

    def discard(self) -> None:
        """Forget this batch's reads and writes, and every kept read (after a failure); a write
        in flight is waited for (its outcome is the future :meth:`flush` returned)."""
        if self._in_flight is not None:
            concurrent.futures.wait([self._in_flight.future])
            self._in_flight = None
        # what is known of scored sets: kept across batches for reusable sets
        self._base_tops: dict[str, tuple[int, list[tuple[str, float]]]] = {}  # the inner store's
        self._known: defaultdict[str, dict[str, float | None]] = defaultdict(dict)  # current scores
        self._read_at: dict[str, float] = {}  # when each kept set was first read, oldest first
        self._rows: dict[str, HeldRow] = {}  # whole sets read by zrows
        self._scores: dict[str, HeldScores] = {}  # sets read by zscores_of
        self._start_batch()

    def _start_batch(self) -> None:
        self._blobs: dict[str, bytes | None] = {}  # read or written this batch
        self._dirty: dict[str, object] = {}  # key -> bytes, or _DELETED
        self._deltas: defaultdict[str, dict[str, float]] = defaultdict(dict)
        self._caps: dict[str, int] = {}
        self._removed: defaultdict[str, set[str]] = defaultdict(set)
        # known members changed this batch: their score before it (None: absent or removed), so that
        # a known score is that plus the batch's summed increment, the inner store's own addition
        self._bases: defaultdict[str, dict[str, float | None]] = defaultdict(dict)
        self._merged_tops: dict[str, tuple[int, list[tuple[str, float]]]] = {}  # until the next write
        self._fresh: set[str] = set()  # sets first known, or known anew, this batch

    # --- blobs ---------------------------------------------------------------------
    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        missing = [key for key in dict.fromkeys(keys) if key not in self._blobs]
        if missing and (in_flight := self._in_flight) is not None:  # as the write in flight leaves them
            for key in missing:
                if (value := in_flight.blobs.get(key, self)) is not self:
                    self._blobs[key] = None if value is _DELETED else value
            missing = [key for key in missing if key not in self._blobs]
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
            self._removed.pop(key, None)
            self._merged_tops.pop(key, None)
            self._base_tops[key] = (1 << 62, [])
            self._known[key] = {}
            self._bases.pop(key, None)
            self._drop_held(key)
            self._fresh.add(key)

    # --- scored sets ---------------------------------------------------------------------
    def zincr(self, key: str, deltas: Mapping[str, float], cap: int | None = None) -> None:
        if not deltas:  # as Redis: nothing changes, not even the trim to the cap
            return
        self._merged_tops.pop(key, None)
        pending = self._deltas[key]
        for member, delta in deltas.items():
            pending[member] = pending.get(member, 0.0) + delta
        if known := self._known.get(key):
            bases = self._bases[key]
            for member in deltas:
                if member in known:
                    base = bases[member] if member in bases else bases.setdefault(member, known[member])
                    known[member] = (base or 0.0) + pending[member]
        if cap is not None:
            self._caps[key] = cap
        row, scores = self._rows.get(key), self._scores.get(key)
        if row is not None or scores is not None:
            ids = self.members.ids
            for member in deltas:
                if row is not None:
                    row.set(self.members.id(member), pending[member])
                if scores is not None and (at := ids.get(member)) is not None and scores.is_known(at):
                    scores.set(at, pending[member])

    def zremove(self, key: str, members: Iterable[str]) -> None:
        self._drop_held(key)  # read again, removals applied, if needed
        self._merged_tops.pop(key, None)
        pending = self._deltas.get(key, {})
        removed = self._removed[key]
        known = self._known.get(key, {})
        bases = self._bases[key]
        for member in members:
            pending.pop(member, None)
            removed.add(member)
            if member in known:
                known[member] = bases[member] = None  # a removed member restarts from zero

    def _base_top(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        missing = [k for k in dict.fromkeys(keys) if self._base_tops.get(k, (0, None))[0] < n]
        if missing:
            self._note_read(missing)
            self._fresh.update(missing)  # kept past this batch only if its reads may be
            self._before_reading(missing)
            for key, rows in zip(missing, self.inner.ztop(missing, n), strict=True):
                self._base_tops[key] = (n, rows)
        return [self._base_tops[key][1] for key in keys]

    def _know(self, requests: Mapping[str, Sequence[str]], outside_top: bool = False) -> None:
        """Learn the current scores of these members, reading the unknown ones at once.

        ``outside_top``: none of the members is in its set's read top, so where that
        top holds the whole set they are not in the inner store, and nothing is read.
        """
        self._fresh.update(requests)
        missing = {}
        for key, members in requests.items():
            known = self._known[key]
            if unknown := list(dict.fromkeys(itertools.filterfalse(known.__contains__, members))):
                if self._dirty.get(key) is _DELETED or (outside_top and self._top_is_whole(key)):
                    self._apply_batch(key, unknown, [None] * len(unknown))
                else:
                    missing[key] = unknown
        if missing and (in_flight := self._in_flight) is not None:  # as the write in flight leaves them
            for key in list(missing):
                if (scores := in_flight.scores(key, missing[key])) is not None:
                    self._apply_batch(key, missing.pop(key), scores)
        if missing:
            self._note_read(missing)
            self._before_reading_members(missing)
            for (key, members), scores in zip(missing.items(), self.inner.zscores_many(missing), strict=True):
                self._apply_batch(key, members, scores)

    def _top_is_whole(self, key: str) -> bool:
        """Whether the top read of ``key`` (kept with this worker's changes) is the whole set."""
        read = self._base_tops.get(key)
        return read is not None and len(read[1]) < read[0]

    def _apply_batch(self, key: str, members: list[str], inner: list[float | None]) -> None:
        """Know ``members``' scores as the inner store's ``inner`` plus this batch's changes."""
        known, bases = self._known[key], self._bases[key]
        known.update(zip(members, inner, strict=True))
        pending, removed = self._deltas.get(key) or {}, self._removed.get(key) or ()
        for member in (m for m in members if m in pending or m in removed):
            if member in removed:  # a removed member restarts from zero
                known[member], bases[member] = pending.get(member), None
            else:
                bases[member] = known[member]
                known[member] = (known[member] or 0.0) + pending[member]

    def ztop(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        if n <= 0:
            return [[] for _ in keys]
        merged_tops = self._merged_tops
        stale = [k for k in dict.fromkeys(keys) if merged_tops.get(k, (0, None))[0] < n]
        if stale:
            merged_tops.update(zip(stale, ((n, rows) for rows in self._merge_tops(stale, n)), strict=True))
        return [merged_tops[key][1][:n] for key in keys]

    def _merge_tops(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        """The top ``n`` of each set: the inner store's with this batch's changes applied.

        Only the members this batch changed move: they are taken out of the read
        top and put back where their new scores rank, the rest keeps its order.
        A set with members removed is read that much further down, so that the
        top still holds ``n`` of the others.
        """
        if cut := [key for key in keys if self._removed.get(key)]:  # read deeper first, in one go
            self._base_top(cut, n + max(len(self._removed[key]) for key in cut))
        base_tops = self._base_top(keys, n)
        listed: dict[str, dict[str, float]] = {}  # changed sets: their changed members in the read top
        outside: dict[str, list[str]] = {}  # members raised this batch that the read top misses
        for key, base_rows in zip(keys, base_tops, strict=True):
            pending, removed = self._deltas.get(key) or {}, self._removed.get(key) or set()
            if pending or removed:
                moved = pending.keys() | removed if removed else pending
                listed[key] = changed = {m: score for m, score in base_rows if m in moved}
                outside[key] = [m for m in pending if m not in changed or m in removed]
        self._know(outside, outside_top=True)
        result = []
        for key, base_rows in zip(keys, base_tops, strict=True):
            if (changed := listed.get(key)) is None:
                result.append(base_rows[:n])
                continue
            removed, known = self._removed.get(key) or (), self._known[key]
            rows = [entry for entry in base_rows if entry[0] not in changed] if changed else list(base_rows)
            moved = [
                (member, changed[member] + delta) if member in changed and member not in removed
                else (member, known[member])
                for member, delta in (self._deltas.get(key) or {}).items()
            ]
            moved = [entry for entry in moved if entry[1] is not None]
            if len(moved) > MOVED_ONE_BY_ONE:  # many (a popularity counter): sorting all at once is cheaper
                rows = sorted(rows + moved, key=RANK, reverse=True)
            else:
                for member, score in moved:
                    _insert_ranked(rows, member, score)
            result.append(rows[:n])
        return result

    def zscores(self, key: str, members: Sequence[str]) -> list[float | None]:
        (scores,) = self.zscores_many({key: members})
        return scores

    def zscores_many(self, requests: Mapping[str, Sequence[str]]) -> list[list[float | None]]:
        answers = {key: self._known_scores(key, members) for key, members in requests.items()}
        if unknown := {key: requests[key] for key, scores in answers.items() if scores is None}:
            self._know(unknown)
            answers.update((key, self._known_scores(key, members)) for key, members in unknown.items())
        self._fresh.update(requests)
        return list(answers.values())

    def _known_scores(self, key: str, members: Sequence[str]) -> list[float | None] | None:
        """The scores of ``members`` if all are known (most reads: one pass), else ``None``."""
        known = self._known.get(key)
        if known is not None:
            with contextlib.suppress(KeyError):
                return list(map(known.__getitem__, members))
        return None

    # --- sets held as arrays ------------------------------------------------------------
    def zrows(self, keys: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        if missing := [key for key in dict.fromkeys(keys) if key not in self._rows]:
            self._fresh.update(missing)
            reading = [key for key in missing if self._dirty.get(key) is not _DELETED]
            self._note_read(reading)
            self._before_reading(reading)
            read = dict(zip(reading, self.inner.ztop(reading, WHOLE), strict=True))
            for key in missing:
                self._rows[key] = self._hold_row(key, read.get(key, []))
        names = self.members.names
        return [self._rows[key].arrays(self._caps.get(key), names) for key in keys]

    def _hold_row(self, key: str, entries: list[tuple[str, float]]) -> HeldRow:
        """The row read as ``entries``, with this batch's changes to it."""
        removed = self._removed.get(key) or ()
        entries = [(member, score) for member, score in entries if member not in removed]
        pending = self._deltas.get(key) or {}
        row = HeldRow(self.members.of([m for m, _ in entries]), [s for _, s in entries], room=len(pending) + 8)
        for member, increment in pending.items():
            row.set(self.members.id(member), increment)
        return row

    def zscores_of(self, key: str, ids: np.ndarray) -> np.ndarray:
        scores = self._scores.get(key)
        if scores is None:
            scores = self._scores[key] = HeldScores()
            self._note_read([key])
        self._fresh.add(key)
        scores.grow(len(self.members))
        if len(unknown := scores.unknown(ids)):
            names = self.members.names_of(unknown.tolist())
            if self._dirty.get(key) is _DELETED:
                read = [None] * len(names)
            else:
                self._before_reading_members({key: names})
                read = self.inner.zscores(key, names)
            removed = self._removed.get(key) or ()
            scores.learn(unknown, np.array([None if m in removed else s for m, s in zip(names, read)], dtype=float))
            pending = self._deltas.get(key) or {}
            for at, member in zip(unknown.tolist(), names, strict=True):
                if member in pending:
                    scores.set(at, pending[member])
        return scores.current[ids]

    def _drop_held(self, key: str) -> None:
        self._rows.pop(key, None)
        self._scores.pop(key, None)

    def scan(self, prefix: str) -> Iterator[str]:
        self.settle()  # the keys the write in flight creates or deletes count
        return self.inner.scan(prefix)

    # --- the write in flight ---------------------------------------------------------------
    def _before_reading(self, sets: Iterable[str]) -> None:
        """Wait for the write in flight before reading these whole scored sets, if it changes any."""
        if (in_flight := self._in_flight) is not None and not in_flight.sets.isdisjoint(sets):
            self.settle()

    def _before_reading_members(self, requests: Mapping[str, Iterable[str]]) -> None:
        """Wait for the write in flight before reading these members' scores, if it may change any."""
        if (in_flight := self._in_flight) is not None and any(
            in_flight.changes(key, members) for key, members in requests.items()
        ):
            self.settle()

    def settle(self) -> None:
        """Wait until the write in flight, if any, is applied; raise its error if it failed
        (what this store kept then assumed it applied: :meth:`discard` it)."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.future.result()

    def ping(self) -> bool:
        return self.inner.ping()

    # --- reads kept across batches ----------------------------------------------------------
    def _note_read(self, keys: Iterable[str]) -> None:
        if self.reusable is not None:
            now = time.monotonic()
            for key in keys:
                if key not in self._read_at and self.reusable(key):
                    self._read_at[key] = now

    def _forget_read(self, key: str) -> None:
        self._read_at.pop(key, None)
        self._base_tops.pop(key, None)
        self._known.pop(key, None)
        self._drop_held(key)

    def _keep_reads(self) -> None:
        """Keep the reusable reads still fresh, as they are after this batch's writes; drop the rest.

        Known scores already include the batch's changes. A changed top is kept
        only if it was merged this batch and is no longer than the set's cap; a
        capped set's scores are dropped (trimming may have removed members). Held
        rows take the batch's scores as their base and are trimmed as the inner
        store trims them; held scores of a capped set are dropped.
        """
        read_at = self._read_at
        oldest = time.monotonic() - self.reuse_seconds
        for key in [k for k, at in itertools.takewhile(lambda e: e[1] < oldest, read_at.items())]:
            self._forget_read(key)
        changed = self._deltas.keys() | self._removed.keys()
        for key in self._fresh | changed:
            if key not in read_at or self._dirty.get(key) is _DELETED:
                self._forget_read(key)
            elif key in changed:
                self._commit_held(key)
                top = self._merged_tops.get(key)
                if key in self._base_tops:
                    if top is not None and top[0] <= self._caps.get(key, top[0]):
                        self._base_tops[key] = top
                    else:
                        del self._base_tops[key]
                if key in self._caps:
                    self._known.pop(key, None)

    def _commit_held(self, key: str) -> None:
        """Held arrays of ``key``, changed by this batch, now as the inner store holds them."""
        if (row := self._rows.get(key)) is not None:
            row.commit(self._caps.get(key), self.members.names)
        if key in self._caps:  # trimming may have removed members whose scores are held
            self._scores.pop(key, None)
        elif (scores := self._scores.get(key)) is not None:
            ids = self.members.ids
            changed = (ids.get(member) for member in self._deltas.get(key) or ())
            scores.commit([at for at in changed if at is not None and scores.is_known(at)])

    # --- the one write ----------------------------------------------------------------------
    def flush(self) -> concurrent.futures.Future:
        """Write everything this batch changed to the inner store, then start afresh.

        Returns the write's outcome: applied already, or (``write_behind``) once
        the inner store has applied it, after the write before it.
        """
        self.settle()  # one write in flight at a time: the one before is applied first
        write = functools.partial(self._write, self._dirty, self._removed, self._deltas, self._caps)
        if self._writer is None:
            write()
            outcome = written()
        else:
            outcome = self._writer.submit(write)
            self._in_flight = _InFlight(outcome, *write.args)
        self._keep_reads()
        self._start_batch()
        return outcome

    def _write(
        self, dirty: Mapping[str, object], removed: Mapping[str, set[str]],
        deltas: Mapping[str, Mapping[str, float]], caps: Mapping[str, int],
    ) -> None:
        with self.inner.pipeline():
            self.inner.delete([key for key, value in dirty.items() if value is _DELETED])
            self.inner.put({key: value for key, value in dirty.items() if value is not _DELETED})
            for key, members in removed.items():
                self.inner.zremove(key, members)
            for key, increments in deltas.items():
                self.inner.zincr(key, increments, caps.get(key))


def _insert_ranked(rows: list[tuple[str, float]], member: str, score: float) -> None:
    """Insert ``(member, score)`` into ``rows``, kept highest first as Redis ranks (ties: member, descending).

    >>> rows = [("b", 3.0), ("a", 2.0)]
    >>> _insert_ranked(rows, "c", 2.0); _insert_ranked(rows, "d", 5.0); rows
    [('d', 5.0), ('b', 3.0), ('c', 2.0), ('a', 2.0)]
    """
    low, high, entry = 0, len(rows), (score, member)
    while low < high:
        middle = (low + high) // 2
        if RANK(rows[middle]) > entry:
            low = middle + 1
        else:
            high = middle
    rows.insert(low, (member, score))
