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

Per call: the recent items' whole rows (at most ``neighbours`` each) and their
neighbours' counts, read as arrays (:meth:`~streamreco.store.Store.zrows`,
:meth:`~streamreco.store.Store.zscores_of`) and scored in numpy, whatever the
catalogue size. Tied candidates rank by item name, descending, as Redis ranks a sorted set.
Where the neighbours are fewer than asked for (a newcomer has none), the most
interacted-with items fill the list after them.

>>> from online_models.profile import Profile
>>> model = ItemCooccurrence()
>>> alice = Profile("alice")
>>> for item in ["tent", "stove", "lamp"]:
...     model.learn_one(alice, item, weight=1.0, ts=0.0)
...     alice.add(item, ts=0.0, weight=1.0)
>>> model.learn_one(Profile("carol"), "mug", weight=1.0, ts=0.0)
>>> bob = Profile("bob"); bob.add("tent", ts=1.0, weight=1.0)
>>> {item: c.reason for item, c in model.candidates(bob, k=3, exclude=bob.seen).items()}
{'stove': 'similar_to:tent', 'lamp': 'similar_to:tent', 'mug': 'popular'}
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence

import numpy as np

from online_models.base import BatchedRecommender, Candidate
from online_models.profile import Profile
from streamreco.store import Store
from streamreco.store.base import MemberIds


class ItemCooccurrence(BatchedRecommender):
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
        Neighbours kept per item (the row is trimmed to the strongest); all are read.
    source_recency
        Weight multiplier per step back of a history item when proposing
        candidates (``None``: ``recency``).
    moment
        Seconds of ``ts`` that count as one step back when proposing candidates:
        the items of one moment (a burst of ratings, a page of clicks) weigh the
        same. ``None``: every distinct item is a step.
    """

    scores_any_item = False  # only the neighbours of the user's recent items
    leaves_out_excluded = True

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
        self.source_recency = source_recency
        self.moment = moment

    def _first_seen(self, ids: int) -> np.ndarray:
        """Scratch space by member id (``ids`` of them) for finding the distinct neighbours of a list."""
        scratch = getattr(self, "_scratch", None)
        if scratch is None or len(scratch) < ids:
            scratch = self._scratch = np.zeros(max(ids, 1024) * 2, np.intp)
        return scratch

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
        rows, followed, newcomers = {}, [], False
        for profile in profiles:
            similar, _, following = self._sources(profile)
            rows.update(dict.fromkeys(self._rows(similar, following)))
            followed += following
            newcomers = newcomers or not similar
        neighbours = [ids for ids, _ in state.zrows(list(rows))]
        if newcomers:  # what their lists read (see candidates_many)
            state.ztop([keys.counts()], k + max(len(p.seen) for p in profiles))
        state.zscores_of(keys.counts(), np.concatenate([*neighbours, state.members.of(followed)]))

    def candidates_many(
        self, profiles: Sequence[Profile], ks: Sequence[int], excluded: Sequence[Collection[str]]
    ) -> list[dict[str, Candidate]]:
        """Each user's best neighbours; where they are fewer than asked for, the most
        interacted-with items after them, from one read of the counts for every such user."""
        found = []
        for profile, k, exclude in zip(profiles, ks, excluded, strict=True):
            similar, steps, following = self._sources(profile)
            found.append(self._neighbours(similar, steps, following, k, exclude) if similar and k > 0 else {})
        short = [at for at, k in enumerate(ks) if len(found[at]) < k]
        if short:  # the top that holds enough for each, whatever it leaves out
            (rows,) = self.state.ztop([self.keys.counts()], max(ks[at] + len(excluded[at]) for at in short))
            for at in short:
                found[at] = _filled(found[at], rows, ks[at], excluded[at])
        return found

    def _neighbours(
        self, similar: list[str], steps: list[int], following: list[str], k: int, exclude: Collection[str]
    ) -> dict[str, Candidate]:
        """The ``k`` best-scored neighbours of the user's recent items ``similar``."""
        keys, state = self.keys, self.state
        sources = similar + following
        rows = state.zrows(self._rows(similar, following))
        lengths = np.array([len(ids) for ids, _ in rows])
        if not lengths.any():
            return {}
        # every (source row, neighbour) pair as flat arrays: one numpy pass, no per-pair Python
        ids = np.concatenate([ids for ids, _ in rows])
        values = np.concatenate([scores for _, scores in rows])
        row_of = np.repeat(np.arange(len(rows)), lengths)
        starts = np.cumsum(lengths) - lengths  # of each row's pairs
        members = state.members
        followed = members.of(following)  # (ids given before the scratch space is sized)
        # the distinct neighbours in order of first sight, where each pair's neighbour is in
        # them, and where each was first seen (so: by the most recent source)
        first_seen = self._first_seen(len(members))
        positions = np.arange(len(ids))
        for (row_ids, _), start in zip(reversed(rows), reversed(starts.tolist()), strict=True):
            first_seen[row_ids] = positions[start : start + len(row_ids)]  # newest source last: its stay
        first_of = first_seen[ids]
        is_first = first_of == positions
        first = np.flatnonzero(is_first)
        pool_index = np.cumsum(is_first) - 1
        pool, where = ids[first], pool_index[first_of]
        counts = state.zscores_of(keys.counts(), np.concatenate((pool, followed)))
        counts[np.isnan(counts) | (counts == 0)] = 1.0  # an unknown or zero count counts as 1
        recency = self.recency if self.source_recency is None else self.source_recency
        weights = np.concatenate(
            (recency ** np.array(steps, dtype=float), self.recency ** np.arange(len(following)))
        )
        weights[len(similar) :] *= self.transition_weight / counts[len(pool) :]
        similarity = row_of < len(similar)
        values[similarity] *= counts[where[similarity]] ** -self.alpha
        if self.row_norm:  # each history item gets one vote: its row divided by its maximum
            read = np.flatnonzero(lengths)
            peaks = np.maximum.reduceat(values, starts[read])
            weights[read[read < len(similar)]] /= peaks[read < len(similar)]
        totals = np.bincount(where, weights=values * weights[row_of], minlength=len(pool))
        excluded = np.fromiter((at for at in map(members.ids.get, exclude) if at is not None), np.int64)
        seen_at = first_seen[excluded]  # where an excluded item was first seen, if it is a neighbour
        in_pool = seen_at < len(ids)
        in_pool[in_pool] = ids[seen_at[in_pool]] == excluded[in_pool]
        ruled_out = pool_index[seen_at[in_pool]]
        if len(ruled_out):
            totals[ruled_out] = -np.inf
            k = min(k, len(pool) - len(ruled_out))
            if k <= 0:
                return {}
        names = members.names
        best = _best(totals, k, pool, members)
        # the most recent source listing each neighbour: the row of its first pair
        origin = row_of[first[best]].tolist()
        reasons = [f"similar_to:{source}" for source in sources]
        return {
            names[item]: Candidate(total, reasons[source])
            for item, total, source in zip(pool[best].tolist(), totals[best].tolist(), origin, strict=True)
        }


