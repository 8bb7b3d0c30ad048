"""Baselines for the quality bench, behind the same contract as streamreco's models.

Global popularity and plain co-occurrence are streamreco's own models with the
refinements switched off. River's ``reco.FunkMF`` and ``reco.BiasedMF`` are used
as they come (default hyperparameters, learning each rating's weight, a linear
function of its stars). To rank *every* known item per event without calling
``predict_one`` 1,682 times, the wrapper mirrors River's latent dictionaries
into numpy arrays, refreshing only the item row that one ``learn_one`` changed,
and scores all items with one matrix product. The wrappers keep River's model
in the process: they are for offline measurement only, not for the worker.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from river import reco

from online_models import ItemCooccurrence, Popularity, Recommender
from online_models.base import Candidate
from online_models.profile import Profile
from streamreco.store import Store


def global_popularity(store: Store) -> Recommender:
    """Items by number of interactions so far, no decay."""
    return Popularity(half_life=None, store=store)


def plain_cooccurrence(store: Store) -> Recommender:
    """Sums of co-occurrence with the user's last 20 items: no recency, normalisation or transitions."""
    return ItemCooccurrence(
        window=20, sources=20, recency=1.0, source_recency=None, moment=None, alpha=0.0, row_norm=False,
        transition_weight=0.0, store=store,
    )


class RiverRanker(Recommender):
    """A River rating model (``FunkMF``, ``BiasedMF``) ranking all known items by predicted rating.

    Parameters
    ----------
    model
        The River regressor; it learns ``y`` = the event's learning weight, which
        for a rating is a linear function of its stars (see ``online_models.feedback``).
    """

    def __init__(self, model: reco.base.Ranker, store: Store | None = None) -> None:
        super().__init__(store)
        self.model = model
        self.items: dict[str, int] = {}
        self.matrix = np.zeros((0, model.n_factors))
        self.bias = np.zeros(0)

    def learn_one(self, profile: Profile, item: str, weight: float, ts: float) -> None:
        self.model.learn_one(profile.user_id, item, weight)
        row = self.items.setdefault(item, len(self.items))
        if row == len(self.matrix):
            grow = max(64, len(self.matrix))
            self.matrix = np.vstack([self.matrix, np.zeros((grow, self.model.n_factors))])
            self.bias = np.concatenate([self.bias, np.zeros(grow)])
        self.matrix[row] = self.model.i_latents[item]
        if isinstance(self.model, reco.BiasedMF):
            self.bias[row] = self.model.i_biases[item]

    def candidates(self, profile: Profile, k: int, exclude: Collection[str] = ()) -> dict[str, Candidate]:
        if not self.items:
            return {}
        user = self.model.u_latents[profile.user_id]
        scores = self.matrix[: len(self.items)] @ user + self.bias[: len(self.items)]
        names = list(self.items)
        best = np.argsort(-scores, kind="stable")[:k]
        return {names[b]: Candidate(float(scores[b]), "for_you") for b in best}


def funk_mf(store: Store) -> Recommender:
    return RiverRanker(reco.FunkMF(seed=42), store=store)


def biased_mf(store: Store) -> Recommender:
    return RiverRanker(reco.BiasedMF(seed=42), store=store)


BASELINES = {
    "popularity": global_popularity,
    "cooccurrence-plain": plain_cooccurrence,
    "river-funkmf": funk_mf,
    "river-biasedmf": biased_mf,
}
