"""Synthetic shop traffic for load tests: deterministic for a seed, fast, memory-light.

A :class:`ShopSimulation` gives two streams:

* :meth:`ShopSimulation.catalogue` -- the initial catalogue, one
  :class:`~streamreco.events.CatalogEvent` upsert per item, all at ``start_ts``;
* :meth:`ShopSimulation.events` -- what happens after: user sessions
  interleaved in time (:class:`~streamreco.events.ShopEvent`), with catalogue
  changes (new items arriving, items going out of and back into stock) in their
  place in the stream.

The shop it imitates:

* item popularity is a power law (Zipf, exponent ``zipf_exponent``) and so is
  the size of categories and how active users are;
* each user has three favourite categories and browses mostly within them;
* a session may open with a search, then views items; a view may lead to a
  click, a click to an ``add_to_cart`` (only while the item is in stock),
  rarely a ``remove_from_cart``; at the end the cart may be bought, and
  bought items are sometimes rated and reviewed;
* new items arrive one every ``new_item_every`` events and get a share of
  the views ("new arrivals") while they are among the latest.

Items are numpy arrays, not Python objects, so a million of them cost a few
tens of MB; ``i<n>`` and ``u<n>`` ids are made when an event needs them.

>>> sim = ShopSimulation(n_users=50, n_items=200, seed=7)
>>> len(list(sim.catalogue()))
200
>>> events = list(sim.events(3000))
>>> sorted({e.type for e in events if isinstance(e, ShopEvent)})  # doctest: +NORMALIZE_WHITESPACE
['add_to_cart', 'click', 'purchase', 'rating', 'remove_from_cart', 'review', 'search', 'view']
>>> from streamreco.events import dumps
>>> [dumps(e) for e in events[:50]] == [dumps(e) for e in list(sim.events(50))]
True
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Iterator
from itertools import chain

import numpy as np

from producers.replay import Progress, produce_events
from streamreco.events import CatalogEvent, ShopEvent
from streamreco.settings import Settings

CATEGORY_NAMES = (
    "shoes", "jackets", "dresses", "shirts", "jeans", "bags", "watches", "sunglasses",
    "phones", "laptops", "headphones", "cameras", "tablets", "monitors", "keyboards",
    "sofas", "lamps", "rugs", "beds", "desks", "cookware", "knives", "coffee", "tea",
    "books", "games", "toys", "puzzles", "bikes", "tents", "skis", "yoga", "perfume",
    "skincare", "shampoo", "vitamins", "garden", "tools", "paint", "pet food",
)  # fmt: skip
ADJECTIVES = ("classic", "slim", "pro", "eco", "compact", "premium", "light", "vintage")
BRAND_PARTS = ("Nor", "Vel", "Ka", "Zen", "Or", "Lum", "Bre", "Tam", "Qui", "Sol", "Mar", "Ek")
REVIEWS = (
    "Exactly as described.", "Good value for the price.", "Arrived late but works well.",
    "Not what I expected.", "Would buy again!", "Quality could be better.",
)  # fmt: skip

# How a session unfolds (probabilities per step).
P_SEARCH = 0.3  # a session opens with a search
P_AFFINITY = 0.85  # a view is within one of the user's favourite categories
P_NEW_ARRIVAL = 0.05  # a view is of one of the latest new items
P_CLICK = 0.35  # a view leads to a click
P_CART = 0.3  # a click leads to add_to_cart (when in stock)
P_REMOVE = 0.1  # an item put in the cart is taken out again
P_LEAVE = 0.15  # the user leaves after a view
P_CHECKOUT = 0.5  # a session with a full cart ends in purchases
P_RATE = 0.2  # a bought item is rated
P_REVIEW = 0.3  # a rated item is also reviewed
P_STOCK_CHANGE = 0.002  # per event, an item goes out of or back into stock
FAVOURITE_CUMULATIVE = (0.6, 0.9)  # the first favourite 60 % of the time, the second 30 %
STARS = (1, 2, 3, 4, 5)
STAR_WEIGHTS = (5, 8, 20, 35, 32)
RECENT_NEW_ITEMS = 50
CONCURRENT_SESSIONS = 64
DRAW_BATCH = 256


def _cdf(weights: np.ndarray) -> np.ndarray:
    return np.cumsum(weights, dtype=np.float64)


def _draws(
    rng: np.random.Generator, cdf: np.ndarray, lo: int, hi: int, order: np.ndarray | None = None
) -> Iterator[int]:
    """Endless draws of positions ``lo <= p < hi`` in proportion to the weights behind ``cdf``.

    Drawn in numpy batches; ``order`` maps a position to what it stands for.

    >>> rng = np.random.default_rng(0)
    >>> draws = _draws(rng, _cdf(np.array([0.0, 1.0, 0.0, 3.0])), 0, 4)
    >>> sorted({next(draws) for _ in range(100)})
    [1, 3]
    """
    base = cdf[lo - 1] if lo else 0.0
    span = cdf[hi - 1] - base
    while True:
        positions = np.searchsorted(cdf, base + rng.random(DRAW_BATCH) * span, side="right")
        positions = np.clip(positions, lo, hi - 1)
        yield from (positions if order is None else order[positions]).tolist()


class ShopSimulation:
    """A web shop's catalogue and users, replayable from ``seed``.

    Parameters
    ----------
    n_users, n_items
        Size of the user base and of the initial catalogue.
    n_categories
        How many categories the items fall in.
    seed
        Same seed, same streams: every call of :meth:`catalogue` and
        :meth:`events` starts over from it.
    start_ts
        The catalogue's time; events follow it.
    events_per_second
        Simulated traffic: mean events per second of ``ts``.
    zipf_exponent
        Skew of item popularity (1.0 to 1.2 is typical of shops).
    new_item_every
        One new item arrives every this many events on average.
    max_new_items
        At most this many arrive (ids ``i<n_items>`` onwards); default ``n_items // 10 + 100``.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_categories: int = 20,
        seed: int = 0,
        *,
        start_ts: float = 1_700_000_000.0,
        events_per_second: float = 200.0,
        zipf_exponent: float = 1.1,
        new_item_every: int = 500,
        max_new_items: int | None = None,
    ) -> None:
        if n_users < 1 or n_items < 1 or n_categories < 1:
            raise ValueError("n_users, n_items and n_categories must be >= 1")
        self.n_users = n_users
        self.n_items = n_items
        self.n_categories = n_categories
        self.seed = seed
        self.start_ts = start_ts
        self.events_per_second = events_per_second
        self.zipf_exponent = zipf_exponent
        self.new_item_every = new_item_every
        self.max_new_items = n_items // 10 + 100 if max_new_items is None else max_new_items
        self._build()

    def _build(self) -> None:
        rng = np.random.default_rng([self.seed, 0])
        n_all = self.n_items + self.max_new_items
        self.category_names = [
            CATEGORY_NAMES[c % len(CATEGORY_NAMES)]
            + (f" {c // len(CATEGORY_NAMES)}" if c >= len(CATEGORY_NAMES) else "")
            for c in range(self.n_categories)
        ]
        category_share = 1.0 / np.arange(1, self.n_categories + 1) ** 0.8
        category_share /= category_share.sum()
        self.category = rng.choice(self.n_categories, n_all, p=category_share).astype(np.int32)
        base_price = rng.lognormal(3.0, 1.0, self.n_categories)
        self.price = np.round(base_price[self.category] * rng.lognormal(0, 0.5, n_all), 2)
        self.brand = rng.integers(0, len(BRAND_PARTS) ** 2, n_all, dtype=np.int32)
        self.created_at = self.start_ts - rng.uniform(0, 730 * 86400, n_all)
        self.initially_in_stock = rng.random(n_all) > 0.03
        # popularity: a random permutation of Zipf ranks over the initial items
        popularity = 1.0 / (rng.permutation(self.n_items) + 1.0) ** self.zipf_exponent
        self._by_category = np.argsort(self.category[: self.n_items], kind="stable").astype(
            np.int32
        )
        self._item_cdf = _cdf(popularity[self._by_category])
        self._bounds = np.searchsorted(
            self.category[: self.n_items][self._by_category], np.arange(self.n_categories + 1)
        ).tolist()
        self.favourites = rng.choice(
            self.n_categories, (self.n_users, 3), p=category_share
        ).tolist()
        self._user_cdf = _cdf(1.0 / (rng.permutation(self.n_users) + 1.0) ** 0.7)
        self.mobile = rng.random(self.n_users) < 0.6

    # --- the catalogue ------------------------------------------------------------
    def item(
        self, index: int, ts: float, in_stock: bool, created_at: float | None = None
    ) -> CatalogEvent:
        """The full upsert of item ``index`` as of ``ts``."""
        category = self.category_names[self.category[index]]
        brand = divmod(int(self.brand[index]), len(BRAND_PARTS))
        brand_name = BRAND_PARTS[brand[0]] + BRAND_PARTS[brand[1]].lower()
        return CatalogEvent(
            item_id=f"i{index}",
            ts=ts,
            title=f"{brand_name} {ADJECTIVES[index % len(ADJECTIVES)]} {category} {index}",
            category=category,
            brand=brand_name,
            price=float(self.price[index]),
            in_stock=in_stock,
            created_at=float(self.created_at[index]) if created_at is None else created_at,
        )

    def catalogue(self) -> Iterator[CatalogEvent]:
        """One upsert per initial item, ids ``i0`` .. ``i<n_items - 1>``, all at ``start_ts``."""
        for index in range(self.n_items):
            yield self.item(index, self.start_ts, bool(self.initially_in_stock[index]))

    # --- behaviour ------------------------------------------------------------------
    def events(self, n: int) -> Iterator[ShopEvent | CatalogEvent]:
        """The ``n`` messages after the catalogue, in ``ts`` order.

        Event ids are ``syn<seed>-<k>``, session ids ``syn<seed>-s<j>``: unique
        within the stream, and the same on every replay of the same seed.
        """
        return _Run(self).messages(n)


