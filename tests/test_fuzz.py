"""Bad input, fuzzed: every message is processed, dropped as a duplicate, or dead-lettered with a reason."""

from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from streamreco.settings import Settings
from streamreco.store import MemoryStore
from streams.processor import EventProcessor, RawMessage
from tests.kafka_helpers import produce

TYPES = ["view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating", "review", "search", "forget"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from([10**30, -1, 1e300, "x" * 5000]),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)


@st.composite
def events(draw: st.DrawFn) -> dict:
    """Mostly well-formed events with fields broken, removed or added at random."""
    event = {
        "event_id": draw(st.sampled_from(["e1", "e2", "e3"]) | st.text(min_size=1, max_size=10)),
        "type": draw(st.sampled_from(TYPES) | st.text(max_size=10)),
        "user_id": draw(st.sampled_from(["u1", "u2"]) | st.integers(0, 5)),
        "item_id": draw(st.sampled_from(["i1", "i2", "i3"])),
        "ts": draw(st.floats(0, 2e9) | st.sampled_from([-1.0, 1e12, math.inf])),
        "value": draw(st.none() | st.floats(0, 5)),
        "text": draw(st.none() | st.text(max_size=30)),
    }
    for field in draw(st.lists(st.sampled_from(sorted(event)), max_size=2)):
        if draw(st.booleans()):
            event.pop(field, None)
        else:
            event[field] = draw(json_values)
    if draw(st.booleans()):
        event[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return {k: v for k, v in event.items() if v is not None or draw(st.booleans())}


def encoded(event: dict) -> bytes:
    return json.dumps(event, allow_nan=True).encode()


raw_bytes = st.binary(max_size=200) | st.sampled_from([b"", b"null", b"[]", b'"x"', b"\xff\xfe", b"{" * 1000])
messages = st.lists(
    st.one_of(events().map(encoded), raw_bytes, st.builds(lambda v: json.dumps(v).encode(), json_values)),
    min_size=1, max_size=30,
)


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=messages)
def test_every_message_is_accounted_for_exactly_once(values: list[bytes]) -> None:
    processor = EventProcessor(Settings(), MemoryStore())
    batch = []
    for n, value in enumerate(values):
        try:
            user = json.loads(value)["user_id"]
            key = str(user).encode()
        except Exception:  # noqa: BLE001 - anything: the key does not matter for garbage
            key = b"u1"
        batch.append(RawMessage(key, value, "events", 0, n))
    result = processor.process(batch)
    rekeyed = len(result.rekeyed)
    assert result.processed + result.duplicates + len(result.dead_letters) + rekeyed == len(values)
    assert all(d.reason for d in result.dead_letters)
    assert len({id(d.message) for d in result.dead_letters}) == len(result.dead_letters)
    for rec in result.lists:
        assert len(rec.items) <= 10 and all(math.isfinite(i.score) for i in rec.items)


def test_memory_stays_bounded_however_long_a_user_lives() -> None:
    store = MemoryStore()
    processor = EventProcessor(Settings(history_size=20), store)
    for start in range(0, 5_000, 500):
        processor.process([
            RawMessage(b"u", encoded({"event_id": f"e{n}", "type": "view", "user_id": "u",
                                       "item_id": f"i{n % 300}", "ts": 1e9 + n}), "events", 0, n)
            for n in range(start, start + 500)
        ])
    processor.settle()
    (profile,) = store.get(["sr:{u:u}:profile"])
    assert len(profile) < 20_000  # history, recent ids capped; seen items grow only with the catalogue


@pytest.mark.integration
def test_the_worker_balances_its_books_on_fuzzed_input_through_the_broker(settings_factory, worker_factory):
    """sent = processed + duplicates + dead-lettered, counted by the running worker."""
    settings = settings_factory()
    worker = worker_factory(settings)
    worker.wait_ready()
    sent: list[tuple[bytes | None, bytes]] = []

    @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(values=messages)
    def collect(values: list[bytes]) -> None:
        for value in values:
            try:
                key = str(json.loads(value)["user_id"]).encode()
            except Exception:  # noqa: BLE001 - garbage has no user
                key = None
            sent.append((key, value))

    collect()
    sent += [(b"u1", encoded({"event_id": "dup", "type": "view", "user_id": "u1", "item_id": "i1", "ts": 5}))] * 3
    produce(settings, settings.events_topic, sent)

    def balanced() -> bool:
        h = worker.health()
        return h.get("events_processed", 0) + h.get("duplicates", 0) + h.get("dead_lettered", 0) == len(sent)

    deadline = time.monotonic() + 60
    while not balanced():
        assert time.monotonic() < deadline, (worker.health(), len(sent))
        assert worker.process.poll() is None
        time.sleep(0.3)
    health = worker.health()
    assert health["duplicates"] >= 2 and health["dead_lettered"] > 0 and health["events_processed"] > 0
