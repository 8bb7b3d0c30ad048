"""Stores for tests of writing behind: a real in-memory store whose transactions take a while."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from streamreco.store import MemoryStore


class SlowWrites(MemoryStore):
    """A MemoryStore whose transactions wait a little before they apply, so that a batch
    written behind is still in flight when the next one reads: a reader that does not wait
    for what it needs reads the state before it."""

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        time.sleep(0.001)
        yield
