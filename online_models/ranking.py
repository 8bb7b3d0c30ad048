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

import itertools
import math
from collections.abc import Sequence

from online_models.base import Recommender
from online_models.profile import Profile
from streamreco.events import RecommendedItem

#: Candidates asked for per list slot at first (more only when rules exclude too many).
CANDIDATES_PER_SLOT = 3
#: The same for a model that leaves out the excluded items itself: only the rules' other
#: exclusions (out of stock, deleted) remain to be made up for.
CANDIDATES_PER_SLOT_EXCLUDING = 1.5


def prefetch(model: Recommender, profiles: Sequence[Profile], n: int) -> None:
    """Read ahead, for a batching store, what the model will read for ``profiles``' lists."""
    model.prefetch(profiles, _asked(model, n))


def recommend(
    model: Recommender, profile: Profile, n: int, exclude_seen: bool = True
) -> list[RecommendedItem]:
    """The user's top ``n``, best first, with the business rules applied."""
    (items,) = recommend_many(model, [profile], n, exclude_seen)
    return items


def recommend_many(
    model: Recommender, profiles: Sequence[Profile], n: int, exclude_seen: bool = True
) -> list[list[RecommendedItem]]:
    """Each user's top ``n`` (see :func:`recommend`), their stock read in one go.

    Candidates are asked for a few times ``n`` at first, and for more only for
    users who had too many of them ruled out, so a user with a long history
    costs no more than needed; each round asks the model for all its users'
    candidates at once and reads their availability at once.
    """
    excluded = [p.seen if exclude_seen else p.purchased for p in profiles]
    most = [2 * n + len(e) for e in excluded]
    k = [min(_asked(model, n), m) for m in most]
    lists: list[list[RecommendedItem]] = [[] for _ in profiles]
    asking = list(range(len(profiles)))
    while asking:
        proposed = dict(zip(asking, model.candidates_many([profiles[at] for at in asking], [k[at] for at in asking],
                                                          [excluded[at] for at in asking]), strict=True))
        allowed = {
            at: [i for i in found if i not in excluded[at] and i not in profiles[at].purchased]
            for at, found in proposed.items()
        }
        items = list(dict.fromkeys(itertools.chain.from_iterable(allowed.values())))
        since = model.state.zscores(model.keys.unavailable(), items)
        unavailable = {item for item, at in zip(items, since, strict=True) if at is not None}
        still_asking = []
        for at in asking:
            available = [item for item in allowed[at] if item not in unavailable]
            if len(available) >= n or k[at] >= most[at] or len(proposed[at]) < k[at]:
                found = proposed[at]
                lists[at] = [
                    RecommendedItem(item_id=item, score=round(found[item].score, 6), reason=found[item].reason)
                    for item in available[:n]
                ]
            else:
                k[at] = min(4 * k[at], most[at])
                still_asking.append(at)
        asking = still_asking
    return lists


def _asked(model: Recommender, n: int) -> int:
    """How many candidates to ask ``model`` for at first, for a list of ``n``."""
    per_slot = CANDIDATES_PER_SLOT_EXCLUDING if model.leaves_out_excluded else CANDIDATES_PER_SLOT
    return math.ceil(per_slot * n)
