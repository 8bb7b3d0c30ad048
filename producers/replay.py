"""Produce a finite stream of events at a steady rate: MovieLens replays, synthetic load.

:func:`produce_events` sends any iterable of contract messages through an
:class:`~producers.sdk.EventProducer`, paced by a :class:`Pacer`;
:func:`replay_movielens` feeds it the MovieLens-100K ratings in timestamp order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sized
from pathlib import Path

from producers.sdk import EventProducer
from streamreco.events import CatalogEvent, ShopEvent
from streamreco.settings import Settings

#: ``progress(done, total)``; ``total`` is 0 when unknown.
Progress = Callable[[int, int], None]

#: How many events pass between two calls of a progress callback.
PROGRESS_EVERY = 1000


class Pacer:
    """Hands out ``rate`` slots per second against a monotonic clock.

    Event *k* is due at ``start + k / rate``, so one sleep that lasts too long
    is made up by the following events instead of slowing all later ones
    (no drift). After a stall at most ``burst`` events go back to back; then
    the schedule moves forward rather than let a longer backlog out at once.

    Parameters
    ----------
    rate
        Events per second, > 0.
    burst
        How many overdue events may be released at once.
    clock, sleep
        ``time.monotonic`` and ``time.sleep`` unless given others.

    Examples
    --------
    :meth:`delay` is the schedule as a pure function of the time:

    >>> pacer = Pacer(rate=10.0, burst=3)
    >>> [round(pacer.delay(0.0), 3) for _ in range(3)]  # at t=0: 0, 0.1 and 0.2 s to wait
    [0.0, 0.1, 0.2]
    >>> [round(pacer.delay(0.35), 3) for _ in range(2)]  # slots 0.3 and 0.4
    [0.0, 0.05]
    >>> [round(pacer.delay(9.0), 3) for _ in range(5)]  # after a stall: 3 at once, then paced
    [0.0, 0.0, 0.0, 0.1, 0.2]
    """

    def __init__(
        self,
        rate: float,
        burst: int = 100,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 events/s, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None
        self._sent = 0

    def delay(self, now: float) -> float:
        """Seconds to wait at ``now`` before the next event may go; takes its slot."""
        if self._start is None:
            self._start = now
        due = self._start + self._sent / self.rate
        if now - due > self.burst / self.rate:  # too far behind: forget the backlog
            self._start = now - (self._sent + self.burst - 1) / self.rate
            due = self._start + self._sent / self.rate
        self._sent += 1
        return max(0.0, due - now)

    def wait(self) -> None:
        """Sleep until the next slot is due."""
        pause = self.delay(self._clock())
        if pause > 0:
            self._sleep(pause)


def produce_events(
    settings: Settings,
    events: Iterable[ShopEvent | CatalogEvent],
    rate: float | None = None,
    progress: Progress | None = None,
    total: int | None = None,
) -> int:
    """Send ``events`` in order and return how many were sent, all acknowledged by the
    broker (else :class:`~producers.sdk.DeliveryError`).

    :class:`ShopEvent` messages go to ``settings.events_topic`` at ``rate``
    events per second (``None``: as fast as the broker takes them);
    :class:`CatalogEvent` messages go to ``settings.catalog_topic`` unpaced,
    in their place in the stream. ``progress(done, total)`` is called every
    :data:`PROGRESS_EVERY` messages and once at the end; ``total`` defaults to
    ``len(events)`` when it has one, else 0 (unknown).
    """
    if total is None:
        total = len(events) if isinstance(events, Sized) else 0
    pacer = Pacer(rate) if rate else None
    done = 0
    with EventProducer(settings) as producer:
        for event in events:
            if isinstance(event, CatalogEvent):
                producer.send_catalog(event)
            else:
                if pacer is not None:
                    pacer.wait()
                producer.send(event)
            done += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(done, total)
        producer.flush()
    if progress is not None:
        progress(done, total)
    return done


def replay_movielens(
    settings: Settings,
    rate: float | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
    path: str | Path | None = None,
) -> int:
    """Replay MovieLens-100K ratings as ``rating`` events in timestamp order.

    Parameters
    ----------
    settings
        Broker and ``events_topic``.
    rate
        Events per second; ``None`` sends as fast as possible.
    limit
        Send only the first ``limit`` ratings (by time); ``None`` sends all 100,000.
    progress
        Called as ``progress(done, total)`` while sending.
    path
        Where the data set is, passed to :func:`producers.movielens.load_ratings`.

    Returns
    -------
    int
        How many events were sent.
    """
    from producers import movielens

    if limit is not None and limit < 0:
        raise ValueError(f"limit: how many ratings to send, at least 0 (got {limit})")
    ratings = movielens.load_ratings(path)
    if limit is not None:
        ratings = ratings[:limit]
    return produce_events(settings, movielens.to_events(ratings), rate, progress, len(ratings))
