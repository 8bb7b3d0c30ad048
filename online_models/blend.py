"""A weighted blend of several recommenders, chosen by configuration (`model=blend`).

Each source proposes candidates; sources that can score any item (popularity,
factors) also score the others' candidates. Scores are min-max normalised per
source and summed with the blend weights; an item's reason is that of the
source that contributed most to it (where no source tells the pool's items
apart, that of the first source that proposed it).

>>> from online_models.profile import Profile
>>> from online_models.popularity import Popularity
>>> from online_models.cooccurrence import ItemCooccurrence
>>> from streamreco.store import MemoryStore
>>> store = MemoryStore()
>>> blend = Blend([ItemCooccurrence(store=store), Popularity(half_life=None, store=store)], [1.0, 0.1])
>>> alice = Profile("alice")
>>> for item in ["tent", "stove", "tent2", "stove"]:
...     blend.learn_one(alice, item, weight=1.0, ts=0.0)
...     alice.add(item, ts=0.0, weight=1.0)
>>> newcomer = Profile("newcomer")  # alice began with the tent
>>> [(i, c.reason) for i, c in blend.candidates(newcomer, k=2).items()]
[('tent', 'popular_with_new_users'), ('stove', 'popular')]
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from online_models.base import BatchedRecommender, Candidate, Recommender
from online_models.profile import Profile


class Blend(BatchedRecommender):
    """Weighted sum of normalised scores of ``models``.

    Parameters
    ----------
    models
        The sources; each learns from every interaction.
    weights
        One weight per source.
    """

    def __init__(self, models: list[Recommender], weights: list[float]) -> None:
        if len(models) != len(weights):
            raise ValueError("one weight per model")
        super().__init__(models[0].store if models else None, models[0].namespace if models else "sr")
        self.models = models
        self.weights = weights

    def learn_one(self, profile: Profile, item: str, weight: float, ts: float) -> None:
        for model in self.models:
            model.learn_one(profile, item, weight, ts)

    def prefetch(self, profiles: Sequence[Profile], k: int) -> None:
        for model in self.models:
            model.prefetch(profiles, k)

    def prefetch_scores(self, profiles: Sequence[Profile], items: Collection[str]) -> None:
        for model in self.models:
            if model.scores_any_item:
                model.prefetch_scores(profiles, items)

    def candidates_many(
        self, profiles: Sequence[Profile], ks: Sequence[int], excluded: Sequence[Collection[str]]
    ) -> list[dict[str, Candidate]]:
        """Each source's candidates for every user, then the scores of all users' pools read at once.

        A user's pool is what any source proposed, less ``excluded``: scores are
        normalised over the items the user can be shown.
        """
        by_model = [model.candidates_many(profiles, ks, excluded) for model in self.models]
        by_user = list(zip(*by_model, strict=True))
        pools = [
            [item for item in dict.fromkeys(item for found in proposals for item in found) if item not in exclude]
            for proposals, exclude in zip(by_user, excluded, strict=True)
        ]
        if len(profiles) > 1:  # one round trip for all users' pools (for one user, nothing to share)
            self.prefetch_scores(profiles, set().union(*pools))
        return [
            self._blend(profile, proposals, pool, k)
            for profile, proposals, pool, k in zip(profiles, by_user, pools, ks, strict=True)
        ]

    def _blend(
        self, profile: Profile, proposals: Sequence[dict[str, Candidate]], pool: list[str], k: int
    ) -> dict[str, Candidate]:
        if not pool or k <= 0:
            return {}
        totals = np.zeros(len(pool))
        strongest = np.full(len(pool), -1.0)  # the largest contribution of a source proposing the item
        reason_of = np.full(len(pool), -1)  # which source that is (-1: none)
        sources = zip(self.models, self.weights, proposals, strict=True)
        for source, (model, weight, found) in enumerate(sources):
            if model.scores_any_item:
                scores = np.array(model.score(profile, pool), dtype=float)
            else:
                scores = np.array([found[item].score if item in found else 0.0 for item in pool])
            low, high = scores.min(), scores.max()
            if high <= low:
                continue
            contribution = weight * (scores - low) / (high - low)
            totals += contribution
            proposed = np.fromiter(map(found.__contains__, pool), bool, len(pool))
            stronger = proposed & (contribution > strongest)
            strongest[stronger] = contribution[stronger]
            reason_of[stronger] = source
        among = np.arange(len(pool))
        if len(pool) > k:  # only the items that can be among the top k are sorted, in Python, for ties
            among = np.flatnonzero(totals >= np.partition(totals, len(pool) - k)[len(pool) - k])
        ranked = sorted(((float(totals[at]), pool[at], at) for at in among.tolist()), reverse=True)[:k]
        reasons = reason_of.tolist()
        return {
            item: Candidate(score, proposals[reasons[at]][item].reason if reasons[at] >= 0 else _first_reason(proposals, item))
            for score, item, at in ranked
        }


def _first_reason(proposals: Sequence[dict[str, Candidate]], item: str) -> str:
    """The reason of the first source that proposed ``item``: for a pool no source told apart (all scores equal).

    >>> _first_reason([{"a": Candidate(1.0, "popular")}, {"b": Candidate(1.0, "for_you")}], "b")
    'for_you'
    """
    return next(found[item].reason for found in proposals if item in found)
