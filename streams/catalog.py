"""Keeps item features, availability and the new arrivals in the store, from the catalog topic.

New arrivals are the in-stock items with a ``created_at``, newest first (the
:data:`NEW_ITEMS_KEPT` newest): what a list its model leaves short shows first.

>>> from streamreco.settings import Settings
>>> from streamreco.store import MemoryStore
>>> store = MemoryStore()
>>> catalog = CatalogProcessor(Settings(), store)
>>> gone = b'{"item_id": "i1", "ts": 5, "in_stock": false}'
>>> catalog.process([RawMessage(key=b"i1", value=gone)]).processed
1
>>> store.zscores("sr:unavailable", ["i1"])
[5.0]
"""

from __future__ import annotations

import orjson

from streamreco.events import parse_catalog_event
from streamreco.keys import Keys
from streamreco.settings import Settings
from streamreco.store import Store
from streams.processor import BatchResult, Publish, RawMessage, parsed

NEW_ITEMS_KEPT = 1000


class CatalogProcessor:
    """Applies item upserts and deletes; out-of-stock and deleted items become unavailable."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.keys = Keys(settings.namespace)
        self.store = store

    def process(self, messages: list[RawMessage], publish: Publish | None = None) -> BatchResult:
        """Apply a batch in one transaction; ``publish(result)`` is called before it is written."""
        result = BatchResult()
        keys, store = self.keys, self.store
        with store.pipeline():
            for item, _ in parsed(messages, parse_catalog_event, result):
                unavailable = item.op == "delete" or not item.in_stock
                store.zremove(keys.unavailable(), [item.item_id])
                if unavailable:
                    store.zincr(keys.unavailable(), {item.item_id: item.ts})
                store.zremove(keys.new_items(), [item.item_id])
                if item.op == "delete":
                    store.delete([keys.item(item.item_id)])
                else:
                    store.put({keys.item(item.item_id): orjson.dumps(item.model_dump(exclude={"v", "op"}))})
                    if item.created_at is not None and item.in_stock:  # new arrivals that can be shown
                        store.zincr(keys.new_items(), {item.item_id: item.created_at}, cap=NEW_ITEMS_KEPT)
                result.processed += 1
            if publish is not None:
                publish(result)
        return result
