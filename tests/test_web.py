"""The worker's web views wait for the store off the event loop, and give up."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
import redis

from streamreco.store.redis import RedisStore
from streams.web import from_store


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a Redis that hangs."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:  # the accept timed out: look at stop again
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


async def test_a_hung_store_times_out_while_the_event_loop_goes_on(silent_server: str) -> None:
    store = RedisStore(redis.Redis.from_url(silent_server, socket_timeout=3))
    reading = asyncio.create_task(from_store(store.get, ["sr:{u:u1}:latest"], timeout=1.0))
    ticks = 0
    while not reading.done():  # the loop's other work (heartbeats, fetches) in miniature
        await asyncio.sleep(0.05)
        ticks += 1
    with pytest.raises(TimeoutError):
        reading.result()
    assert ticks >= 10  # it kept running while the read waited
    store.close()


async def test_a_store_that_answers_is_read(redis_url: str, redis_client: redis.Redis) -> None:
    redis_client.set("test-web:k", b"v")
    try:
        assert await from_store(RedisStore.from_url(redis_url).get, ["test-web:k", "test-web:none"]) == [b"v", None]
    finally:
        redis_client.delete("test-web:k")
