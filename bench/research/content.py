"""Movie genres and release years as a content row beside the default's co-occurrence rows (issue #3 research).

A dense numpy replay of the default for fast iteration, not product code: the
settings are :class:`~online_models.cooccurrence.ItemCooccurrence`'s defaults and
ratings weigh what :func:`~online_models.feedback.interaction_weight` says, but rows
are never trimmed to its 200 neighbours, and it scores a little above the product
(0.2129 against 0.2103 over the whole stream). Each event is tested,
as in :func:`streamreco.evaluation.replay_offline`, against the list published
after the user's previous event (a user's first, against the newcomers' list),
or with ``fresh`` against a list made at the moment of the test.

The content row of a source item ``s`` (one of the user's recent items) is, for
every other movie ``c``::

    genre Jaccard(s, c) x exp(-|year(s) - year(c)| / year_scale) x count(c) ** popularity_power

divided by its maximum, weighted like the source's co-occurrence row and by
``content_weight / (content_weight + count(s))``, so that it fades as ``s`` is
seen. ``genre_top`` keeps only each of ``s``'s genres' most interacted-with
movies in the row (what a store could keep per genre); ``overlap`` replaces
Jaccard and year with the share of ``s``'s genres a movie has, each genre's row
normalised on its own (what a store could sum from one row per genre).

    python -m bench.research.content --limit 50000 '{}' '{"content_weight": 10, "year_scale": 30}'

>>> replay(events(limit=3000), content_weight=10, year_scale=30)["full"]["hr"] > 0
True
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import NamedTuple

import numpy as np

from online_models import ItemCooccurrence
from online_models.feedback import interaction_weight
from producers.movielens import load_items, load_ratings, to_events

LIST = 10


class Stream(NamedTuple):
    """MovieLens as arrays, by event (stable-sorted by time) and by movie."""

    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    weight: np.ndarray  # the product's learning weight of each rating
    genres: np.ndarray  # movie x genre, 0/1
    year: np.ndarray


def events(limit: int | None = None) -> Stream:
    """The first ``limit`` ratings of MovieLens-100K in the protocol's order, and every movie's genres and year."""
    ratings = sorted(load_ratings(), key=lambda r: r.timestamp)[:limit]
    movies = load_items()
    ids = sorted(movies.keys() | {r.item_id for r in ratings}, key=int)
    at = {item: k for k, item in enumerate(ids)}
    names = sorted({g for m in movies.values() for g in m.genres})
    genres = np.zeros((len(ids), len(names)))
    year = np.full(len(ids), np.nan)
    for item, movie in movies.items():
        genres[at[item], [names.index(g) for g in movie.genres]] = 1
        year[at[item]] = np.nan if movie.year is None else movie.year
    year[np.isnan(year)] = np.nanmedian(year)
    users: dict[str, int] = {}
    return Stream(
        np.array([users.setdefault(r.user_id, len(users)) for r in ratings]),
        np.array([at[r.item_id] for r in ratings]),
        np.array([r.timestamp for r in ratings]),
        np.array([interaction_weight(event) for event in to_events(ratings)]),
        genres,
        year,
    )


def similarity(data: Stream, year_scale: float) -> np.ndarray:
    """Genre Jaccard times release-year closeness, movie by movie; 0 on the diagonal."""
    shared = data.genres @ data.genres.T
    sizes = data.genres.sum(axis=1)
    jaccard = shared / np.maximum(sizes[:, None] + sizes[None, :] - shared, 1)
    closeness = np.exp(-np.abs(data.year[:, None] - data.year[None, :]) / year_scale)
    result = jaccard * closeness
    np.fill_diagonal(result, 0.0)
    return result


def replay(
    data: Stream,
    content_weight: float = 0.0,
    year_scale: float = 30.0,
    popularity_power: float = 0.5,
    genre_top: int | None = None,
    overlap: bool = False,
    fresh: bool = False,
) -> dict[str, dict[str, float]]:
    """HR@10 and NDCG@10 of the default, with a content row at ``content_weight`` (0: none), per half."""
    default = ItemCooccurrence()
    n = len(data.year)
    co, count, first = np.zeros((n, n)), np.zeros(n), np.zeros(n)
    content = similarity(data, year_scale) if content_weight and not overlap else None
    members = [np.flatnonzero(column) for column in data.genres.T]
    history: dict[int, list[tuple[int, float]]] = {}
    published: dict[int, np.ndarray] = {}

    def content_rows(sources: np.ndarray) -> np.ndarray:
        popularity = np.maximum(count, 1.0) ** popularity_power
        if not overlap:
            rows = content[sources] * popularity
            if genre_top is not None:
                kept = np.zeros_like(rows, dtype=bool)
                for row, source in enumerate(sources):
                    for genre in np.flatnonzero(data.genres[source]):
                        best = members[genre][np.argsort(-count[members[genre]], kind="stable")[:genre_top]]
                        kept[row, best] = True
                rows *= kept
            return rows
        rows = np.zeros((len(sources), n))
        for row, source in enumerate(sources):
            own = np.flatnonzero(data.genres[source])
            for genre in own:
                rows[row, members[genre]] += popularity[members[genre]] / popularity[members[genre]].max() / len(own)
            rows[row, source] = 0.0
        return rows

    def top(user_history: list[tuple[int, float]], seen: set[int]) -> np.ndarray:
        """The top 10 for a history; with none, what new users most often began with, then the most popular."""
        score = first + 1e-9 * count
        if user_history:
            steps: dict[int, int] = {}
            step, latest = -1, None
            for item, ts in reversed(user_history):
                if ts // default.moment != latest:
                    step, latest = step + 1, ts // default.moment
                steps.setdefault(item, step)
                if len(steps) >= default.sources:
                    break
            sources = np.fromiter(steps, int)
            weights = default.source_recency ** np.fromiter(steps.values(), float)
            rows = co[sources] * np.maximum(count, 1.0) ** -default.alpha
            score = (weights / _peaks(rows)) @ rows + 1e-9 * count
            if content_weight:
                rows = content_rows(sources)
                fading = content_weight / (content_weight + count[sources])
                score = score + (weights * fading / _peaks(rows)) @ rows
        if seen:
            score = score.copy()
            score[list(seen)] = -np.inf
        best = np.argpartition(-score, LIST)[:LIST]
        return best[np.argsort(-score[best], kind="stable")]

    gains = np.zeros(len(data.item))
    newcomers = top([], set())
    stream = zip(data.user.tolist(), data.item.tolist(), data.ts.tolist(), data.weight.tolist(), strict=True)
    for at, (user, item, ts, weight) in enumerate(stream):
        user_history = history.setdefault(user, [])
        seen = {j for j, _ in user_history}
        shown = top(user_history, seen) if fresh else published.get(user, newcomers)
        rank = np.flatnonzero(shown == item)
        gains[at] = 1.0 / math.log2(rank[0] + 2) if len(rank) and item not in seen else 0.0
        recent = list(dict.fromkeys(j for j, _ in reversed(user_history) if j != item))[: default.window]
        for position, other in enumerate(recent):
            co[other, item] += weight * default.recency**position
            co[item, other] += weight * default.recency**position
        count[item] += 1
        user_history.append((item, ts))
        if len(user_history) == 1:
            first[item] += 1
            newcomers = top([], set())
        published[user] = top(user_history, seen | {item})
    half = len(gains) // 2
    return {
        name: {"hr": float((part > 0).mean()), "ndcg": float(part.mean())}
        for name, part in (("full", gains), ("first half", gains[:half]), ("last half", gains[half:]))
    }


def _peaks(rows: np.ndarray) -> np.ndarray:
    peaks = rows.max(axis=1)
    peaks[peaks <= 0] = 1.0
    return peaks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.research.content", description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", nargs="+", help='keyword arguments of replay() as JSON, e.g. \'{"fresh": true}\'')
    parser.add_argument("--limit", type=int, help="only the first N events (settings are chosen on the first 50,000)")
    args = parser.parse_args(argv)
    data = events(args.limit)
    print(f"| settings | HR@10 / NDCG@10 | first half | last half | seconds |  ({len(data.item)} events)")
    for text in args.settings:
        started = time.perf_counter()
        result = replay(data, **json.loads(text))
        cells = " | ".join(f"{part['hr']:.4f} / {part['ndcg']:.4f}" for part in result.values())
        print(f"| `{text}` | {cells} | {time.perf_counter() - started:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
