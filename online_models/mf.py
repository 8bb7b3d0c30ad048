"""Online matrix factorisation for implicit feedback, learned by BPR-style SGD.

Each interaction is one stochastic gradient step that pushes the user's score
of the item above the score of a *negative*: an item from the list the user
was last shown and did not pick (or, before any list was shown, no negative:
a plain positive step). User factors live in the user's profile, item factors
in the store, so every worker reads and updates the same vectors.

>>> from online_models.profile import Profile
>>> model = MatrixFactorisation(n_factors=8, learning_rate=0.1)
>>> user = Profile("u")
>>> user.shown = ["b"]
>>> before = model.predict_one(user, "a") - model.predict_one(user, "b")
>>> for _ in range(20):
...     model.learn_one(user, "a", weight=1.0, ts=0.0)
>>> model.predict_one(user, "a") - model.predict_one(user, "b") > before
True
"""

from __future__ import annotations

import zlib
from collections.abc import Collection

import numpy as np

from online_models.base import Candidate, Recommender
from online_models.profile import Profile
from streamreco.store import Store


class MatrixFactorisation(Recommender):
    """Latent factors for users and items, one SGD step per interaction.

    Parameters
    ----------
    n_factors
        Length of the latent vectors.
    learning_rate
        SGD step size.
    regularisation
        L2 penalty on the vectors.
    init_scale
        Standard deviation of the initial vectors.
    pool
        How many of the most interacted-with items it scores to propose candidates.
    """

    def __init__(
        self,
        n_factors: int = 32,
        learning_rate: float = 0.05,
        regularisation: float = 0.01,
        init_scale: float = 0.1,
        pool: int = 200,
        store: Store | None = None,
        namespace: str = "sr",
    ) -> None:
        super().__init__(store, namespace)
        self.n_factors = n_factors
        self.learning_rate = learning_rate
        self.regularisation = regularisation
        self.init_scale = init_scale
        self.pool = pool

    def _initial(self, name: str) -> np.ndarray:
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        return (rng.standard_normal(self.n_factors) * self.init_scale).astype(np.float32)

    def _user(self, profile: Profile) -> np.ndarray:
        if profile.factors is None or len(profile.factors) != self.n_factors:
            profile.factors = self._initial(f"u:{profile.user_id}")
        return profile.factors

    def _items(self, items: list[str]) -> np.ndarray:
        blobs = self.state.get([self.keys.item_vector(i) for i in items])
        vectors = np.empty((len(items), self.n_factors), np.float32)
        for row, (item, blob) in enumerate(zip(items, blobs, strict=True)):
            found = blob is not None and len(blob) == 4 * self.n_factors
            vectors[row] = np.frombuffer(blob, np.float32) if found else self._initial(f"i:{item}")
        return vectors

    def learn_one(self, profile: Profile, item: str, weight: float, ts: float) -> None:
        user = self._user(profile)
        negative = next((j for j in profile.shown if j != item and j not in profile.seen), None)
        names = [item] if negative is None else [item, negative]
        vectors = self._items(names)
        positive = vectors[0]
        direction = positive - vectors[1] if negative is not None else positive
        margin = float(user @ direction)
        # d/dx log sigmoid(x) = sigmoid(-x); the plain positive step aims at margin 1
        gradient = 1.0 / (1.0 + np.exp(margin)) if negative is not None else 1.0 - margin
        step = self.learning_rate * min(weight, 5.0) * gradient
        reg = self.learning_rate * self.regularisation
        new_user = user + step * direction - reg * user
        vectors[0] = positive + step * user - reg * positive
        if negative is not None:
            vectors[1] = vectors[1] - step * user - reg * vectors[1]
        profile.factors = new_user.astype(np.float32)
        self.state.zincr(self.keys.factor_items(), {item: 1.0})
        self.state.put(
            {self.keys.item_vector(n): v.astype(np.float32).tobytes() for n, v in zip(names, vectors, strict=True)}
        )

    def score(self, profile: Profile, items: list[str]) -> list[float]:
        if profile.factors is None:  # a newcomer: no opinion yet
            return [0.0] * len(items)
        return (self._items(items) @ self._user(profile)).tolist()

    def candidates(self, profile: Profile, k: int, exclude: Collection[str] = ()) -> dict[str, Candidate]:
        (rows,) = self.state.ztop([self.keys.factor_items()], self.pool)
        rows = [(item, count) for item, count in rows if item not in exclude]
        if profile.factors is None:  # a newcomer: the most interacted-with items
            return {item: Candidate(count, "popular") for item, count in rows[:k]}
        items = [item for item, _ in rows]
        ranked = sorted(zip(items, self.score(profile, items), strict=True), key=lambda e: e[1], reverse=True)
        return {item: Candidate(score, "for_you") for item, score in ranked[:k]}
