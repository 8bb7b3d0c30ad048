"""Time-decayed popularity: the cold-start fallback.

Scores use *forward decay*: an interaction at time ``t`` adds
``weight * 2 ** ((t - start) / half_life)`` to its item, so that older
interactions count half as much per half-life without ever rewriting old
scores. To keep numbers finite, time is cut into periods of 256 half-lives,
each with its own counter; the previous period is read scaled down.

>>> from online_models.profile import Profile
>>> model = Popularity(half_life=None)
>>> for item in ["a", "b", "b"]:
...     model.learn_one(Profile("u"), item, weight=1.0, ts=0.0)
>>> {item: c.score for item, c in model.candidates(Profile("v"), k=2).items()}
{'b': 2.0, 'a': 1.0}
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Collection, Sequence

from online_models.base import BatchedRecommender, Candidate
from online_models.profile import Profile
from streamreco.store import Store

PERIOD_HALF_LIVES = 256


class Popularity(BatchedRecommender):
    """Most interacted-with items, optionally with exponential time decay.

    Parameters
    ----------
    half_life
        Seconds after which an interaction counts half; ``None`` counts all equally.
    """

    leaves_out_excluded = True

    def __init__(
        self, half_life: float | None = 7 * 86400.0, store: Store | None = None, namespace: str = "sr"
    ) -> None:
        super().__init__(store, namespace)
        self.half_life = half_life

    def _period(self, ts: float) -> int | None:
        if self.half_life is None:
            return None
        return math.floor(ts / (self.half_life * PERIOD_HALF_LIVES))

    def learn_one(self, profile: Profile, item: str, weight: float, ts: float) -> None:
        period = self._period(ts)
        boost = 1.0
        if period is not None:
            start = period * self.half_life * PERIOD_HALF_LIVES
            boost = 2.0 ** ((ts - start) / self.half_life)
        self.state.zincr(self.keys.popularity(period), {item: weight * boost})
        if period is not None and (not profile.n_events or period > self._period(profile.last_ts)):
            self.state.put({self.keys.popularity_clock(): str(period).encode()})

    def _clock(self, profile: Profile) -> int:
        """The decay period to read: the user's latest, or for a newcomer the latest learned."""
        period = self._period(profile.last_ts)
        if profile.n_events and period is not None:
            return period
        (stored,) = self.state.get([self.keys.popularity_clock()])
        return max(period or 0, int(stored) if stored else 0)

    def _keys(self, profiles: Sequence[Profile]) -> list[str]:
        """The counters that scoring ``profiles`` reads: their periods' and the ones before."""
        if self.half_life is None:
            return [self.keys.popularity(None)]
        periods = dict.fromkeys(self._clock(p) for p in profiles)
        return [self.keys.popularity(q) for p in periods for q in (p, p - 1)]

    def prefetch(self, profiles: Sequence[Profile], k: int) -> None:
        self.state.ztop(self._keys(profiles), k)

    def prefetch_scores(self, profiles: Sequence[Profile], items: Collection[str]) -> None:
        items = list(items)
        self.state.zscores_many({key: items for key in self._keys(profiles)})

    def candidates_many(
        self, profiles: Sequence[Profile], ks: Sequence[int], excluded: Sequence[Collection[str]]
    ) -> list[dict[str, Candidate]]:
        """Each user's ``k`` most popular items not in their ``exclude``, from one top per decay period."""
        periods = [None if self.half_life is None else self._clock(p) for p in profiles]
        longest: dict[int | None, int] = {}  # per period, the top that serves every user of it
        for period, k, exclude in zip(periods, ks, excluded, strict=True):
            longest[period] = max(longest.get(period, 0), k + len(exclude))
        tops = {  # made once per period, shared by its users' answers
            period: [(item, Candidate(score, "popular")) for item, score in self._top(period, n)]
            for period, n in longest.items()
        }
        found = []
        for period, k, exclude in zip(periods, ks, excluded, strict=True):
            allowed = (entry for entry in tops[period] if entry[0] not in exclude) if exclude else tops[period]
            found.append(dict(itertools.islice(allowed, k)))
        return found

    def _top(self, period: int | None, n: int) -> list[tuple[str, float]]:
        """The ``n`` most popular items of ``period`` (the one before counts, scaled down)."""
        if period is None:
            (rows,) = self.state.ztop([self.keys.popularity(None)], n)
            return rows
        current, previous = self.state.ztop([self.keys.popularity(period), self.keys.popularity(period - 1)], n)
        scores = dict(current)
        for item, score in previous:
            scores[item] = scores.get(item, 0.0) + score * 2.0**-PERIOD_HALF_LIVES
        return heapq.nlargest(n, scores.items(), key=lambda e: (e[1], e[0]))

    def score(self, profile: Profile, items: list[str]) -> list[float]:
        if self.half_life is None:
            return [s or 0.0 for s in self.state.zscores(self.keys.popularity(None), items)]
        period = self._clock(profile)
        current, previous = self.state.zscores_many(
            {self.keys.popularity(period): items, self.keys.popularity(period - 1): items}
        )
        scale = 2.0**-PERIOD_HALF_LIVES
        return [(c or 0.0) + (p or 0.0) * scale for c, p in zip(current, previous, strict=True)]
