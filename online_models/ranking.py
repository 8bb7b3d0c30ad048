"""From a model's candidates to the list a user sees: business rules, written once.

Never recommended: items the user bought, items the user already interacted
with (when ``exclude_seen``), and items that are out of stock or deleted.

>>> from online_models.popularity import Popularity
>>> from online_models.profile import Profile
>>> model = Popularity(half_life=None)
>>> for item in ["a", "b", "b", "c", "c", "c"]:
...     model.learn_one(Profile("x"), item, weight=1.0, ts=0.0)
>>> model.state.zincr(model.keys.unavailable(), {"b": 1.0})   # b is out of stock
>>> buyer = Profile("u"); buyer.add("c", ts=0.0, weight=5.0, purchased=True)
>>> [r.item_id for r in recommend(model, buyer, n=2)]
['a']
"""

from __future__ import annotations

from collections.abc import Sequence

from online_models.base import Recommender
from online_models.profile import Profile
from streamreco.events import RecommendedItem

#: Candidates asked for per list slot at first (more only when rules exclude too many).
CANDIDATES_PER_SLOT = 3


def prefetch(model: Recommender, profiles: Sequence[Profile], n: int) -> None:
    """Read ahead, for a batching store, what :func:`recommend` will read for ``profiles``."""
    proposed = model.prefetch(profiles, CANDIDATES_PER_SLOT * n)
    model.state.zscores(model.keys.unavailable(), list(proposed))


def recommend(
    model: Recommender, profile: Profile, n: int, exclude_seen: bool = True
) -> list[RecommendedItem]:
    """The user's top ``n``, best first, with the business rules applied.

    Candidates are asked for a few times ``n`` at first, and for more only when
    too many of them are ruled out, so a user with a long history costs no more
    than needed.
    """
    excluded = profile.seen if exclude_seen else profile.purchased
    most = 2 * n + len(excluded)
    k = min(CANDIDATES_PER_SLOT * n, most)
    while True:
        proposed = model.candidates(profile, k=k)
        items = [i for i in proposed if i not in excluded and i not in profile.purchased]
        unavailable = model.state.zscores(model.keys.unavailable(), items)
        available = [item for item, since in zip(items, unavailable, strict=True) if since is None]
        if len(available) >= n or k >= most or len(proposed) < k:
            break
        k = min(4 * k, most)
    return [
        RecommendedItem(item_id=item, score=round(proposed[item].score, 6), reason=proposed[item].reason)
        for item in available[:n]
    ]
