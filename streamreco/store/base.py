"""The one state interface: byte blobs by key, and scored sets (counters).

Every piece of streamreco state -- user profiles, item features, co-occurrence
rows, popularity counters, item vectors, the latest list per user -- is one of
two shapes, and a backend implements just these methods for both. Reads take
many keys at once so that a network backend answers them in one round trip;
writes issued inside ``with store.pipeline():`` reach a network backend as one
batch.

Scored sets are what Redis calls sorted sets: ``member -> float`` with
increments, top-n and point reads. ``cap`` on :meth:`Store.zincr` keeps only the
highest-scoring members, which bounds the memory of a row.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence


class Store(abc.ABC):
    """State behind streamreco; see the module docstring."""

    # --- blobs ------------------------------------------------------------------
    @abc.abstractmethod
    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        """The blob stored at each key, or ``None``."""

    @abc.abstractmethod
    def put(self, values: Mapping[str, bytes]) -> None:
        """Store each blob under its key."""

    @abc.abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove keys of either shape."""

    # --- scored sets ---------------------------------------------------------------
    @abc.abstractmethod
    def zincr(self, key: str, deltas: Mapping[str, float], cap: int | None = None) -> None:
        """Add ``deltas`` to members' scores; then keep at most ``cap`` top members."""

    @abc.abstractmethod
    def ztop(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        """The ``n`` highest ``(member, score)`` of each set, highest first (none for ``n <= 0``)."""

    @abc.abstractmethod
    def zscores(self, key: str, members: Sequence[str]) -> list[float | None]:
        """The score of each member, ``None`` where absent."""

    def zscores_many(self, requests: Mapping[str, Sequence[str]]) -> list[list[float | None]]:
        """:meth:`zscores` of several sets at once (one round trip on a network backend)."""
        return [self.zscores(key, members) for key, members in requests.items()]

    @abc.abstractmethod
    def zremove(self, key: str, members: Iterable[str]) -> None:
        """Remove members from a scored set."""

    # --- housekeeping ------------------------------------------------------------------
    @abc.abstractmethod
    def scan(self, prefix: str) -> Iterator[str]:
        """Every key that starts with ``prefix`` (for deletion on request and tests)."""

    def pipeline(self) -> contextlib.AbstractContextManager[None]:
        """Send the writes made inside the block as one batch (a no-op in memory)."""
        return contextlib.nullcontext()

    def ping(self) -> bool:
        """``True`` when the backend answers."""
        return True

    def close(self) -> None:
        """Release connections."""
