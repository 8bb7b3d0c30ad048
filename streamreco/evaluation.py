"""Prequential (test-then-train) top-N evaluation, as ``/work/shared/EVALUATION.md`` defines it.

Each event is first a test and then a lesson: the list the user was last shown
is checked for the event's item, and only then does the model learn. The same
scorer serves the offline bench, the pipeline bench and the live worker.

>>> score = PrequentialScore(n=10)
>>> score.update(["a", "b", "c"], "b", seen_before=False)   # hit at rank 2
0.6309297535714575
>>> score.update(["a", "b", "c"], "z", seen_before=False)   # miss
0.0
>>> score.update(["a"], "b", seen_before=True) is None      # a repeat: not scored
True
>>> score.scored, score.hits, round(score.hr, 3), round(score.ndcg, 3)
(2, 1, 0.5, 0.315)
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from online_models import Profile, Recommender, build_model, recommend
from online_models.feedback import interaction_weight
from streamreco.events import NEWCOMERS, RecommendedItem, ShopEvent
from streamreco.store import BatchStore, MemoryStore, Store

#: Items in the top ``POPULAR_SHARE`` by interactions count as "popular" for the bias measure.
POPULAR_SHARE = 0.10


def gain(recommended: Sequence[str], item: str, n: int = 10) -> float:
    """NDCG@n gain of ``item`` in ``recommended``: ``1/log2(rank+1)``, 0 when absent.

    >>> gain(["x", "y"], "x"), gain(["x", "y"], "q"), gain(["x", "y"], "y", n=1)
    (1.0, 0.0, 0.0)
    """
    for rank, candidate in enumerate(recommended[:n], start=1):
        if candidate == item:
            return 1.0 / math.log2(rank + 1)
    return 0.0


@dataclass
class PrequentialScore:
    """Running HR@n, NDCG@n, coverage and popularity bias of a stream of (list, item) tests.

    Segments of one stream add up: ``first + second`` is the score of both.

    >>> a, b = PrequentialScore(), PrequentialScore()
    >>> _ = a.update(["i1", "i2"], "i1", seen_before=False)
    >>> _ = b.update(["i3"], "i2", seen_before=False)
    >>> both = a + b
    >>> both.hr, both.coverage(), both.coverage(catalogue_size=10)
    (0.5, 1.0, 0.3)
    """

    n: int = 10
    events: int = 0
    scored: int = 0
    hits: int = 0
    gains: float = 0.0
    recommended: Counter[str] = field(default_factory=Counter)  # item -> times in a list
    interactions: Counter[str] = field(default_factory=Counter)  # item -> events on it

    def update(self, recommended: Sequence[str], item: str, seen_before: bool) -> float | None:
        """Test ``recommended`` (best first) against the event's ``item``; its gain, or ``None``.

        Events on items the user had already interacted with are not scored.
        """
        self.events += 1
        self.interactions[item] += 1
        self.recommended.update(recommended[: self.n])
        if seen_before:
            return None
        value = gain(recommended, item, self.n)
        self.scored += 1
        self.hits += value > 0.0
        self.gains += value
        return value

    @property
    def hr(self) -> float:
        """Hit rate: share of scored events whose item was in the list."""
        return self.hits / self.scored if self.scored else 0.0

    @property
    def ndcg(self) -> float:
        """Mean NDCG@n over scored events (one relevant item per event)."""
        return self.gains / self.scored if self.scored else 0.0

    def coverage(self, catalogue_size: int | None = None) -> float:
        """Distinct items recommended / catalogue size (default: distinct items in the stream)."""
        size = catalogue_size or len(self.interactions.keys() | self.recommended.keys())
        return len(self.recommended) / size if size else 0.0

    @property
    def popularity_bias(self) -> float:
        """Share of recommendation slots taken by the top 10% of items by interactions.

        >>> s = PrequentialScore()
        >>> for i in range(10):
        ...     _ = s.update(["i0", f"i{i}"], f"i{i}", seen_before=False)
        >>> s.popularity_bias   # i0 (ties broken by name) is the top 10% and fills 11 of 20 slots
        0.55
        """
        slots = sum(self.recommended.values())
        if not slots:
            return 0.0
        top = max(1, round(POPULAR_SHARE * len(self.interactions)))
        ranked = sorted(self.interactions.items(), key=lambda e: (-e[1], e[0]))[:top]
        return sum(self.recommended[item] for item, _ in ranked) / slots

    def __add__(self, other: PrequentialScore) -> PrequentialScore:
        return PrequentialScore(
            n=self.n,
            events=self.events + other.events,
            scored=self.scored + other.scored,
            hits=self.hits + other.hits,
            gains=self.gains + other.gains,
            recommended=self.recommended + other.recommended,
            interactions=self.interactions + other.interactions,
        )

    def as_dict(self, catalogue_size: int | None = None) -> dict[str, float | int]:
        return {
            "events": self.events,
            "scored": self.scored,
            "hr": self.hr,
            "ndcg": self.ndcg,
            "coverage": self.coverage(catalogue_size),
            "popularity_bias": self.popularity_bias,
        }


class RollingScore:
    """HR@n and NDCG@n over the last ``window`` scored events: the live worker's quality.

    >>> rolling = RollingScore(window=2)
    >>> for recommended, item in [(["a"], "a"), (["a"], "b"), (["b", "c"], "c")]:
    ...     _ = rolling.update(recommended, item, seen_before=False)
    >>> rolling.scored, rolling.hr, round(rolling.ndcg, 3)
    (2, 0.5, 0.315)
    """

    def __init__(self, window: int = 1000, n: int = 10) -> None:
        self.window = window
        self.n = n
        self._gains: deque[float] = deque(maxlen=window)
        # running sums over the window, so that another thread reads them without iterating
        self._hits = 0
        self._gain_sum = 0.0
        self._scored = 0

    def update(self, recommended: Sequence[str], item: str, seen_before: bool) -> float | None:
        if seen_before:
            return None
        value = gain(recommended, item, self.n)
        if len(self._gains) == self.window:
            oldest = self._gains[0]
            self._hits -= oldest > 0.0
            self._gain_sum -= oldest
        self._gains.append(value)
        self._hits += value > 0.0
        self._gain_sum += value
        self._scored = len(self._gains)
        return value

    @property
    def scored(self) -> int:
        return self._scored

    @property
    def hr(self) -> float:
        return self._hits / self._scored if self._scored else 0.0

    @property
    def ndcg(self) -> float:
        return max(self._gain_sum, 0.0) / self._scored if self._scored else 0.0


@dataclass
class ReplayResult:
    """What :func:`replay_offline` measured: one score per segment of the stream, and the time."""

    model: str
    segments: list[PrequentialScore]
    seconds: float

    @property
    def total(self) -> PrequentialScore:
        return sum(self.segments[1:], self.segments[0])

    @property
    def events_per_second(self) -> float:
        return self.total.events / self.seconds if self.seconds else 0.0


ModelSpec = str | Callable[[Store], Recommender]


def build_recommender(model: ModelSpec, store: Store) -> Recommender:
    """``model`` on ``store``: a name for :func:`online_models.build_model`, or a factory called with the store."""
    return build_model(model, store) if isinstance(model, str) else model(store)


def replay_offline(
    model: ModelSpec,
    interactions: Iterable[ShopEvent],
    n: int = 10,
    exclude_seen: bool = True,
    progress: Callable[[int], None] | None = None,
    split_at: Sequence[int] = (),
    history_size: int = 50,
    tested: Callable[[ShopEvent, list[RecommendedItem]], None] | None = None,
    listed: int | None = None,
) -> ReplayResult:
    """Replay ``interactions`` through a fresh model, test then train.

    Per event, exactly what the worker does: the test list is the one last
    published for the user (for a user with none yet, the newcomers' list: the
    model's list for a user with no history, published at the start and again
    after each new user's first interaction); the model learns (when the event
    carries a weight); the profile records the event; the refreshed top ``n`` is
    published and remembered as shown. The model's state is in a :class:`BatchStore` over a
    :class:`MemoryStore`, flushed after each event: a worker's batch of one.
    ``model`` is a name for :func:`online_models.build_model` or a factory
    called with the store. ``split_at`` lists event indexes where a new
    segment of the score starts; ``progress`` is called with the number of
    events done every 1,000 events. ``tested``, when given, is called with each
    event that has an item and weight and the list it is tested against, as
    published: ``listed`` items (default ``n``) with their scores; the score reads its top ``n``.

    >>> events = [ShopEvent(event_id=str(k), type="view", user_id=u, item_id=i, ts=k)
    ...           for k, (u, i) in enumerate([("a", "x"), ("b", "x"), ("c", "y"), ("c", "x")])]
    >>> result = replay_offline("popularity", events, split_at=[2])
    >>> [(s.events, s.hits) for s in result.segments]   # b is shown newcomers [x]; c's list after y, [x]
    [(2, 1), (2, 1)]
    """
    store = BatchStore(MemoryStore(), reusable=lambda key: True, reuse_seconds=math.inf)  # the only writer
    recommender = build_recommender(model, store)
    name = model if isinstance(model, str) else getattr(model, "__name__", type(recommender).__name__)
    boundaries = sorted(set(split_at))
    segments = [PrequentialScore(n=n)]
    profiles: dict[str, Profile] = {}
    # what the model shows a newcomer before any event: nothing, unless the factory taught it already
    listed = listed or n
    published = {NEWCOMERS: recommend(recommender, Profile(NEWCOMERS), listed, exclude_seen)}
    started = time.perf_counter()
    for index, event in enumerate(interactions):
        if boundaries and index == boundaries[0]:
            boundaries.pop(0)
            segments.append(PrequentialScore(n=n))
        if progress is not None and index and index % 1000 == 0:
            progress(index)
        profile = profiles.get(event.user_id)
        if profile is None:
            profile = profiles[event.user_id] = Profile(event.user_id, history_size=history_size)
        item, weight = event.item_id, interaction_weight(event)
        if item is None or weight is None:
            profile.last_ts = max(profile.last_ts, event.ts)
        else:
            shown = published.get(event.user_id, published[NEWCOMERS])
            if tested is not None:
                tested(event, shown)
            segments[-1].update([r.item_id for r in shown[:n]], item, seen_before=item in profile.seen)
            first = not profile.n_events
            recommender.learn_one(profile, item, weight, event.ts)
            profile.add(item, event.ts, weight, purchased=event.type == "purchase")
            if first:
                published[NEWCOMERS] = recommend(recommender, Profile(NEWCOMERS), listed, exclude_seen)
        published[event.user_id] = recommend(recommender, profile, listed, exclude_seen)
        profile.shown = [r.item_id for r in published[event.user_id][:n]]
        store.flush()
    seconds = time.perf_counter() - started
    if progress is not None:
        progress(sum(s.events for s in segments))
    return ReplayResult(name, segments, seconds)
