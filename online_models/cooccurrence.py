"""Item-to-item co-occurrence over the user's recency-weighted history, with transitions.

On each interaction with item ``i``, every item ``j`` among the user's last
``window`` items gets ``co[j][i]`` and ``co[i][j]`` raised by the interaction's
weight times ``recency ** position`` (the most recent item counts most), and
the first-order transition ``last -> i`` is counted. A user's candidates are
the neighbours of their recent items, each scored by the recency-weighted sum
of co-occurrence divided by ``count(candidate) ** alpha`` (so that
blockbusters, which co-occur with everything, do not win by default), plus the
transitions from the user's last item.

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
        Weight of first-order transitions from the user's last item.
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
        if recent:
            state.zincr(keys.transitions(recent[0]), {item: 1.0}, cap=self.neighbours)
        state.zincr(keys.counts(), {item: 1.0})

    def candidates(self, profile: Profile, k: int) -> dict[str, Candidate]:
        recent = profile.recent_items(self.window)
        if not recent:
            return {}
        keys, state = self.keys, self.state
        rows = state.ztop(
            [keys.neighbours(j) for j in recent] + [keys.transitions(recent[0])], self.fanout
        )
        totals: defaultdict[str, float] = defaultdict(float)
        best_source: dict[str, tuple[float, str]] = {}
        for position, (source, row) in enumerate(zip(recent, rows, strict=False)):
            recency = self.recency**position
            for item, strength in row:
                contribution = recency * strength
                totals[item] += contribution
                if contribution > best_source.get(item, (0.0, ""))[0]:
                    best_source[item] = (contribution, source)
        (last_count,) = state.zscores(keys.counts(), [recent[0]])
        for item, count in rows[-1]:
            totals[item] += self.transition_weight * count / (last_count or 1.0)
            best_source.setdefault(item, (0.0, recent[0]))
        items = list(totals)
        counts = state.zscores(keys.counts(), items)
        scores = {
            item: totals[item] / (count or 1.0) ** self.alpha
            for item, count in zip(items, counts, strict=True)
        }
        ranked = sorted(scores.items(), key=lambda e: (e[1], e[0]), reverse=True)[:k]
        return {item: Candidate(score, f"similar_to:{best_source[item][1]}") for item, score in ranked}
