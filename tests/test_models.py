"""One contract suite for every model :func:`online_models.build_model` knows."""

from __future__ import annotations

import pickle
import random
import re

import pytest

from online_models import (
    MODEL_NAMES,
    ItemCooccurrence,
    Profile,
    Recommender,
    build_model,
    recommend,
)
from online_models.base import Candidate
from streamreco.store import BatchStore, MemoryStore

T0 = 1_700_000_000.0  # a real Unix time: decay periods are not period 0
SESSIONS = {  # user -> items, in order; "hot" is the most popular item
    "u1": ["hot", "tent", "stove", "lamp"],
    "u2": ["hot", "tent", "stove", "mat"],
    "u3": ["hot", "tent", "lamp", "mat"],
    "u4": ["hot", "stove", "lamp"],
    "u5": ["hot", "tent"],
}


def trained(name: str) -> tuple[Recommender, dict[str, Profile]]:
    model = build_model(name, MemoryStore(), namespace="test")
    profiles = {user: Profile(user) for user in SESSIONS}
    ts = T0
    for position in range(max(map(len, SESSIONS.values()))):
        for user, items in SESSIONS.items():
            if position < len(items):
                ts += 60.0
                model.learn_one(profiles[user], items[position], 1.0, ts)
                profiles[user].add(items[position], ts, 1.0)
    return model, profiles


def learn_sessions(model: Recommender, sessions: list[list[str]]) -> None:
    """Each session's items, in order, learned from a user of its own, all at ``T0``."""
    for user, items in enumerate(sessions):
        crowd = Profile(f"crowd{user}")
        for item in items:
            model.learn_one(crowd, item, 1.0, T0)
            crowd.add(item, T0, 1.0)


def history(*timed: tuple[str, float]) -> Profile:
    """A user who interacted with each ``(item, ts)``, in order."""
    profile = Profile("me")
    for item, ts in timed:
        profile.add(item, ts, 1.0)
    return profile


def without_addresses(text: str) -> str:
    return re.sub(r" at 0x[0-9a-f]+", "", text)