class _Run:
    """The mutable state of one pass over :meth:`ShopSimulation.events`."""

    def __init__(self, sim: ShopSimulation) -> None:
        self.sim = sim
        self.random = random.Random(sim.seed)
        self.rng = np.random.default_rng([sim.seed, 1])
        self.in_stock = sim.initially_in_stock.copy()
        self.new_items: list[int] = []
        self.ts = sim.start_ts
        self.prefix = f"syn{sim.seed}-"
        n = sim.n_items
        self.any_item = _draws(self.rng, sim._item_cdf, 0, n, sim._by_category)
        self.in_category: dict[int, Iterator[int]] = {}
        self.users = _draws(self.rng, sim._user_cdf, 0, sim.n_users)
        self.n_sessions = 0

    def pick_item(self, user: int) -> int:
        r = self.random
        if self.new_items and r.random() < P_NEW_ARRIVAL:
            return r.choice(self.new_items[-RECENT_NEW_ITEMS:])
        if r.random() >= P_AFFINITY:
            return next(self.any_item)
        category = self.sim.favourites[user][bisect(FAVOURITE_CUMULATIVE, r.random())]
        draws = self.in_category.get(category)
        if draws is None:
            lo, hi = self.sim._bounds[category], self.sim._bounds[category + 1]
            draws = (
                self.any_item
                if lo == hi
                else _draws(self.rng, self.sim._item_cdf, lo, hi, self.sim._by_category)
            )
            self.in_category[category] = draws
        return next(draws)

    def session(self, user: int) -> Iterator[tuple[str, int | None, float | None, str | None]]:
        """``(type, item, value, text)`` steps of one visit, in funnel order."""
        r, sim = self.random, self.sim
        if r.random() < P_SEARCH:
            category = sim.category_names[sim.favourites[user][0]]
            yield "search", None, None, f"{r.choice(ADJECTIVES)} {category}"
        cart: list[int] = []
        while True:
            item = self.pick_item(user)
            yield "view", item, None, None
            if r.random() < P_CLICK:
                yield "click", item, None, None
                if self.in_stock[item] and r.random() < P_CART:
                    yield "add_to_cart", item, 1.0, None
                    if r.random() < P_REMOVE:
                        yield "remove_from_cart", item, 1.0, None
                    else:
                        cart.append(item)
            if r.random() < P_LEAVE:
                break
        if not cart or r.random() >= P_CHECKOUT:
            return
        for item in cart:
            yield "purchase", item, float(sim.price[item]), None
        for item in cart:
            if r.random() < P_RATE:
                stars = float(r.choices(STARS, STAR_WEIGHTS)[0])
                yield "rating", item, stars, None
                if r.random() < P_REVIEW:
                    yield "review", item, stars, r.choice(REVIEWS)

    def new_session(self) -> tuple[Iterator[tuple], str, str, dict[str, str]]:
        user = next(self.users)
        self.n_sessions += 1
        device = {"device": "mobile" if self.sim.mobile[user] else "desktop"}
        return self.session(user), f"u{user}", f"{self.prefix}s{self.n_sessions}", device

    def catalogue_change(self) -> CatalogEvent | None:
        """A new arrival or a stock change, when one is due now."""
        sim, r = self.sim, self.random
        if r.random() * sim.new_item_every < 1 and len(self.new_items) < sim.max_new_items:
            index = sim.n_items + len(self.new_items)
            self.new_items.append(index)
            return sim.item(index, self.ts, bool(self.in_stock[index]), created_at=self.ts)
        if r.random() < P_STOCK_CHANGE:
            index = next(self.any_item)
            self.in_stock[index] = not self.in_stock[index]
            return sim.item(index, self.ts, bool(self.in_stock[index]))
        return None

    def messages(self, n: int) -> Iterator[ShopEvent | CatalogEvent]:
        r = self.random
        pace = self.sim.events_per_second
        sessions = [self.new_session() for _ in range(min(CONCURRENT_SESSIONS, self.sim.n_users))]
        for k in range(n):
            self.ts += r.expovariate(pace)
            change = self.catalogue_change()
            if change is not None:
                yield change
                continue
            slot = r.randrange(len(sessions))
            steps, user_id, session_id, context = sessions[slot]
            step = next(steps, None)
            while step is None:  # the visit is over: someone else arrives
                sessions[slot] = steps, user_id, session_id, context = self.new_session()
                step = next(steps, None)
            type_, item, value, text = step
            yield ShopEvent(
                event_id=f"{self.prefix}{k}",
                type=type_,
                user_id=user_id,
                item_id=None if item is None else f"i{item}",
                ts=self.ts,
                value=value,
                text=text,
                session_id=session_id,
                context=context,
            )


def run_synthetic(
    settings: Settings,
    n_events: int,
    n_users: int,
    n_items: int,
    rate: float | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> int:
    """Produce a simulated shop: the catalogue, then ``n_events`` events.

    Catalogue messages go to ``settings.catalog_topic`` unpaced, behaviour
    events to ``settings.events_topic`` at ``rate`` per second (``None``: as
    fast as possible). Returns how many messages were sent.
    """
    sim = ShopSimulation(n_users, n_items, seed=seed)
    messages = chain(sim.catalogue(), sim.events(n_events))
    return produce_events(settings, messages, rate, progress, total=n_items + n_events)
