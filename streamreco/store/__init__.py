"""State backends, chosen by URL scheme: ``memory://``, ``redis://``, ``rediss://``, ``unix://``.

>>> store = open_store("memory://")
>>> type(store).__name__
'MemoryStore'
"""

from __future__ import annotations

from streamreco.store.base import Store
from streamreco.store.batch import BatchStore
from streamreco.store.memory import MemoryStore

__all__ = ["BatchStore", "MemoryStore", "Store", "open_store"]


def open_store(url: str, password: str | None = None) -> Store:
    """The store a URL names."""
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        return MemoryStore()
    if scheme in {"redis", "rediss", "unix"}:
        from streamreco.store.redis import RedisStore

        return RedisStore.from_url(url, password)
    raise ValueError(f"no store for URL scheme {scheme!r} (use memory://, redis:// or rediss://)")
