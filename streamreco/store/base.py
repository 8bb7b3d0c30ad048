"""The one state interface: byte blobs by key, and scored sets (counters).

Every piece of streamreco state -- user profiles, item features, co-occurrence
rows, popularity counters, item vectors, the latest list per user -- is one of
two shapes, and a backend implements just these methods for both. Reads take
many keys at once so that a network backend answers them in one round trip;
writes issued inside ``with store.pipeline():`` reach a network backend as one
batch.

Scored sets are what Redis calls sorted sets: ``member -> float`` with
increments, top-n and point reads. ``cap`` on :meth:`Store.zincr` keeps only the
highest-scoring members, which bounds the memory of a row. For numpy code, a set
can also be read as arrays over member ids (:class:`MemberIds`): a whole set with
:meth:`Store.zrows`, chosen members' scores with :meth:`Store.zscores_of`.

>>> from streamreco.store import MemoryStore
>>> store = MemoryStore()
>>> store.zincr("co:tent", {"stove": 2.0, "lamp": 1.0})
>>> [(ids, scores)] = store.zrows(["co:tent"])
>>> store.members.names_of(ids.tolist()), scores.tolist()
(['stove', 'lamp'], [2.0, 1.0])
>>> store.zscores_of("co:tent", store.members.of(["lamp", "mug"])).tolist()
[1.0, nan]
"""

from __future__ import annotations

import abc
import contextlib
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

#: ``n`` of a :meth:`Store.ztop` that reads a whole set.
WHOLE = 2**31 - 1


class MemberIds:
    """Dense integer ids for member names, given in order of first sight, never reused.

    >>> ids = MemberIds()
    >>> ids.of(["b", "a", "b"]).tolist(), ids.names_of([1, 0]), len(ids)
    ([0, 1, 0], ['a', 'b'], 2)
    """

    #: Bytes of a name that :meth:`name_keys` packs into one integer.
    KEY_BYTES = 8

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self._keys = np.zeros(1024, np.uint64)  # room for name_keys(), filled for the first _keyed ids
        self._keyed = 0

    def __len__(self) -> int:
        return len(self.names)

    def id(self, name: str) -> int:
        """The id of ``name``, given now if it has none."""
        found = self.ids.get(name)
        if found is None:
            found = self.ids[name] = len(self.names)
            self.names.append(name)
        return found

    def of(self, names: Sequence[str]) -> np.ndarray:
        """The ids of ``names``, as an array."""
        return np.fromiter(map(self.id, names), np.int64, len(names))

    def names_of(self, ids: Iterable[int]) -> list[str]:
        """The names of ``ids`` (Python ints: ``array.tolist()``)."""
        return list(map(self.names.__getitem__, ids))

    def name_keys(self) -> np.ndarray:
        """By id, the first :data:`KEY_BYTES` bytes of the UTF-8 name as a big-endian integer
        (zero-padded), read-only: names rank by bytes as their keys do, so numpy can rank
        names as Redis does. Equal keys of distinct names are names longer than the key (or
        holding a NUL byte): those need the names themselves.

        >>> ids = MemberIds(); _ = ids.of(["b", "ab", "a", "abcdefghij"])
        >>> [ids.names[at] for at in ids.name_keys().argsort()]
        ['a', 'ab', 'abcdefghij', 'b']
        """
        named = len(self.names)
        if self._keyed < named:
            if named > len(self._keys):  # room for twice as many: each name is keyed once
                room = max(named, 2 * len(self._keys)) - len(self._keys)
                self._keys = np.concatenate((self._keys, np.zeros(room, np.uint64)))
            size = self.KEY_BYTES
            self._keys[self._keyed : named] = np.fromiter(
                (int.from_bytes(name.encode()[:size].ljust(size, b"\0"), "big") for name in self.names[self._keyed :]),
                np.uint64, named - self._keyed,
            )
            self._keyed = named
        keys = self._keys[:named]
        keys.flags.writeable = False
        return keys


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
        """Add ``deltas`` to members' scores; then keep at most ``cap`` top members (no ``deltas``: no change)."""

    @abc.abstractmethod
    def ztop(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        """The ``n`` highest ``(member, score)`` of each set, highest first (none for ``n <= 0``)."""

    @abc.abstractmethod
    def zscores(self, key: str, members: Sequence[str]) -> list[float | None]:
        """The score of each member, ``None`` where absent."""

    def zscores_many(self, requests: Mapping[str, Sequence[str]]) -> list[list[float | None]]:
        """:meth:`zscores` of several sets at once (one round trip on a network backend)."""
        return [self.zscores(key, members) for key, members in requests.items()]

    @functools.cached_property
    def members(self) -> MemberIds:
        """The ids that :meth:`zrows` and :meth:`zscores_of` number members with."""
        return MemberIds()

    def zrows(self, keys: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each whole set as ``(member ids, scores)`` arrays (ids of :attr:`members`), in no set order.

        The arrays are read-only and valid until the next write.
        """
        rows = []
        for entries in self.ztop(keys, WHOLE):
            ids = self.members.of([member for member, _ in entries])
            scores = np.fromiter((score for _, score in entries), float, len(entries))
            ids.flags.writeable = scores.flags.writeable = False
            rows.append((ids, scores))
        return rows

    def zscores_of(self, key: str, ids: np.ndarray) -> np.ndarray:
        """:meth:`zscores` of the members with these ids (of :attr:`members`); NaN where absent."""
        return np.array(self.zscores(key, self.members.names_of(ids.tolist())), dtype=float)

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