def _filled(
    found: dict[str, Candidate], popular: list[tuple[str, float]], k: int, exclude: Collection[str]
) -> dict[str, Candidate]:
    """``found`` and after them, up to ``k`` in all, the ``popular`` items (highest count first)
    not in ``exclude``, scored by count scaled below the weakest of ``found``.

    >>> found = _filled({"a": Candidate(0.4, "similar_to:x")}, [("b", 9.0), ("c", 3.0), ("d", 1.0)], 3, {"b"})
    >>> {item: (round(c.score, 3), c.reason) for item, c in found.items()}
    {'a': (0.4, 'similar_to:x'), 'c': (0.12, 'popular'), 'd': (0.04, 'popular')}
    """
    if not popular:
        return found
    scale = min(c.score for c in found.values()) / (popular[0][1] + 1.0) if found else 1.0
    fill = ((item, count) for item, count in popular if item not in found and item not in exclude)
    return found | {item: Candidate(count * scale, "popular") for item, count in itertools.islice(fill, k - len(found))}


def _best(totals: np.ndarray, k: int, pool: np.ndarray, members: MemberIds) -> np.ndarray:
    """Indexes of the ``k`` highest ``totals`` (of the members ``pool``), highest first; ties as
    Redis ranks them, by name, descending.

    >>> members = MemberIds()
    >>> _best(np.array([1.0, 3.0, 2.0, 3.0, 0.5]), 3, members.of(list("abcde")), members).tolist()
    [3, 1, 2]
    """
    among = np.arange(len(totals))
    if len(totals) > k:
        among = np.flatnonzero(totals >= np.partition(totals, len(totals) - k)[len(totals) - k])
    keys = members.name_keys()
    order = among[np.lexsort((keys[pool[among]], totals[among]))[::-1]]  # by total, then name key
    ranked, named = totals[order], pool[order]
    # equal keys of distinct names: names longer than the key, whose order only Python can tell
    if ((ranked[1:] == ranked[:-1]) & (keys[named[1:]] == keys[named[:-1]])).any():
        names = members.names
        by_name = sorted(zip(ranked.tolist(), (names[m] for m in named.tolist()), order.tolist()), reverse=True)
        order = np.array([at for _, _, at in by_name], dtype=np.intp)
    return order[:k]
