"""Item-to-item co-occurrence over the user's recency-weighted history.

On each interaction with item ``i``, every item ``j`` among the user's last
``window`` items gets ``co[j][i]`` and ``co[i][j]`` raised by the interaction's
weight times ``recency ** position`` (the most recent item counts most). A
user's candidates are the neighbours of their ``sources`` most recent items: each row
is damped by ``count(candidate) ** alpha`` (so that blockbusters, which
co-occur with everything, do not win by default), divided by its own maximum
(``row_norm``: every history item gets one equal vote, however popular it is),
weighted by ``source_recency ** steps`` of its source, and summed; a step back
is a ``moment`` (one second by default) of the user's history, so that the
items of one burst (a page of ratings, a few clicks in a second) weigh the
same. Optional
first-order transitions (``transition_weight``) add the items that followed
the user's last items, each as a share of that item's count.

Per call: one ``ztop`` over the recent items' rows and one ``zscores`` of
their neighbours' counts, whatever the catalogue size.

>>> from online_models.profile import Profile
>>> model = ItemCooccurrence()
>>> alice = Profile("alice")
>>> for item in ["tent", "stove", "lamp"]:
...     model.learn_one(alice, item, weight=1.0, ts=0.0)
...     alice.add(item, ts=0.0, weight=1.0)
>>> bob = Profile("bob"); bob.add("tent", ts=1.0, weight=1.0)
>>> list(model.candidates(bob, k=3))
['stove', 'lamp']
>>> model.candidates(bob, k=3)["stove"].reason
'similar_to:tent'
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Collection, Sequence

import numpy as np

from online_models.base import Candidate, Recommender
from online_models.profile import Profile
from streamreco.store import Store


class ItemCooccurrence(Recommender):
    """Item-to-item collaborative filtering learned one interaction at a time.

    Parameters
    ----------
    window
        How many of the user's most recent items an interaction pairs with.
    sources
        How many of the user's most recent items propose candidates (their
        neighbours are read); ``None``: ``window``.
    recency
        Weight multiplier per step back in the history (1.0: all equal).
    alpha
        Popularity normalisation: candidate scores are divided by ``count ** alpha``.
    row_norm
        Divide each history item's (damped) neighbour row by its maximum before summing.
    transition_weight
        Weight of transitions from the user's last items (0: none learned or read).
    transition_steps
        How many of the user's last items count a transition to the next item
        (1: first-order transitions only).
    transition_decay
        Weight multiplier per step between the two items of a transition.
    neighbours
        Neighbours kept per item (the row is trimmed to the strongest).
    fanout
        Neighbours read per history item when proposing candidates.
    source_recency
        Weight multiplier per step back of a history item when proposing
        candidates (``None``: ``recency``).
    moment
        Seconds of ``ts`` that count as one step back when proposing candidates:
        the items of one moment (a burst of ratings, a page of clicks) weigh the
        same. ``None``: every distinct item is a step.
    """

    scores_any_item = False  # only the neighbours of the user's recent items

    def __init__(
        self,
        window: int = 20,
        sources: int | None = 16,
        recency: float = 0.9,
        alpha: float = 0.4,
        row_norm: bool = True,
        transition_weight: float = 0.0,
        transition_steps: int = 1,
        transition_decay: float = 0.5,
        neighbours: int = 200,
        fanout: int = 100,
        source_recency: float | None = 0.7,
        moment: float | None = 1.0,
        store: Store | None = None,
        namespace: str = "sr",
    ) -> None:
        super().__init__(store, namespace)
        if sources is not None and sources < 1:
            raise ValueError("sources: at least one recent item proposes candidates (None: window)")
        self.window = window
        self.sources = sources
        self.recency = recency
        self.alpha = alpha
        self.row_norm = row_norm
        self.transition_weight = transition_weight
        self.transition_steps = transition_steps
        self.transition_decay = transition_decay
        self.neighbours = neighbours
        self.fanout = fanout
        self.source_recency = source_recency
        self.moment = moment

    def learn_one(self, profile: Profile, item: str, weight: float, ts: float) -> None:
        keys, state = self.keys, self.state
        recent = [j for j in profile.recent_items(self.window + 1) if j != item][: self.window]
        row: dict[str, float] = {}
        for position, other in enumerate(recent):
            pair_weight = weight * self.recency**position
            row[other] = pair_weight
            state.zincr(keys.neighbours(other), {item: pair_weight}, cap=self.neighbours)
        state.zincr(keys.neighbours(item), row, cap=self.neighbours)
        following = recent[: self.transition_steps] if self.transition_weight else []
        for position, previous in enumerate(following):
            step = {item: self.transition_decay**position}
            state.zincr(keys.transitions(previous), step, cap=self.neighbours)
        state.zincr(keys.counts(), {item: 1.0})

    def _sources(self, profile: Profile) -> tuple[list[str], list[int], list[str]]:
        """The user's recent items whose neighbours are read (newest first), how many steps
        back each is, and the items whose transitions are read: one walk of the history."""
        sources = self.window if self.sources is None else self.sources
        n = max(sources, self.transition_steps)
        if self.moment is None:  # every distinct item is a step
            recent = profile.recent_items(n)
            steps = list(range(len(recent)))
        else:
            moments = profile.recent_moments(n, self.moment)
            recent, steps = [item for item, _ in moments], [step for _, step in moments]
        following = recent[: self.transition_steps] if self.transition_weight else []
        return recent[:sources], steps[:sources], following

    def _rows(self, similar: list[str], following: list[str]) -> list[str]:
        keys = self.keys
        return [keys.neighbours(j) for j in similar] + [keys.transitions(j) for j in following]

    def prefetch(self, profiles: Sequence[Profile], k: int) -> None:
        keys, state = self.keys, self.state
        rows, followed, newcomers = {}, set(), False
        for profile in profiles:
            similar, _, following = self._sources(profile)
            rows.update(dict.fromkeys(self._rows(similar, following)))
            followed.update(following)
            newcomers = newcomers or not similar
        neighbours = itertools.chain.from_iterable(state.ztop(list(rows), self.fanout))
        found = set(map(operator.itemgetter(0), neighbours))
        if newcomers:
            state.ztop([keys.counts()], k)
        state.zscores(keys.counts(), list(found | followed))

    def candidates(self, profile: Profile, k: int, exclude: Collection[str] = ()) -> dict[str, Candidate]:
        if k <= 0:
            return {}
        keys, state = self.keys, self.state
        similar, steps, following = self._sources(profile)
        if not similar:  # a newcomer: the most interacted-with items (it has seen nothing)
            (rows,) = state.ztop([keys.counts()], k)
            return {item: Candidate(count, "popular") for item, count in rows}
        sources = similar + following
        rows = state.ztop(self._rows(similar, following), self.fanout)
        # every (source row, neighbour) pair as flat arrays: one numpy pass, no per-pair Python
        pairs = list(itertools.chain.from_iterable(rows))
        if not pairs:
            return {}
        names = list(map(operator.itemgetter(0), pairs))
        pool = list(dict.fromkeys(names))  # distinct neighbours, first (most recent) source first
        index = dict(zip(pool, itertools.count()))
        where = np.fromiter(map(index.__getitem__, names), np.intp, len(names))
        row_of = np.repeat(np.arange(len(rows)), list(map(len, rows)))
        values = np.fromiter(map(operator.itemgetter(1), pairs), float, len(pairs))
        counts = state.zscores(keys.counts(), pool + following)
        counts = np.array(counts, dtype=float)  # an unknown (None: nan) or zero count counts as 1
        counts[np.isnan(counts) | (counts == 0)] = 1.0
        recency = self.recency if self.source_recency is None else self.source_recency
        weights = np.concatenate(
            (recency ** np.array(steps, dtype=float), self.recency ** np.arange(len(following)))
        )
        weights[len(similar) :] *= self.transition_weight / counts[len(pool) :]
        similarity = row_of < len(similar)
        values[similarity] *= counts[where[similarity]] ** -self.alpha
        if self.row_norm:  # each history item gets one vote: its row divided by its maximum
            starts = np.flatnonzero(np.concatenate(([True], row_of[1:] != row_of[:-1])))
            peaks = np.maximum.reduceat(values, starts)
            weights[row_of[starts[similarity[starts]]]] /= peaks[similarity[starts]]
        totals = np.bincount(where, weights=values * weights[row_of], minlength=len(pool))
        if ruled_out := [index[item] for item in exclude if item in index]:  # one look-up per excluded item
            totals[ruled_out] = -np.inf
            k = min(k, len(pool) - len(ruled_out))
            if k <= 0:
                return {}
        best = _best(totals, k)
        # the most recent source listing each neighbour: where it first appears in the pool
        running = np.maximum.accumulate(where)
        origin = row_of[np.flatnonzero(np.concatenate(([True], running[1:] != running[:-1])))]
        return {
            pool[at]: Candidate(float(totals[at]), f"similar_to:{sources[source]}")
            for at, source in zip(best.tolist(), origin[best].tolist(), strict=True)
        }


def _best(totals: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the ``k`` highest ``totals``, highest first, ties by index (a stable sort's first ``k``).

    >>> _best(np.array([1.0, 3.0, 2.0, 3.0, 0.5]), 3).tolist()
    [1, 3, 2]
    """
    among = np.arange(len(totals))
    if len(totals) > k:
        threshold = np.partition(totals, len(totals) - k)[len(totals) - k]
        among = np.flatnonzero(totals >= threshold)
    return among[np.argsort(-totals[among], kind="stable")][:k]