@pytest.fixture(params=MODEL_NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_learn_then_candidates(name: str) -> None:
    model, profiles = trained(name)
    found = model.candidates(profiles["u5"], k=5)
    assert found and len(found) <= 5
    assert all(isinstance(c, Candidate) for c in found.values())
    scores = [c.score for c in found.values()]
    assert scores == sorted(scores, reverse=True)  # best first
    assert set(found) <= {item for items in SESSIONS.values() for item in items}


def test_an_unseen_user_gets_popular_items(name: str) -> None:
    model, _ = trained(name)
    newcomer = Profile("newcomer")
    items = [r.item_id for r in recommend(model, newcomer, n=3)]
    assert items and items[0] == "hot"


def test_ranking_excludes_seen_purchased_and_unavailable(name: str) -> None:
    model, profiles = trained(name)
    user = profiles["u5"]  # saw hot, tent
    user.add("mat", T0 + 10_000, 5.0, purchased=True)
    model.state.zincr(model.keys.unavailable(), {"stove": T0})
    items = [r.item_id for r in recommend(model, user, n=10)]
    assert items and not {"hot", "tent", "mat", "stove"} & set(items)
    again = [r.item_id for r in recommend(model, user, n=10, exclude_seen=False)]
    assert "mat" not in again and "stove" not in again


def test_pickling_and_clone_keep_hyperparameters(name: str) -> None:
    model, profiles = trained(name)
    copy = pickle.loads(pickle.dumps(model))
    assert copy.candidates(profiles["u1"], k=5) == model.candidates(profiles["u1"], k=5)
    fresh = model.clone()
    assert type(fresh) is type(model)
    assert without_addresses(repr(fresh)) == without_addresses(repr(model))


def test_results_are_deterministic(name: str) -> None:
    first, profiles_a = trained(name)
    second, profiles_b = trained(name)
    for user in SESSIONS:
        a = recommend(first, profiles_a[user], n=5)
        b = recommend(second, profiles_b[user], n=5)
        assert a == b


def test_excluded_items_leave_room_for_others(name: str) -> None:
    """What the caller rules out is not among the k a model returns; k others are."""
    model, profiles = trained(name)
    everything = model.candidates(profiles["u5"], k=10)
    excluded = set(list(everything)[:2])
    found = model.candidates(profiles["u5"], k=2, exclude=excluded)
    assert not excluded & found.keys()
    assert list(found) == [item for item in everything if item not in excluded][:2]


@pytest.mark.parametrize("name", ["cooccurrence", "blend"])
def test_a_list_is_full_when_popular_items_make_up_for_seen_neighbours(name: str) -> None:
    """A reader who has seen a whole clique of items still gets n items: popular ones fill in."""
    from online_models import ranking

    model = build_model(name, MemoryStore())
    clique = [f"c{k}" for k in range(25)]
    learn_sessions(model, [clique] * 3 + [[f"p{k}"] for k in range(12)])
    reader = history(*((item, T0 + k) for k, item in enumerate(clique)))
    (items,) = ranking.recommend_many(model, [reader], n=10)
    assert len(items) == 10 and not {i.item_id for i in items} & reader.seen


def test_one_round_of_candidates_fills_a_list_when_the_pool_allows() -> None:
    """Seen items are left out before the cut, so the model is not asked again for more."""
    from online_models import ranking

    model = ItemCooccurrence(store=MemoryStore())
    seen, unseen = [f"s{k}" for k in range(25)], [f"u{k}" for k in range(15)]
    learn_sessions(model, [seen] * 3 + [seen[-1:] + unseen])  # seen items are each other's best neighbours
    reader = history(*((item, T0 + k) for k, item in enumerate(seen)))
    rounds = []
    original = model.candidates_many
    model.candidates_many = lambda *args: rounds.append(args) or original(*args)
    (items,) = ranking.recommend_many(model, [reader], n=10)
    assert len(items) == 10 and not {i.item_id for i in items} & reader.seen
    assert len(rounds) == 1


@pytest.mark.parametrize(("row_norm", "first"), [(True, "b"), (False, "a")])
def test_row_norm_gives_each_history_item_one_vote(row_norm: bool, first: str) -> None:
    model = ItemCooccurrence(row_norm=row_norm, store=MemoryStore())
    learn_sessions(model, [["hot", "a"]] * 5 + [["niche", "b"]])
    found = model.candidates(history(("hot", T0), ("niche", T0 + 1)), k=2)
    assert list(found) == [first, "a" if first == "b" else "b"]
    assert found["b"].reason == "similar_to:niche"


@pytest.mark.parametrize("moment", [None, 1.0])
def test_items_of_one_moment_weigh_the_same(moment: float | None) -> None:
    """With ``moment``, a burst of events in one second is one step back; without, each item is."""
    model = ItemCooccurrence(recency=0.5, source_recency=None, moment=moment, store=MemoryStore())
    learn_sessions(model, [["old", "x"], ["new", "y"]])
    within_a_second = history(("old", T0), ("middle", T0 + 0.3), ("new", T0 + 0.6))
    found = model.candidates(within_a_second, k=2)
    assert found["y"].score == 1.0
    assert found["x"].score == (1.0 if moment else 0.25)  # two items back at 0.5 per step


def test_source_recency_is_a_weight_per_step_back() -> None:
    """``source_recency`` weighs the history when proposing; ``recency`` stays the learning weight."""
    model = ItemCooccurrence(recency=0.5, source_recency=0.8, moment=1.0, store=MemoryStore())
    learn_sessions(model, [["old", "x"], ["new", "y"]])
    three_moments = history(("old", T0), ("middle", T0 + 1), ("new", T0 + 2))
    found = model.candidates(three_moments, k=2)
    assert (found["y"].score, found["x"].score) == (1.0, pytest.approx(0.64))


def test_prefetch_changes_no_list(name: str) -> None:
    """Reading ahead is only an optimisation: the same lists, with or without it."""
    from online_models.ranking import prefetch
    from streamreco.store import BatchStore

    model, profiles = trained(name)
    newcomer = Profile("new")
    users = [*profiles.values(), newcomer]
    model.learn_one(profiles["u5"], "lamp", 1.0, T0 + 1e4)  # a pending write in the batch below
    lists = []
    for read_ahead in (False, True):
        batch = BatchStore(model.state)
        batched = build_model(name, batch, namespace="test")
        batched.learn_one(profiles["u4"], "mat", 1.0, T0 + 2e4)
        if read_ahead:
            prefetch(batched, users, n=3)
        lists.append([[r.item_id for r in recommend(batched, p, n=3)] for p in users])
    assert lists[0] == lists[1] and any(lists[0])


@pytest.mark.parametrize("reuse_seconds", [0.0, 3600.0])
def test_held_arrays_give_the_lists_of_the_store_itself(reuse_seconds: float) -> None:
    """Rows and counts held by a worker's batch store (trimmed at each flush) score as the store's own do."""
    import random

    from streamreco.store import BatchStore

    rng = random.Random(7)
    plain = ItemCooccurrence(neighbours=6, store=MemoryStore())  # small rows: trimmed all the time
    batch = BatchStore(MemoryStore(), reusable=lambda key: True, reuse_seconds=reuse_seconds)
    held = ItemCooccurrence(neighbours=6, store=batch)
    profiles = {model: {f"u{u}": Profile(f"u{u}") for u in range(15)} for model in (plain, held)}
    for step in range(600):
        user, item = f"u{rng.randrange(15)}", f"i{int(rng.paretovariate(1.2)) % 40}"
        lists = []
        for model in (plain, held):
            profile = profiles[model][user]
            model.learn_one(profile, item, 1.0, T0 + step)
            profile.add(item, T0 + step, 1.0)
            lists.append(model.candidates(profile, 8, profile.seen))
        # the same items, reasons and order; scores to the last bits (rows are summed in another order)
        assert [(i, c.reason) for i, c in lists[0].items()] == [(i, c.reason) for i, c in lists[1].items()]
        assert [c.score for c in lists[0].values()] == pytest.approx([c.score for c in lists[1].values()], rel=1e-12)
        batch.flush()  # a batch of one event: the store trims once per write, as Redis does per flush


def test_tied_neighbours_rank_by_name_descending_as_redis_does() -> None:
    """Names of any length, sharing prefixes and tying on scores, held in no order: the order of a Python sort."""
    rng = random.Random(7)
    for _ in range(200):
        model = ItemCooccurrence(store=BatchStore(MemoryStore()))  # rows held in the order they were written
        names = list({rng.choice(["", "sku-0000", "i", "sku-00001"]) + str(rng.randrange(40)) for _ in range(30)})
        rng.shuffle(names)
        values = [float(rng.randrange(1, 5)) for _ in names]
        model.state.zincr(model.keys.neighbours("source"), dict(zip(names, values, strict=True)))
        profile = Profile("u")
        profile.add("source", ts=0.0, weight=1.0)
        k = rng.randrange(1, len(names) + 1)
        expected = [name for _, name in sorted(zip(values, names, strict=True), reverse=True)][:k]
        assert list(model.candidates(profile, k, exclude={"source"})) == expected


def test_new_arrivals_fill_a_short_list_after_the_neighbours_and_before_the_popular() -> None:
    """The catalogue's newest items (``created_at``) get seen before anyone interacts with them."""
    from streamreco.settings import Settings
    from streams.catalog import CatalogProcessor
    from streams.processor import RawMessage

    store = MemoryStore()
    model = ItemCooccurrence(store=store)
    learn_sessions(model, [["tent", "stove"], ["hot", "mug"], ["hot"], ["hot"]])
    catalog = CatalogProcessor(Settings(), store)

    def upsert(item: str, created_at: float, in_stock: bool = True) -> None:
        value = f'{{"item_id": "{item}", "ts": {created_at}, "created_at": {created_at}, "in_stock": {str(in_stock).lower()}}}'
        catalog.process([RawMessage(key=item.encode(), value=value.encode())])

    for age, item in enumerate(["new1", "new2", "new3"]):
        upsert(item, T0 + age)
    camper = history(("tent", T0))
    shown = [(r.item_id, r.reason) for r in recommend(model, camper, n=5)]
    assert shown == [("stove", "similar_to:tent"), ("new3", "new"), ("new2", "new"), ("hot", "popular"),
                     ("mug", "popular")]
    loner = history(("lonely", T0))  # an item with no neighbours: new arrivals, then the popular
    listed = recommend(model, loner, n=4)
    assert [(r.item_id, r.reason) for r in listed] == [("new3", "new"), ("new2", "new"), ("hot", "popular"),
                                                       ("tent", "popular")]
    assert all(0 < r.score <= 3 for r in listed)  # scored as counts and ranks, not as dates
    upsert("new3", T0 + 2, in_stock=False)  # out of stock: the next newest takes its place
    assert [r.item_id for r in recommend(model, camper, n=3)] == ["stove", "new2", "new1"]
    full = history(("hot", T0))  # "hot" has neighbours enough for a list of one: no room for new arrivals
    assert [r.reason for r in recommend(model, full, n=1)] == ["similar_to:hot"]
    assert [r.reason for r in recommend(ItemCooccurrence(new_arrivals=0, store=store), camper, n=2)] == [
        "similar_to:tent", "popular"]


def test_a_blend_whose_sources_tie_keeps_the_reason_of_the_source_that_proposed_the_item() -> None:
    model = build_model("blend", MemoryStore())
    starter = Profile("starter")
    model.learn_one(starter, "tent", 1.0, T0)
    starter.add("tent", T0, 1.0)
    # a pool of one: every source scores it alike, so none contributes more than another
    assert [(r.item_id, r.reason) for r in recommend(model, Profile("newcomer"), 10)] == [
        ("tent", "popular_with_new_users")]
