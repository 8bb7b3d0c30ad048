"""Integration tests of the producers against the real broker: HTTP collector, SDK, replays."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.errors import KafkaTimeoutError

from producers.collector import PRODUCER, Limits, make_app
from producers.replay import produce_events, replay_movielens
from producers.sdk import DeliveryError, EventProducer
from producers.synthetic import ShopSimulation, run_synthetic
from streamreco import embedded
from streamreco.events import (
    CatalogEvent,
    InvalidEvent,
    ShopEvent,
    parse_catalog_event,
    parse_event,
)
from streamreco.settings import Settings
from tests.kafka_helpers import TopicReader

pytestmark = pytest.mark.integration

SettingsFactory = Callable[..., Settings]


def view(user: str, item: str, **extra: object) -> dict[str, object]:
    return {"type": "view", "user_id": user, "item_id": item, **extra}


@pytest.fixture
def settings(settings_factory: SettingsFactory) -> Settings:
    return settings_factory()


@pytest.fixture
def read_topic(settings: Settings) -> Iterator[Callable[[str, int], list]]:
    """``read_topic(topic, n)``: the records of ``topic`` once ``n`` are in, after a short wait."""
    readers: list[TopicReader] = []

    def read(topic: str, n: int) -> list:
        reader = TopicReader(settings, topic)
        readers.append(reader)
        reader.until(lambda records: len(records) >= n, timeout=20)
        extra = time.monotonic() + 0.5
        reader.until(lambda records: time.monotonic() > extra)
        return reader.records

    yield read
    for reader in readers:
        reader.close()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(settings, Limits(max_body=4096, max_events=5)))) as c:
        yield c


# --- the HTTP collector ----------------------------------------------------------------
async def test_a_batch_is_produced_keyed_by_user(
    client: TestClient, settings: Settings, read_topic
) -> None:
    batch = [view("u1", "i1", event_id="e1", ts=100.0), view("u2", "i2"), view("u1", "i3")]
    response = await client.post("/events", data=orjson.dumps(batch))
    assert response.status == 202
    assert await response.json() == {"accepted": 3, "rejected": []}

    records = read_topic(settings.events_topic, 3)
    events = {parse_event(r.value).item_id: (r.key, parse_event(r.value)) for r in records}
    assert len(records) == 3 and set(events) == {"i1", "i2", "i3"}
    assert [events[i][0] for i in ("i1", "i2", "i3")] == [b"u1", b"u2", b"u1"]
    assert (events["i1"][1].event_id, events["i1"][1].ts) == ("e1", 100.0)
    filled = events["i2"][1]  # the browser left out event_id and ts
    assert len(filled.event_id) == 32 and abs(filled.ts - time.time()) < 60


@pytest.mark.parametrize(
    "body", [view("u9", "i9"), {"events": [view("u9", "i9")]}], ids=["object", "wrapped"]
)
async def test_one_object_or_a_wrapped_list(
    client: TestClient, settings: Settings, read_topic, body
) -> None:
    response = await client.post("/events", json=body)
    assert (response.status, await response.json()) == (202, {"accepted": 1, "rejected": []})
    [record] = read_topic(settings.events_topic, 1)
    assert record.key == b"u9" and parse_event(record.value).item_id == "i9"


async def test_rejected_events_are_reported_by_index_and_not_sent(
    client: TestClient, settings: Settings, read_topic
) -> None:
    batch = [view("u1", "i1"), {"type": "view", "user_id": "u1"}, view("u2", "i2"), "click"]
    response = await client.post("/events", json=batch)
    body = await response.json()
    assert response.status == 207 and body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 3]
    assert "item_id" in body["rejected"][0]["error"] and "object" in body["rejected"][1]["error"]
    records = read_topic(settings.events_topic, 2)
    assert sorted(parse_event(r.value).item_id for r in records) == ["i1", "i2"]


async def test_a_batch_with_no_valid_event_is_refused(client: TestClient) -> None:
    response = await client.post("/events", json=[{"type": "view"}, view("u1", "i1", ts=-1)])
    body = await response.json()
    assert response.status == 400 and body["accepted"] == 0 and body["error"]
    assert [r["index"] for r in body["rejected"]] == [0, 1]
    assert "ts" in body["rejected"][1]["error"]


@pytest.mark.parametrize(
    ("payload", "status", "says"),
    [
        (b'{"type": "view",', 400, "JSON"),
        (b'"just a string"', 400, "expected"),
        (b"[]", 400, "no events"),
        (orjson.dumps([view("u", "i")] * 6), 413, "at most 5"),
        (orjson.dumps(view("u", "i", text="x" * 5000)), 413, "4096 bytes"),
    ],
    ids=["broken-json", "not-an-event", "empty", "too-many", "too-large"],
)
async def test_bad_requests_get_a_json_error(
    client: TestClient, payload: bytes, status: int, says: str
) -> None:
    response = await client.post("/events", data=payload)
    assert response.status == status
    assert says in (await response.json())["error"]


async def test_a_body_that_cannot_be_decoded_gets_a_json_error(client: TestClient) -> None:
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    response = await client.post("/events", data=orjson.dumps(view("u", "i")), headers=headers)
    assert response.status == 400
    assert "could not be decoded" in (await response.json())["error"]


async def test_forget_is_not_taken_from_browsers(client: TestClient) -> None:
    response = await client.post("/events", json=[{"type": "forget", "user_id": "someone-else"}])
    body = await response.json()
    assert response.status == 400 and body["accepted"] == 0
    assert "back end" in body["rejected"][0]["error"]


async def test_the_collector_pseudonymises_user_ids_before_they_reach_kafka(settings_factory, read_topic) -> None:
    settings = settings_factory(pseudonymise_key="shop-secret")
    async with TestClient(TestServer(make_app(settings))) as client:
        response = await client.post("/events", json=view("alice@example.com", "i1"))
        assert response.status == 202
    [record] = read_topic(settings.events_topic, 1)
    with EventProducer(settings) as sdk:  # the same pseudonym as the SDK's, so the worker takes it as it is
        expected = sdk._pseudonymise("alice@example.com")
    assert record.key == expected.encode() and parse_event(record.value).user_id == expected
    assert b"alice" not in record.value


class RefusingProducer:
    """Stands in for a broker that takes some records and not others (which is hard to make a real one do)."""

    def __init__(self, refused: set[str], unqueued: set[str]) -> None:
        self.refused, self.unqueued, self.taken = refused, unqueued, []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future:
        delivery = asyncio.get_running_loop().create_future()
        item = parse_event(value).item_id
        if item in self.unqueued:
            raise KafkaTimeoutError("buffer full")
        if item in self.refused:
            delivery.set_exception(KafkaTimeoutError("record expired"))
        else:
            self.taken.append(item)
            delivery.set_result(None)
        return delivery


@pytest.mark.parametrize(
    ("refused", "unqueued", "status", "accepted"),
    [({"i2"}, set(), 207, 2), (set(), {"i1"}, 207, 2), ({"i1", "i2"}, {"i3"}, 503, 0)],
)
async def test_each_event_the_broker_does_not_take_is_rejected_on_its_own(
    settings: Settings, refused: set[str], unqueued: set[str], status: int, accepted: int
) -> None:
    """A client sends again only the rejected events; a whole batch sent again would double the others."""
    app = make_app(settings)
    app.cleanup_ctx.clear()  # no real producer: this one refuses what it is told to
    app[PRODUCER] = producer = RefusingProducer(refused, unqueued)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/events", json=[view("u1", "i1"), view("u1", "i2"), "bad", view("u2", "i3")])
        body = await response.json()
    assert (response.status, body["accepted"]) == (status, accepted)
    broker_index = {"i1": 0, "i2": 1, "i3": 3}
    assert [r["index"] for r in body["rejected"]] == sorted([2, *(broker_index[i] for i in refused | unqueued)])
    assert all("broker did not take it" in r["error"] for r in body["rejected"] if r["index"] != 2)
    assert producer.taken == [i for i in ("i1", "i2", "i3") if i not in refused | unqueued]  # in order


async def test_health(client: TestClient) -> None:
    response = await client.get("/health")
    assert (response.status, await response.json()) == (200, {"status": "ok"})


async def test_browsers_on_another_origin_may_post(client: TestClient) -> None:
    preflight = await client.options(
        "/events",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
    )
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] in ("*", "https://shop.example")


# --- the SDK -----------------------------------------------------------------------------
def test_sdk_sends_valid_events_and_refuses_invalid_ones(settings: Settings, read_topic) -> None:
    with EventProducer(settings) as producer:
        producer.send(
            ShopEvent(event_id="e1", type="purchase", user_id="u1", item_id="i1", ts=5, value=9.5)
        )
        producer.send(
            {"event_id": "e2", "type": "search", "user_id": "u2", "ts": 6, "text": "red shoes"}
        )
        tracked = producer.track("add_to_cart", user_id="u3", item_id="i3", value=2)
        producer.send_catalog({"item_id": "i1", "ts": 4, "title": "Red shoes", "in_stock": False})
        with pytest.raises(InvalidEvent, match="item_id"):
            producer.send({"event_id": "e4", "type": "view", "user_id": "u4", "ts": 7})
        with pytest.raises(InvalidEvent, match="price"):
            producer.send_catalog({"item_id": "i2", "ts": 4, "price": -1})

    events = read_topic(settings.events_topic, 3)
    assert sorted((r.key, parse_event(r.value).event_id) for r in events) == [
        (b"u1", "e1"), (b"u2", "e2"), (b"u3", tracked.event_id)
    ]  # fmt: skip
    [item] = read_topic(settings.catalog_topic, 1)
    assert item.key == b"i1" and parse_catalog_event(item.value).in_stock is False


def test_sdk_pseudonymises_user_ids_before_they_reach_kafka(settings_factory, read_topic) -> None:
    settings = settings_factory(pseudonymise_key="shop-secret")
    with EventProducer(settings) as producer:
        producer.track("view", user_id="alice@example.com", item_id="i1")
    [record] = read_topic(settings.events_topic, 1)
    alias = parse_event(record.value).user_id
    assert record.key == alias.encode() and alias.startswith("p1:")
    assert b"alice" not in record.value


# --- replays -------------------------------------------------------------------------------
def test_produce_events_keeps_the_rate(settings: Settings, read_topic) -> None:
    events = [
        ShopEvent(event_id=f"e{k}", type="view", user_id="u1", item_id="i1", ts=k)
        for k in range(60)
    ]
    calls: list[tuple[int, int]] = []
    started = time.monotonic()
    sent = produce_events(settings, events, rate=200.0, progress=lambda *c: calls.append(c))
    took = time.monotonic() - started
    assert sent == 60 and calls[-1] == (60, 60)
    assert took >= 59 / 200
    records = read_topic(settings.events_topic, 60)
    assert [parse_event(r.value).event_id for r in records] == [
        f"e{k}" for k in range(60)
    ]  # one key: in order


def test_replay_movielens_sends_ratings_in_time_order(
    settings: Settings, read_topic, tmp_path: Path
) -> None:
    data = tmp_path / "u.data"
    data.write_text(
        "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n244\t51\t2\t880606923\n"
    )
    assert replay_movielens(settings, limit=3, path=data) == 3
    records = read_topic(settings.events_topic, 3)
    got = sorted((parse_event(r.value).ts, r.key, parse_event(r.value).value) for r in records)
    assert got == [
        (878887116.0, b"22", 1.0),
        (880606923.0, b"244", 2.0),
        (881250949.0, b"196", 3.0),
    ]
    with pytest.raises(ValueError, match="at least 0"):
        replay_movielens(settings, limit=-1, path=data)


def test_sdk_raises_for_events_the_broker_did_not_take(tmp_path: Path) -> None:
    broker = embedded.start_broker(log=tmp_path / "tansu.log")
    settings = Settings(kafka_bootstrap=broker.bootstrap, events_topic="deliveries")
    # kafka-python gives up on a record after 120 s by default; 3 s here
    producer = EventProducer(settings, delivery_timeout_ms=3000, request_timeout_ms=1000, max_block_ms=3000)
    try:
        producer.track("view", user_id="u1", item_id="i1")
        producer.flush()  # delivered
        broker.stop()
        producer.track("view", user_id="u1", item_id="i2")
        producer.track("view", user_id="u1", item_id="i3")
        with pytest.raises(DeliveryError, match="2 event") as raised:
            producer.flush()
        assert len(raised.value.failed) == 2
        producer.flush()  # each failure is raised once
    finally:
        broker.stop()
        producer.close(timeout=1)


def test_run_synthetic_fills_both_topics(settings: Settings, read_topic) -> None:
    changes = sum(isinstance(m, CatalogEvent) for m in ShopSimulation(30, 40, seed=5).events(2000))
    assert changes > 0
    assert run_synthetic(settings, n_events=2000, n_users=30, n_items=40, seed=5) == 2040
    catalog = read_topic(settings.catalog_topic, 40 + changes)
    assert len(catalog) == 40 + changes
    assert {f"i{k}".encode() for k in range(40)} <= {r.key for r in catalog}
    events = read_topic(settings.events_topic, 2000 - changes)
    assert len(events) == 2000 - changes
    assert all(r.key == parse_event(r.value).user_id.encode() for r in events)


def test_a_broker_is_not_started_on_a_port_something_else_listens_on() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(RuntimeError, match="is taken"):
        embedded.start_broker(port=taken.getsockname()[1])
