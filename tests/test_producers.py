"""Unit tests of the producers: the synthetic shop, the pacer, the SDK's validation.

Nothing here needs a broker; the integration tests are in ``test_collector.py``.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from itertools import pairwise

import pytest

from producers.replay import Pacer
from producers.sdk import shop_event, with_defaults
from producers.synthetic import ShopSimulation
from streamreco.events import (
    CatalogEvent,
    InvalidEvent,
    ShopEvent,
    dumps,
    parse_catalog_event,
    parse_event,
)


@pytest.fixture(scope="module")
def shop() -> ShopSimulation:
    return ShopSimulation(n_users=1000, n_items=10_000, seed=3)


@pytest.fixture(scope="module")
def catalogue(shop: ShopSimulation) -> list[CatalogEvent]:
    return list(shop.catalogue())


@pytest.fixture(scope="module")
def stream(shop: ShopSimulation) -> list[ShopEvent | CatalogEvent]:
    return list(shop.events(50_000))


@pytest.fixture(scope="module")
def behaviour(stream: list[ShopEvent | CatalogEvent]) -> list[ShopEvent]:
    return [e for e in stream if isinstance(e, ShopEvent)]


# --- the synthetic shop ------------------------------------------------------------
def test_same_seed_same_streams_other_seed_other_streams() -> None:
    def serialised(seed: int) -> list[bytes]:
        sim = ShopSimulation(n_users=200, n_items=500, seed=seed)
        return [dumps(m) for m in [*sim.catalogue(), *sim.events(2000)]]

    assert serialised(11) == serialised(11)
    assert serialised(11) != serialised(12)


def test_every_message_follows_the_contract(catalogue: list, stream: list) -> None:
    for message in catalogue + stream:
        if isinstance(message, CatalogEvent):
            assert parse_catalog_event(dumps(message)) == message
        else:
            assert parse_event(dumps(message)) == message


def test_ids_are_unique_and_time_never_goes_back(
    shop: ShopSimulation, catalogue: list, stream: list, behaviour: list
) -> None:
    assert len({e.item_id for e in catalogue}) == shop.n_items
    assert len({e.event_id for e in behaviour}) == len(behaviour)
    times = [m.ts for m in catalogue + stream]
    assert all(a <= b for a, b in pairwise(times))
    assert times[-1] > shop.start_ts


def test_funnels_run_in_order_within_each_session(behaviour: list[ShopEvent]) -> None:
    needs = {
        "click": "view",
        "add_to_cart": "click",
        "remove_from_cart": "add_to_cart",
        "purchase": "add_to_cart",
        "rating": "purchase",
        "review": "rating",
    }
    seen: defaultdict[tuple[str, str | None], set[str]] = defaultdict(set)
    users: dict[str, str] = {}
    for event in behaviour:
        assert users.setdefault(event.session_id, event.user_id) == event.user_id
        steps = seen[event.session_id, event.item_id]
        if event.type in needs:
            assert needs[event.type] in steps, (event, steps)
        steps.add(event.type)
    types = Counter(e.type for e in behaviour)
    assert (
        types["view"]
        > types["click"]
        > types["add_to_cart"]
        > types["purchase"]
        > types["rating"]
        > 0
    )
    assert types["search"] > 0 and types["review"] > 0


def test_nothing_goes_into_a_cart_while_out_of_stock(catalogue: list, stream: list) -> None:
    in_stock = {e.item_id: e.in_stock for e in catalogue}
    added = 0
    for message in stream:
        if isinstance(message, CatalogEvent):
            in_stock[message.item_id] = message.in_stock
        elif message.type == "add_to_cart":
            assert in_stock[message.item_id], message
            added += 1
    assert added > 0 and not all(in_stock.values())


def test_items_arrive_and_go_out_of_and_back_into_stock(
    catalogue: list, stream: list, behaviour: list
) -> None:
    initial = {e.item_id for e in catalogue}
    changes = [m for m in stream if isinstance(m, CatalogEvent)]
    arrivals = [c for c in changes if c.item_id not in initial]
    assert arrivals and all(c.created_at == c.ts and c.title and c.category for c in arrivals)
    assert {e.item_id for e in behaviour} & {c.item_id for c in arrivals}  # new items get views
    restocks = [c for c in changes if c.item_id in initial]
    went_out = {c.item_id for c in restocks if not c.in_stock}
    assert went_out and any(c.in_stock and c.item_id in went_out for c in restocks)


def test_a_few_items_take_most_of_the_views(catalogue: list, behaviour: list) -> None:
    views = Counter(e.item_id for e in behaviour if e.type == "view")
    top_percent = sum(n for _, n in views.most_common(len(catalogue) // 100))
    assert top_percent / sum(views.values()) > 0.3  # uniform popularity would give about 0.01


def test_users_browse_mostly_within_a_few_categories(catalogue: list, behaviour: list) -> None:
    category = {e.item_id: e.category for e in catalogue}
    by_user: defaultdict[str, Counter] = defaultdict(Counter)
    for event in behaviour:
        if event.type == "view" and event.item_id in category:
            by_user[event.user_id][category[event.item_id]] += 1

    def top3_share(counts: Counter) -> float:
        return sum(n for _, n in counts.most_common(3)) / sum(counts.values())

    overall = top3_share(sum(by_user.values(), Counter()))
    regulars = [top3_share(c) for c in by_user.values() if sum(c.values()) >= 20]
    assert len(regulars) > 100
    assert sum(regulars) / len(regulars) > overall + 0.3


def test_a_million_items_are_cheap() -> None:
    started = time.perf_counter()
    sim = ShopSimulation(n_users=100_000, n_items=1_000_000, seed=1)
    built = time.perf_counter() - started
    started = time.perf_counter()
    n = sum(1 for _ in sim.events(20_000))
    generating = time.perf_counter() - started
    assert n == 20_000
    # measured about 0.3 s and 60k events/s; generous bounds for a busy machine
    assert built < 5 and generating < 4, (built, generating)


# --- the pacer -------------------------------------------------------------------------
class SlowSleeper:
    """A fake clock whose every sleep overshoots by ``overshoot`` seconds, like a busy OS."""

    def __init__(self, overshoot: float = 0.0) -> None:
        self.now = 0.0
        self.overshoot = overshoot
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds + self.overshoot


def test_pacer_keeps_the_rate_although_every_sleep_overshoots() -> None:
    fake = SlowSleeper(overshoot=0.003)
    pacer = Pacer(rate=100.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(1000):
        pacer.wait()
    # event 1000 is due at 9.99 s; sleeping per event would have drifted by 3 s
    assert 9.99 <= fake.now < 10.0
    assert fake.sleeps < 1000  # overshoot is made up by events that need no sleep


def test_pacer_releases_at_most_a_burst_after_a_stall() -> None:
    pacer = Pacer(rate=50.0, burst=10)
    assert pacer.delay(0.0) == 0.0
    delays = [pacer.delay(60.0) for _ in range(15)]
    assert delays[:10] == [0.0] * 10
    assert delays[10:] == pytest.approx([0.02 * k for k in range(1, 6)])


@pytest.mark.parametrize("rate", [0, -5.0])
def test_pacer_refuses_a_rate_that_is_not_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        Pacer(rate)


# --- the SDK's validation -----------------------------------------------------------
def test_with_defaults_fills_only_what_is_missing() -> None:
    given = with_defaults({"event_id": "e7", "ts": 12.5, "type": "view"})
    assert given == {"event_id": "e7", "ts": 12.5, "type": "view"}
    before = time.time()
    filled = with_defaults({"event_id": None, "type": "view"})
    assert len(filled["event_id"]) == 32 and before <= filled["ts"] <= time.time()
    assert with_defaults({})["event_id"] != with_defaults({})["event_id"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"event_id": "e", "type": "buy", "user_id": "u", "item_id": "i", "ts": 1}, "type"),
        ({"event_id": "e", "type": "view", "user_id": "u", "item_id": "i", "ts": 1, "x": 1}, "x"),
        (
            {"event_id": "e", "type": "view", "user_id": "u", "item_id": "i", "ts": 1700000000000},
            "ts",
        ),
        (
            {
                "event_id": "e",
                "type": "view",
                "user_id": "u",
                "item_id": "i",
                "ts": 1,
                "context": {"s": {1}},
            },
            "JSON",
        ),
        (["view"], "mapping"),
    ],
)
def test_shop_event_says_why_an_event_is_refused(data: object, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        shop_event(data)  # type: ignore[arg-type]
