"""The one contract every online model follows.

A model learns from one interaction at a time (:meth:`Recommender.learn_one`)
and proposes scored candidates for a user (:meth:`Recommender.candidates`);
:meth:`Recommender.predict_one` scores one (user, item) pair. Business rules
and the top-n cut are written once, in :mod:`online_models.ranking`; a model
may leave out early what those rules will drop (see ``exclude``), so that one
round of candidates fills a list.

Models are River estimators: the constructor stores hyperparameters under their
own names (so ``clone()`` and ``repr`` work); learned state lives in the
:class:`~streamreco.store.Store` the model is given, created on first use, so
that several workers share it.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Collection, Sequence
from typing import NamedTuple

from river import base

from online_models.profile import Profile
from streamreco.keys import Keys
from streamreco.store import MemoryStore, Store


class Candidate(NamedTuple):
    """A proposed item with its score and the reason a user may read (a tuple: made by the thousand)."""

    score: float
    reason: str


class Recommender(base.Estimator):
    """Base of streamreco's online recommenders.

    Parameters
    ----------
    store
        Where the learned state lives; a fresh in-memory store if ``None``.
    namespace
        Prefix of the store keys.
    """

    #: Whether :meth:`score` rates items beyond this model's own candidates; a model
    #: that only knows its candidates scores everything else 0.
    scores_any_item = True
    #: Whether :meth:`candidates` always leaves out its ``exclude`` and returns ``k`` of the
    #: other items when it has them: a caller then asks for only a few more than it shows.
    leaves_out_excluded = False

    def __init__(self, store: Store | None = None, namespace: str = "sr") -> None:
        self.store = store
        self.namespace = namespace

    @property
    def state(self) -> Store:
        if self.store is None:
            self.store = MemoryStore()
        return self.store

    @functools.cached_property
    def keys(self) -> Keys:
        return Keys(self.namespace)

    @abc.abstractmethod
    def learn_one(self, profile: Profile, item: str, weight: float, ts: float) -> None:
        """Learn that ``profile``'s user interacted with ``item``.

        Called before the interaction is added to ``profile``.
        """

    @abc.abstractmethod
    def candidates(self, profile: Profile, k: int, exclude: Collection[str] = ()) -> dict[str, Candidate]:
        """Up to ``k`` scored items for the user, best first.

        ``exclude`` holds items the caller will rule out (what the user has seen or
        bought). A model may ignore it; one that leaves them out returns ``k`` of
        the other items when it has them, so that fewer than ``k`` always means
        it has no more to propose.
        """

    def candidates_many(
        self, profiles: Sequence[Profile], ks: Sequence[int], excluded: Sequence[Collection[str]]
    ) -> list[dict[str, Candidate]]:
        """:meth:`candidates` ``(profile, k, exclude)`` of each of ``profiles`` with its ``k`` in
        ``ks`` and its ``exclude`` in ``excluded``; a model may share reads between them."""
        return [self.candidates(p, k, e) for p, k, e in zip(profiles, ks, excluded, strict=True)]

    def prefetch(self, profiles: Sequence[Profile], k: int) -> None:
        """Read ahead what :meth:`candidates` ``(profile, k)`` will read for each of ``profiles``.

        Purely an optimisation for a store that batches (many users' reads in one
        round trip instead of several per user): results never depend on it.
        The default reads nothing.
        """

    def prefetch_scores(self, profiles: Sequence[Profile], items: Collection[str]) -> None:
        """Read ahead what :meth:`score` of ``items`` will read for each of ``profiles``."""

    def predict_one(self, profile: Profile, item: str) -> float:
        """The model's score of ``item`` for the user (0 when it has no opinion)."""
        return self.score(profile, [item])[0]

    def score(self, profile: Profile, items: list[str]) -> list[float]:
        """Scores of arbitrary items; by default, their candidate scores."""
        found = self.candidates(profile, max(200, len(items)))
        return [found[item].score if item in found else 0.0 for item in items]


class BatchedRecommender(Recommender):
    """A recommender that proposes for many users at once (:meth:`candidates_many`); one user is a batch of one."""

    def candidates(self, profile: Profile, k: int, exclude: Collection[str] = ()) -> dict[str, Candidate]:
        (found,) = self.candidates_many([profile], [k], [exclude])
        return found

    @abc.abstractmethod
    def candidates_many(
        self, profiles: Sequence[Profile], ks: Sequence[int], excluded: Sequence[Collection[str]]
    ) -> list[dict[str, Candidate]]:
        """See :meth:`Recommender.candidates_many`."""
