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

Per call, for all its users at once: the recent items' whole rows (at most
``neighbours`` each) and their neighbours' counts, read as arrays
(:meth:`~streamreco.store.Store.zrows`, :meth:`~streamreco.store.Store.zscores_of`)
and weighed in numpy, then each user's rows summed and the best chosen in
compiled code (numba), whatever the catalogue size. Tied candidates rank by item name, descending, as Redis ranks a sorted set.
Where the neighbours are fewer than asked for, up to ``new_arrivals`` of the
catalogue's newest items (by ``created_at``, reason ``new``) and then the most
interacted-with items fill the list after them. A newcomer (no interaction yet) has none: their list
is what new users most often interacted with first (learned from each user's
first interaction), then the most interacted-with items.

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
>>> {item: c.reason for item, c in model.candidates(Profile("dan"), k=3).items()}  # alice and carol began so
{'tent': 'popular_with_new_users', 'mug': 'popular_with_new_users', 'stove': 'popular'}
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence

import numba
import numpy as np

from online_models.base import BatchedRecommender, Candidate
from online_models.profile import Profile
from streamreco.store import Store


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
    new_arrivals
        At most this many of the catalogue's newest items (catalogue events with
        ``created_at``) in a list that its neighbours leave short, before the most
        interacted-with items: new items get seen before anyone interacts with them.
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
        new_arrivals: int = 2,
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
        self.new_arrivals = new_arrivals

    def _slots(self, ids: int) -> np.ndarray:
        """Scratch space by member id (``ids`` of them), all -1: where each member is in a list's pool."""
        scratch = getattr(self, "_scratch", None)
        if scratch is None or len(scratch) < ids:
            scratch = self._scratch = np.full(max(ids, 1024) * 2, -1, np.int64)
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
        if not profile.n_events:  # the user's first interaction
            state.zincr(keys.first_items(), {item: 1.0})

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

    def candidates_many(
        self, profiles: Sequence[Profile], ks: Sequence[int], excluded: Sequence[Collection[str]]
    ) -> list[dict[str, Candidate]]:
        """Each user's best neighbours; where they are fewer than asked for, a few new arrivals
        and the most interacted-with items after them, from one read of the tops for every such user."""
        found = self._neighbours(profiles, ks, excluded)
        short = [at for at, k in enumerate(ks) if len(found[at]) < k]
        if short:  # one read of the tops, deep enough for each user, whatever it leaves out
            keys = self.keys
            newcomers = [at for at in short if profiles[at].n_events == 0]
            fills = [(keys.first_items(), "popular_with_new_users", newcomers, None)] if newcomers else []
            if self.new_arrivals > 0:
                fills.append((keys.new_items(), "new", short, self.new_arrivals))
            fills.append((keys.counts(), "popular", short, None))
            tops = self.state.ztop([fill[0] for fill in fills], max(ks[at] + len(excluded[at]) for at in short))
            for (_, reason, users, most), rows in zip(fills, tops, strict=True):
                if reason == "new":  # scored by rank, newest first: a created_at is a date, not a count
                    rows = [(item, float(len(rows) - rank)) for rank, (item, _) in enumerate(rows)]
                for at in users:
                    k = ks[at] if most is None else min(ks[at], len(found[at]) + most)
                    found[at] = _filled(found[at], rows, k, excluded[at], reason)
        return found

    def _neighbours(
        self, profiles: Sequence[Profile], ks: Sequence[int], excluded: Sequence[Collection[str]]
    ) -> list[dict[str, Candidate]]:
        """Each user's ``k`` best-scored neighbours of their recent items, all users' rows read
        and weighed at once in numpy, and each user's list summed and chosen in compiled code
        (:func:`_top_neighbours`)."""
        keys, state = self.keys, self.state
        members = state.members
        found: list[dict[str, Candidate]] = [{} for _ in profiles]
        asking, sources, source_rows, steps, followed = [], [], [], [], []
        rows: dict[str, int] = {}  # each distinct row read, by key: its index
        for at, (profile, k) in enumerate(zip(profiles, ks, strict=True)):
            similar, back, following = self._sources(profile)
            if similar and k > 0:
                asking.append(at)
                sources.append(similar + following)
                source_rows += [rows.setdefault(key, len(rows)) for key in self._rows(similar, following)]
                steps.append((back, len(following)))
                followed += following
        similarity_row = np.ones(len(rows), bool)  # a row of neighbours, not of transitions
        similarity_row[[rows[keys.transitions(item)] for item in followed]] = False
        if not asking:
            return found
        # every row's (neighbour, value) pairs as flat arrays; similarity rows damped by popularity
        read = state.zrows(list(rows))
        lengths = np.fromiter((len(ids) for ids, _ in read), np.int64, len(read))
        row_start = np.concatenate(([0], np.cumsum(lengths)))
        pair_ids = np.concatenate([ids for ids, _ in read])
        pair_values = np.concatenate([values for _, values in read])
        counts = state.zscores_of(keys.counts(), np.concatenate((pair_ids, members.of(followed))))
        counts[np.isnan(counts) | (counts == 0)] = 1.0  # an unknown or zero count counts as 1
        similarity = np.repeat(similarity_row, lengths)
        pair_values[similarity] *= counts[: len(pair_ids)][similarity] ** -self.alpha
        # each source's weight: by how far back it is; a similarity row's divided by its peak
        # (each history item gets one vote), a transition's by its item's count
        recency = self.recency if self.source_recency is None else self.source_recency
        weights = np.concatenate([
            np.concatenate((recency ** np.array(back, dtype=float), self.recency ** np.arange(following)))
            for back, following in steps
        ])
        source_rows = np.array(source_rows, np.int64)
        is_transition = ~similarity_row[source_rows]
        weights[is_transition] *= self.transition_weight / counts[len(pair_ids) :]
        if self.row_norm:
            peaks = np.ones(len(rows))
            nonempty = np.flatnonzero(lengths)
            if len(nonempty):
                peaks[nonempty] = np.maximum.reduceat(pair_values, row_start[nonempty])
            weights[~is_transition] /= peaks[source_rows[~is_transition]]
        excluded_ids = [
            np.fromiter((at for at in map(members.ids.get, excluded[user]) if at is not None), np.int64)
            for user in asking
        ]
        asked = np.array([ks[user] for user in asking], np.int64)
        chosen_at, chosen_k, items, totals, origins, tied = _top_neighbours(
            row_start, pair_ids, pair_values,
            np.cumsum([0] + [len(s) for s in sources]), source_rows, weights,
            np.cumsum([0] + [len(e) for e in excluded_ids]), np.concatenate((np.zeros(0, np.int64), *excluded_ids)),
            asked, members.name_keys(), self._slots(len(members)),
        )  # fmt: skip
        names, items, totals, origins = members.names, items.tolist(), totals.tolist(), origins.tolist()
        for user, user_sources, start, end, k, names_needed in zip(
            asking, sources, chosen_at[:-1].tolist(), chosen_at[1:].tolist(), chosen_k.tolist(), tied.tolist(),
            strict=True,
        ):
            chosen = list(zip(totals[start:end], (names[item] for item in items[start:end]), origins[start:end]))
            if names_needed:  # equal keys of distinct names: only Python can tell their order
                chosen.sort(reverse=True)
            found[user] = {
                item: Candidate(total, f"similar_to:{user_sources[origin]}") for total, item, origin in chosen[:k]
            }
        return found


