"""The Redis :class:`~streamreco.store.base.Store`: blobs are strings, scored sets are sorted sets.

Reads of many keys go out as one pipeline (one round trip); writes made inside
``with store.pipeline():`` go out as one ``MULTI``/``EXEC`` transaction, so a
batch of events changes Redis all at once or not at all: a transaction Redis
refuses (out of memory, a read-only replica, no permission) applies nothing.
Redis does not roll back, though, a command that fails while the transaction
runs: a key of another type where a sorted set is expected (written by someone
else under this namespace) fails its own command and leaves the others applied.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence

import redis

from streamreco.store.base import Store


#: Adds many increments to many sorted sets in one command, trimming each to its cap.
#: ARGV: five strings of packed little-endian numbers and bytes, so that a batch's thousand
#: increments are five arguments, not two thousand (each of which the client would encode
#: and the server parse): per key, its cap (0 = none) and its number of members; per member,
#: its increment as a double (no float formatting and parsing; a Lua number reaches ZINCRBY
#: as its exact shortest form) and its length in bytes; then the members, end to end.
_INCREMENTS = """
local caps, counts, increments, lengths, names = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local member, from = 0, 1
for at, key in ipairs(KEYS) do
  local cap = struct.unpack('<I4', caps, 4 * at - 3)
  for _ = 1, struct.unpack('<I4', counts, 4 * at - 3) do
    local size = struct.unpack('<I4', lengths, 4 * member + 1)
    redis.call('ZINCRBY', key, (struct.unpack('<d', increments, 8 * member + 1)), string.sub(names, from, from + size - 1))
    from = from + size
    member = member + 1
  end
  if cap > 0 and redis.call('ZCARD', key) > cap then redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1)) end
end
return #KEYS
"""


class RedisStore(Store):
    """A :class:`Store` on one Redis server (``redis://``, ``rediss://`` or ``unix://`` URL)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._batch: redis.client.Pipeline | None = None
        self._increments: list[tuple[str, Mapping[str, float], int | None]] = []

    @classmethod
    def from_url(cls, url: str, password: str | None = None, **options: object) -> RedisStore:
        """A store on the server at ``url``; ``options`` go to :class:`redis.Redis` (TLS files...)."""
        if password:
            options["password"] = password
        return cls(redis.Redis.from_url(url, socket_timeout=10, health_check_interval=30, **options))

    # writes go to the open transaction, or straight to the server
    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        if self._batch is not None:  # nested: the outer block sends
            yield
            return
        self._batch = self.client.pipeline(transaction=True)
        try:
            yield
            self._send_increments(self._batch)
            self._batch.execute()
        finally:
            self._batch = None
            self._increments.clear()

    def _send_increments(self, pipe: redis.client.Pipeline) -> None:
        if not self._increments:
            return
        keys, caps, counts, increments, names = [], [], [], [], []
        for key, deltas, cap in self._increments:
            keys.append(key)
            caps.append(cap or 0)
            counts.append(len(deltas))
            increments += deltas.values()
            names += map(str.encode, deltas)
        # EVAL, not EVALSHA: redis-py would ask SCRIPT EXISTS first, a round trip per batch, and
        # a NOSCRIPT inside MULTI/EXEC would leave the rest of the transaction applied
        pipe.eval(_INCREMENTS, len(keys), *keys, struct.pack(f"<{len(keys)}I", *caps),
                  struct.pack(f"<{len(keys)}I", *counts), struct.pack(f"<{len(names)}d", *increments),
                  struct.pack(f"<{len(names)}I", *map(len, names)), b"".join(names))
        self._increments.clear()

    @contextlib.contextmanager
    def _writer(self) -> Iterator[redis.client.Pipeline]:
        if self._batch is not None:
            yield self._batch
        else:
            pipe = self.client.pipeline(transaction=True)
            yield pipe
            pipe.execute()

    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        return self.client.mget(keys) if keys else []

    def put(self, values: Mapping[str, bytes]) -> None:
        if values:
            with self._writer() as pipe:
                pipe.mset(dict(values))

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            with self._writer() as pipe:
                self._send_increments(pipe)  # increments before a delete stay before it
                pipe.unlink(*keys)

    def zincr(self, key: str, deltas: Mapping[str, float], cap: int | None = None) -> None:
        if not deltas:
            return
        with self._writer() as pipe:
            self._increments.append((key, dict(deltas), cap))
            if pipe is not self._batch:
                self._send_increments(pipe)

    def ztop(self, keys: Sequence[str], n: int) -> list[list[tuple[str, float]]]:
        if n <= 0:  # ZREVRANGE 0 -1 would be the whole set
            return [[] for _ in keys]
        pipe = self.client.pipeline(transaction=False)
        for key in keys:  # not zrevrange(withscores=True): redis-py would turn RESP3's scores to bytes and back
            pipe.execute_command("ZREVRANGE", key, 0, n - 1, "WITHSCORES")
        return [_scored_members(reply) for reply in pipe.execute()]

    def zscores(self, key: str, members: Sequence[str]) -> list[float | None]:
        return self.client.zmscore(key, members) if members else []

    def zscores_many(self, requests: Mapping[str, Sequence[str]]) -> list[list[float | None]]:
        pipe = self.client.pipeline(transaction=False)
        for key, members in requests.items():
            if members:
                pipe.zmscore(key, members)
        answers = iter(pipe.execute())
        return [next(answers) if members else [] for members in requests.values()]

    def zremove(self, key: str, members: Iterable[str]) -> None:
        members = list(members)
        if members:
            with self._writer() as pipe:
                self._send_increments(pipe)
                pipe.zrem(key, *members)

    def scan(self, prefix: str) -> Iterator[str]:
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix)
        return (key.decode() for key in self.client.scan_iter(match=f"{escaped}*", count=1000))

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self.client.close()


def _scored_members(reply: list) -> list[tuple[str, float]]:
    """A ``WITHSCORES`` reply as ``[(member, score), ...]``: RESP3's pairs, or RESP2's flat list.

    >>> _scored_members([[b"a", 2.0], [b"b", 1.5]]), _scored_members([b"a", b"2", b"b", b"1.5"])
    ([('a', 2.0), ('b', 1.5)], [('a', 2.0), ('b', 1.5)])
    """
    if reply and isinstance(reply[0], list):
        return [(member.decode(), score) for member, score in reply]
    flat = iter(reply)
    return [(member.decode(), float(score)) for member, score in zip(flat, flat)]
