"""Item-to-item co-occurrence over the user's recency-weighted history, with transitions.

On each interaction with item ``i``, every item ``j`` among the user's last
``window`` items gets ``co[j][i]`` and ``co[i][j]`` raised by the interaction's
weight times ``recency ** position`` (the most recent item counts most), and
the directed transitions ``j -> i`` from the user's last ``transition_steps``
items are counted, ``transition_decay ** position`` each. A user's candidates
are the neighbours of their recent items, each scored by the recency-weighted
sum of co-occurrence divided by ``count(candidate) ** alpha`` (so that
blockbusters, which co-occur with everything, do not win by default), plus the
transitions from the user's last items, each as a share of that item's count.

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

from collections import defaultdict

from online_models.base import Candidate, Recommender
from online_models.profile import Profile
from streamreco.store import Store


class ItemCooccurrence(Recommender):
    """Item-to-item collaborative filtering learned one interaction at a time.

    Parameters
    ----------
    window
        How many of the user's most recent items an interaction pairs with.
    recency
        Weight multiplier per step back in the history (1.0: all equal).
    alpha
        Popularity normalisation: candidate scores are divided by ``count ** alpha``.
    transition_weight
        Weight of transitions from the user's last items.
    transition_steps
        How many of the user's last items count a transition to the next item
        (1: first-order transitions only).
    transition_decay
        Weight multiplier per step between the two items of a transition.
    neighbours
        Neighbours kept per item (the row is trimmed to the strongest).
    fanout
        Neighbours read per history item when proposing candidates.
    """

    def __init__(
        self,
        window: int = 20,
        recency: float = 0.9,
        alpha: float = 0.5,
        transition_weight: float = 1.0,
        transition_steps: int = 1,
        transition_decay: float = 0.5,
        neighbours: int = 200,
        fanout: int = 50,
        store: Store | None = None,
        namespace: str = "sr",
    ) -> None:
        super().__init__(store, namespace)
        self.window = window
        self.recency = recency
        self.alpha = alpha
        self.transition_weight = transition_weight
        self.transition_steps = transition_steps
        self.transition_decay = transition_decay
        self.neighbours = neighbours
        self.fanout = fanout

    def learn_one(self, profile: Profile, item: str, weight: float, ts: float) -> None:
        keys, state = self.keys, self.state
        recent = [j for j in profile.recent_items(self.window + 1) if j != item][: self.window]
        row: dict[str, float] = {}
        for position, other in enumerate(recent):
            pair_weight = weight * self.recency**position
            row[other] = pair_weight
            state.zincr(keys.neighbours(other), {item: pair_weight}, cap=self.neighbours)
        state.zincr(keys.neighbours(item), row, cap=self.neighbours)
        for position, previous in enumerate(recent[: self.transition_steps]):
            step = {item: self.transition_decay**position}
            state.zincr(keys.transitions(previous), step, cap=self.neighbours)
        state.zincr(keys.counts(), {item: 1.0})

    def candidates(self, profile: Profile, k: int) -> dict[str, Candidate]:
        recent = profile.recent_items(max(self.window, self.transition_steps))
        keys, state = self.keys, self.state
        if not recent:  # a newcomer: the most interacted-with items
            (rows,) = state.ztop([keys.counts()], k)
            return {item: Candidate(count, "popular") for item, count in rows}
        similar, following = recent[: self.window], recent[: self.transition_steps]
        rows = state.ztop(
            [keys.neighbours(j) for j in similar] + [keys.transitions(j) for j in following],
            self.fanout,
        )
        totals: defaultdict[str, float] = defaultdict(float)
        best_source: dict[str, tuple[float, str]] = {}

        def add(source: str, row: list[tuple[str, float]], weight: float) -> None:
            for item, strength in row:
                contribution = weight * strength
                totals[item] += contribution
                if contribution > best_source.get(item, (-1.0, ""))[0]:
                    best_source[item] = (contribution, source)

        for position, (source, row) in enumerate(zip(similar, rows, strict=False)):
            add(source, row, self.recency**position)
        source_counts = state.zscores(keys.counts(), following)
        for position, (source, row, count) in enumerate(
            zip(following, rows[len(similar) :], source_counts, strict=True)
        ):
            add(source, row, self.transition_weight * self.recency**position / (count or 1.0))
        items = list(totals)
        counts = state.zscores(keys.counts(), items)
        scores = {
            item: totals[item] / (count or 1.0) ** self.alpha
            for item, count in zip(items, counts, strict=True)
        }
        ranked = sorted(scores.items(), key=lambda e: (e[1], e[0]), reverse=True)[:k]
        return {item: Candidate(score, f"similar_to:{best_source[item][1]}") for item, score in ranked}
