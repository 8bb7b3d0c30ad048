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


def open_store(url: str, **redis_options: str) -> Store:
    """The store a URL names.

    ``redis_options`` go to :class:`redis.Redis` for a Redis URL: the AUTH
    ``username`` and ``password`` and the TLS files ``ssl_ca_certs``,
    ``ssl_certfile``, ``ssl_keyfile`` (``rediss://`` only), as
    :meth:`streamreco.settings.Settings.redis_options` gives them. Credentials
    inside the URL win over these. ``memory://`` needs none.
    """
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        return MemoryStore()
    if scheme in {"redis", "rediss", "unix"}:
        from streamreco.store.redis import RedisStore

        return RedisStore.from_url(url, **redis_options)
    raise ValueError(f"no store for URL scheme {scheme!r} (use memory://, redis:// or rediss://)")
