"""Scored sets a worker holds as numpy arrays over member ids, changed in place.

:class:`~streamreco.store.BatchStore` keeps the sets it reads through
:meth:`~streamreco.store.Store.zrows` and :meth:`~streamreco.store.Store.zscores_of`
in these, so that a model reads a co-occurrence row or a thousand counts as a
slice or a gather, not member by member. Each holds two scores per member: the
inner store's (``base``) and with this batch's increments (``current``), always
computed as ``base + (sum of the batch's increments)``, the very addition the
inner store makes when the batch is flushed, so that the two stay equal to the
last bit.

>>> row = HeldRow(np.array([0, 1]), np.array([2.0, 1.0]))
>>> row.set(2, 0.5); row.set(1, 3.0)  # member 1: base 1.0 plus 3.0
>>> row.arrays()[0].tolist(), row.arrays()[1].tolist()
([0, 1, 2], [2.0, 4.0, 0.5])
>>> row.commit(cap=2, names=["a", "b", "c"]); row.arrays()[1].tolist()
[2.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class HeldRow:
    """A whole (small, capped) scored set: every member, so an absent one scores nothing.

    Members are kept in no particular order; ``slot`` finds one by id.
    """

    __slots__ = ("base", "current", "dropped", "ids", "size", "slot", "trimmed")

    def __init__(self, ids: np.ndarray, base: np.ndarray, room: int = 8) -> None:
        self.size = len(ids)
        self.ids = np.zeros(self.size + room, np.int64)
        self.base = np.zeros(self.size + room)
        self.ids[: self.size], self.base[: self.size] = ids, base
        self.current = self.base.copy()
        self.slot = dict(zip(self.ids[: self.size].tolist(), range(self.size)))
        # until the next change: the positions a trim to the cap drops, and the arrays it keeps
        self.dropped: np.ndarray | None = None
        self.trimmed: tuple[np.ndarray, np.ndarray] | None = None

    def set(self, member: int, increment: float) -> None:
        """``member``'s score becomes its base plus this batch's total ``increment``."""
        self.dropped = self.trimmed = None
        at = self.slot.get(member)
        if at is None:
            at = self.slot[member] = self.size
            if at == len(self.ids):  # full: a quarter more room
                room = max(8, at // 4)
                self.ids = np.concatenate((self.ids, np.zeros(room, np.int64)))
                self.base = np.concatenate((self.base, np.zeros(room)))
                self.current = np.concatenate((self.current, np.zeros(room)))
            self.ids[at], self.base[at] = member, 0.0  # an absent member starts from zero
            self.size += 1
        self.current[at] = self.base[at] + increment

    def _dropped(self, cap: int, names: Sequence[str]) -> np.ndarray:
        """Positions of the members a trim to ``cap`` drops (a row changes under one cap: its model's)."""
        if self.dropped is None:
            self.dropped = lowest(self.ids[: self.size], self.current[: self.size], self.size - cap, names)
        return self.dropped

    def arrays(self, cap: int | None = None, names: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, current scores)``, read-only; with ``cap``, only the members a trim to it keeps."""
        if cap is not None and self.size > cap:
            if self.trimmed is None:
                keep = np.ones(self.size, bool)
                keep[self._dropped(cap, names)] = False
                self.trimmed = self.ids[: self.size][keep], self.current[: self.size][keep]
            ids, scores = self.trimmed
        else:
            ids, scores = self.ids[: self.size], self.current[: self.size]
        ids.flags.writeable = scores.flags.writeable = False
        return ids, scores

    def commit(self, cap: int | None, names: Sequence[str]) -> None:
        """The batch is written: current scores are the base now, trimmed to ``cap`` as the inner store trims."""
        size = self.size
        self.base[:size] = self.current[:size]
        if cap is not None and size > cap:
            for at in sorted(self._dropped(cap, names).tolist(), reverse=True):
                last = self.size - 1  # the last member fills the hole
                del self.slot[int(self.ids[at])]
                if at != last:
                    self.ids[at], self.base[at], self.current[at] = self.ids[last], self.base[last], self.current[last]
                    self.slot[int(self.ids[at])] = at
                self.size = last
        self.dropped = self.trimmed = None


def lowest(ids: np.ndarray, scores: np.ndarray, count: int, names: Sequence[str]) -> np.ndarray:
    """Positions of the ``count`` lowest-ranked members, as Redis ranks them: by score, then by name.

    >>> lowest(np.array([0, 1, 2, 3]), np.array([1.0, 0.5, 1.0, 2.0]), 2, ["b", "x", "a", "c"]).tolist()
    [1, 2]
    >>> lowest(np.array([0, 1, 2, 3]), np.array([1.0, 0.5, 0.5, 2.0]), 1, ["b", "x", "a", "c"]).tolist()
    [2]
    """
    threshold = scores.min() if count == 1 else np.partition(scores, count - 1)[count - 1]
    below = (scores < threshold).nonzero()[0]
    tied = (scores == threshold).nonzero()[0]
    if len(below) + len(tied) > count:  # only some of the tied go: the first by name
        by_name = sorted(tied.tolist(), key=lambda at: names[ids[at]])[: count - len(below)]
        tied = np.array(by_name, dtype=np.intp)
    return np.concatenate((below, tied)) if len(below) else tied


class HeldScores:
    """Scores of a large scored set, learned member by member, in arrays indexed by member id.

    ``known`` marks the members whose score was read; NaN is an absent member.
    """

    __slots__ = ("base", "current", "known")

    def __init__(self) -> None:
        self.known = np.zeros(0, bool)
        self.base = np.zeros(0)
        self.current = np.zeros(0)

    def grow(self, ids: int) -> None:
        """Make room for ``ids`` members (ids ``0 .. ids - 1``)."""
        if ids > len(self.known):
            room = max(ids, 2 * len(self.known)) - len(self.known)
            self.known = np.concatenate((self.known, np.zeros(room, bool)))
            self.base = np.concatenate((self.base, np.full(room, np.nan)))
            self.current = np.concatenate((self.current, np.full(room, np.nan)))

    def unknown(self, ids: np.ndarray) -> np.ndarray:
        """The distinct ids among ``ids`` whose score is not known."""
        return np.unique(ids[~self.known[ids]])

    def learn(self, ids: np.ndarray, base: np.ndarray) -> None:
        """Know these members' inner scores (NaN: absent), before this batch's changes."""
        self.known[ids] = True
        self.base[ids] = self.current[ids] = base

    def set(self, member: int, increment: float) -> None:
        """A known ``member``'s score becomes its base plus this batch's total ``increment``."""
        base = self.base[member]
        self.current[member] = (0.0 if base != base else base) + increment  # NaN (absent) starts from zero

    def is_known(self, member: int) -> bool:
        return member < len(self.known) and bool(self.known[member])

    def commit(self, members: Sequence[int]) -> None:
        """The batch is written: these changed members' current scores are the base now."""
        self.base[members] = self.current[members]
