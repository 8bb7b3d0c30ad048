"""The HTTP collector under fuzzed requests: always a clear 2xx/4xx, never a crash, books balance."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.collector import Limits, make_app
from streamreco.embedded import free_port
from tests.kafka_helpers import TopicReader

pytestmark = pytest.mark.integration

LIMITS = Limits(max_body=64 * 1024, max_events=50)


@pytest.fixture
def collector(settings_factory) -> Iterator[tuple[str, object]]:
    """A real collector on a free port, served from a thread of its own."""
    config = settings_factory(collector_port=free_port())
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(config, LIMITS))
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", config.collector_port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{config.collector_port}/events", config
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
anything = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
event = st.fixed_dictionaries(
    {"type": st.sampled_from(["view", "purchase", "search", "nap"]), "user_id": st.sampled_from(["u1", "u2"]) | leaf},
    optional={"item_id": st.text(max_size=5) | leaf, "ts": st.floats() | leaf, "text": leaf, "extra": anything},
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.lists(event, max_size=60).map(lambda v: json.dumps(v).encode()),
    event.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda v: json.dumps({"events": v}).encode(), st.lists(event, max_size=5)),
    anything.map(lambda v: json.dumps(v).encode()),
    st.just(b"[" + b'{"type":"view","user_id":"u","item_id":"i"},' * 3000 + b"{}]"),  # over the body limit
)


def test_every_request_gets_a_clear_answer_and_the_books_balance(collector):
    url, config = collector
    accepted = 0

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies)
    def fuzz(body: bytes) -> None:
        nonlocal accepted
        status, answer = post(url, body)
        assert status in (202, 207, 400, 413), (status, answer)
        if status in (202, 207):
            accepted += answer["accepted"]
            assert all(r["error"] for r in answer["rejected"])
        else:
            assert answer["error"]

    fuzz()
    reader = TopicReader(config, config.events_topic)
    reader.until(lambda records: len(records) >= accepted, timeout=30)
    settle = time.monotonic() + 1.0
    reader.until(lambda records: time.monotonic() > settle)  # and no more than that
    assert len(reader.records) == accepted  # everything accepted arrived, nothing else did
    reader.close()