def _filled(
    found: dict[str, Candidate], popular: list[tuple[str, float]], k: int, exclude: Collection[str],
    reason: str = "popular",
) -> dict[str, Candidate]:
    """``found`` and after them, up to ``k`` in all, the ``popular`` items (highest count first)
    not in ``exclude``, scored by count scaled below the weakest of ``found``, for ``reason``.

    >>> found = _filled({"a": Candidate(0.4, "similar_to:x")}, [("b", 9.0), ("c", 3.0), ("d", 1.0)], 3, {"b"})
    >>> {item: (round(c.score, 3), c.reason) for item, c in found.items()}
    {'a': (0.4, 'similar_to:x'), 'c': (0.12, 'popular'), 'd': (0.04, 'popular')}
    """
    if not popular:
        return found
    scale = min(c.score for c in found.values()) / (popular[0][1] + 1.0) if found else 1.0
    fill = ((item, count) for item, count in popular if item not in found and item not in exclude)
    return found | {item: Candidate(count * scale, reason) for item, count in itertools.islice(fill, k - len(found))}


@numba.njit(cache=True, nogil=True)
def _kth_largest(values: np.ndarray, k: int) -> float:
    """The ``k``-th largest of ``values`` (``1 <= k <= len(values)``), from a heap of the ``k`` largest.

    >>> _kth_largest(np.array([3.0, 1.0, 4.0, 1.0, 5.0]), 2)
    4.0
    """
    heap = np.empty(k)  # a min-heap: the k largest so far, their smallest first
    for at in range(len(values)):
        value = values[at]
        if at < k:  # sift up
            child = at
            while child > 0 and heap[(child - 1) // 2] > value:
                heap[child] = heap[(child - 1) // 2]
                child = (child - 1) // 2
            heap[child] = value
        elif value > heap[0]:  # replaces the smallest: sift down
            parent = 0
            while True:
                child = 2 * parent + 1
                if child >= k:
                    break
                if child + 1 < k and heap[child + 1] < heap[child]:
                    child += 1
                if heap[child] >= value:
                    break
                heap[parent] = heap[child]
                parent = child
            heap[parent] = value
    return heap[0]


@numba.njit(cache=True, nogil=True)
def _ranks_below(total: float, key: int, other_total: float, other_key: int) -> bool:
    """Whether ``(total, key)`` ranks below ``(other_total, other_key)``: by total, then by key."""
    return total < other_total or (total == other_total and key < other_key)


@numba.njit(cache=True, nogil=True)
def _top_neighbours(
    row_start: np.ndarray,
    pair_ids: np.ndarray,
    pair_values: np.ndarray,
    source_start: np.ndarray,
    source_rows: np.ndarray,
    source_weights: np.ndarray,
    excluded_start: np.ndarray,
    excluded_ids: np.ndarray,
    ks: np.ndarray,
    name_keys: np.ndarray,
    slots: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each user's ``k`` best neighbours, summed over their sources' rows, highest first.

    User ``u``'s sources are ``source_rows[source_start[u]:source_start[u + 1]]`` (indexes of
    rows: row ``r``'s pairs are ``row_start[r]:row_start[r + 1]`` of ``pair_ids`` and
    ``pair_values``), each weighted by its ``source_weights``; a neighbour's total is the sum,
    in that order, of its pairs' ``value * weight`` (the very sum ``np.bincount`` makes).
    ``excluded_ids`` (by ``excluded_start``, as the sources) are left out; ties rank by
    ``name_keys``, descending, as Redis ranks names. ``slots`` is scratch space by member id,
    all -1, and left so.

    Returns, for the users by ``start`` (``start[u]:start[u + 1]``): the chosen neighbours
    (member ids), their totals and the index among the user's sources of the most recent one
    listing each; with ``k``, how many of them are the list, and ``tied``: the chosen include
    distinct names of equal key and total, which only their names can rank (all those
    ranking at or above the ``k``-th are returned then, for the caller to sort by name).

    >>> start, k, items, totals, origins, tied = _top_neighbours(
    ...     np.array([0, 2, 4]), np.array([1, 2, 2, 3]), np.array([1.0, 4.0, 2.0, 1.0]),
    ...     np.array([0, 2]), np.array([0, 1]), np.array([1.0, 0.5]),
    ...     np.array([0, 1]), np.array([3]), np.array([5]),
    ...     np.arange(4, dtype=np.uint64), np.full(4, -1))
    >>> start.tolist(), k.tolist(), items.tolist(), totals.tolist(), origins.tolist(), tied.tolist()
    ([0, 2], [2], [2, 1], [5.0, 1.0], [0, 0], [False])
    """
    users = len(ks)
    largest = every = 0  # pairs of one user, at most; of all users
    for user in range(users):
        pairs = 0
        for source in range(source_start[user], source_start[user + 1]):
            pairs += row_start[source_rows[source] + 1] - row_start[source_rows[source]]
        largest, every = max(largest, pairs), every + pairs
    pool = np.empty(largest, np.int64)  # one user's distinct neighbours, in order of first sight
    pool_totals = np.empty(largest)
    pool_origins = np.empty(largest, np.int64)
    start = np.zeros(users + 1, np.int64)
    chosen_k = np.zeros(users, np.int64)
    tied = np.zeros(users, np.bool_)
    items = np.empty(every, np.int64)
    totals = np.empty(every)
    origins = np.empty(every, np.int64)
    for user in range(users):
        size = 0
        first_source = source_start[user]
        for source in range(first_source, source_start[user + 1]):
            row, weight = source_rows[source], source_weights[source]
            for pair in range(row_start[row], row_start[row + 1]):
                at = slots[pair_ids[pair]]
                if at < 0:
                    at = slots[pair_ids[pair]] = size
                    pool[at], pool_totals[at], pool_origins[at] = pair_ids[pair], 0.0, source - first_source
                    size += 1
                pool_totals[at] += pair_values[pair] * weight
        k = ks[user]
        for excluded in range(excluded_start[user], excluded_start[user + 1]):
            at = slots[excluded_ids[excluded]]
            if at >= 0:
                pool_totals[at] = -np.inf
        left = 0
        for at in range(size):
            left += pool_totals[at] != -np.inf
        k = min(k, left)
        n = start[user]
        if k > 0:
            threshold = _kth_largest(pool_totals[:size], k)
            ranked = np.flatnonzero(pool_totals[:size] >= threshold)
            # by total, then by name key, highest first: an insertion sort (about k of them)
            for at in range(1, len(ranked)):
                moving = ranked[at]
                total, key = pool_totals[moving], name_keys[pool[moving]]
                to = at
                while to > 0 and _ranks_below(pool_totals[ranked[to - 1]], name_keys[pool[ranked[to - 1]]], total, key):
                    ranked[to] = ranked[to - 1]
                    to -= 1
                ranked[to] = moving
            for at in range(1, len(ranked)):
                a, b = ranked[at - 1], ranked[at]
                if pool_totals[a] == pool_totals[b] and name_keys[pool[a]] == name_keys[pool[b]]:
                    tied[user] = True
            taken = len(ranked) if tied[user] else k
            for at in ranked[:taken]:
                items[n], totals[n], origins[n] = pool[at], pool_totals[at], pool_origins[at]
                n += 1
        chosen_k[user] = max(k, 0)
        start[user + 1] = n
        for at in range(size):
            slots[pool[at]] = -1
    return start, chosen_k, items[: start[users]], totals[: start[users]], origins[: start[users]], tied
