"""The hindsight ceiling: a model frozen after learning the other users' whole streams."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bench import ceiling
from streamreco.evaluation import replay_offline
from streamreco.events import ShopEvent


def views(pairs: list[tuple[str, str]]) -> list[ShopEvent]:
    return [
        ShopEvent(event_id=str(k), type="view", user_id=u, item_id=i, ts=float(k)) for k, (u, i) in enumerate(pairs)
    ]


def test_hindsight_knows_the_other_users_future() -> None:
    # b goes x -> y before anyone else; a does the same later
    events = views([("b", "x"), ("b", "y"), ("a", "x"), ("a", "y")])
    past = replay_offline("cooccurrence", events).total
    with ThreadPoolExecutor(1) as pool:
        known = ceiling.hindsight("cooccurrence", events, folds=2, pool=pool).total
    # as it streams, b is shown nothing useful (nobody went x -> y yet); a is shown x first, then y
    assert (past.events, past.hits) == (4, 2)
    # knowing a's stream, b is shown x as what new users begin with, then y after x
    assert (known.events, known.hits) == (4, 4)


def test_hindsight_never_knows_the_users_own_future() -> None:
    events = views([("a", "x"), ("a", "y"), ("a", "z"), ("b", "w")])
    with ThreadPoolExecutor(1) as pool:
        known = ceiling.hindsight("cooccurrence", events, folds=2, pool=pool)
    # a's group learns only b's stream: a is shown w, a newcomer's and the popular item, never y or z
    assert (known.total.events, known.total.hits) == (4, 0)
    assert [s.events for s in known.segments] == [2, 2]  # halves of the stream, whatever the group
