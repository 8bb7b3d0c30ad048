"""The whole pipeline, end to end: a real worker process, a real broker, a real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import pytest

from online_models import Profile
from streamreco.embedded import free_port
from streamreco.events import NEWCOMERS
from tests.kafka_helpers import TopicReader, event_json, produce

pytestmark = pytest.mark.integration


def lists_caused_by(event_id: str):
    return lambda records: any(json.loads(r.value)["caused_by"] == event_id for r in records)


def test_an_event_goes_in_and_a_refreshed_list_comes_out_within_a_second(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)
    worker.wait_ready()
    reader = TopicReader(settings, settings.recommendations_topic)
    # warm-up: the first event also creates the topics' producer connections
    produce(settings, settings.events_topic, [(b"u0", event_json("warm", "view", "u0", "i0"))])
    reader.until(lists_caused_by("warm"))

    history = [("u1", "i1"), ("u2", "i1"), ("u2", "i2"), ("u3", "i1"), ("u3", "i2"), ("u3", "i3")]
    produce(
        settings,
        settings.events_topic,
        [(u.encode(), event_json(f"h{n}", "view", u, i)) for n, (u, i) in enumerate(history)],
    )
    reader.until(lists_caused_by("h5"))

    sent = time.time()
    produce(settings, settings.events_topic, [(b"u1", event_json("fresh", "view", "u1", "i1"))])
    reader.until(lists_caused_by("fresh"), timeout=5)
    record = next(r for r in reader.records if json.loads(r.value)["caused_by"] == "fresh")
    published = json.loads(record.value)
    assert record.timestamp / 1000 - sent < 1.0
    assert record.key == b"u1"
    assert published["user_id"] == "u1" and published["event_ts"] > 0
    items = [entry["item_id"] for entry in published["items"]]
    assert items[0] == "i2"  # bought together with i1 by two other users
    assert "i1" not in items  # already seen
    assert published["items"][0]["reason"] == "similar_to:i1"

    with urllib.request.urlopen(f"{worker.url}/recommendations/u1", timeout=5) as response:
        assert json.loads(response.read())["caused_by"] == "fresh"
    reader.close()


@pytest.mark.parametrize("store", ["redis", "memory://"])
def test_purchased_and_out_of_stock_items_are_never_recommended(settings_factory, worker_factory, store):
    settings = settings_factory(exclude_seen=False, **({} if store == "redis" else {"redis_url": store}))
    worker = worker_factory(settings)
    worker.wait_ready()
    reader = TopicReader(settings, settings.recommendations_topic)
    crowd = [(f"c{n}", item) for n in range(5) for item in ("bike", "helmet", "lock", "pump")]
    produce(settings, settings.events_topic,
            [(u.encode(), event_json(f"c{k}", "view", u, i)) for k, (u, i) in enumerate(crowd)])
    reader.until(lists_caused_by(f"c{len(crowd) - 1}"))

    produce(settings, settings.events_topic, [
        (b"buyer", event_json("b1", "view", "buyer", "bike")),
        (b"buyer", event_json("b2", "purchase", "buyer", "helmet")),
    ])
    reader.until(lists_caused_by("b2"))
    latest = [v for v in reader.values() if v["user_id"] == "buyer"][-1]
    items = [entry["item_id"] for entry in latest["items"]]
    assert "helmet" not in items
    assert "bike" in items  # seen but not bought: allowed with exclude_seen=False
    assert "lock" in items

    out_of_stock = json.dumps({"item_id": "lock", "ts": time.time(), "in_stock": False}).encode()
    produce(settings, settings.catalog_topic, [(b"lock", out_of_stock)])
    deadline = time.monotonic() + 10
    n = 0
    while True:  # the catalogue is its own stream: wait until the change is applied
        n += 1
        produce(settings, settings.events_topic, [(b"buyer", event_json(f"b3-{n}", "view", "buyer", "pump"))])
        reader.until(lists_caused_by(f"b3-{n}"))
        latest = [v for v in reader.values() if v["caused_by"] == f"b3-{n}"][-1]
        items = [entry["item_id"] for entry in latest["items"]]
        if "lock" not in items or time.monotonic() > deadline:
            break
    assert "lock" not in items and "helmet" not in items
    # the web views read the state the events wrote (with memory://, the very same store)
    with urllib.request.urlopen(f"{worker.url}/recommendations/buyer", timeout=5) as response:
        assert json.loads(response.read())["caused_by"] == f"b3-{n}"
    reader.close()


def test_invalid_events_go_to_the_dead_letter_topic_and_the_worker_goes_on(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)
    worker.wait_ready()
    bad = [
        (b"u1", b"{this is not json"),
        (b"u1", json.dumps({"event_id": "x1", "type": "teleport", "user_id": "u1", "ts": 1}).encode()),
        (b"u1", json.dumps({"event_id": "x2", "type": "purchase", "user_id": "u1", "ts": 1}).encode()),
        (b"u1", b"\xff\xfe\x00 not utf-8"),
    ]
    produce(settings, settings.events_topic, bad + [(b"u1", event_json("ok", "view", "u1", "i1"))])
    dead = TopicReader(settings, settings.dead_letter_topic)
    dead.until(lambda records: len(records) >= len(bad))
    assert [r.value for r in dead.records] == [value for _, value in bad]
    reasons = [dict(r.headers)["x-streamreco-reason"].decode() for r in dead.records]
    assert "not valid JSON" in reasons[0]
    assert "type" in reasons[1] and "teleport" in reasons[1]
    assert "item_id" in reasons[2]
    assert reasons[3]
    recs = TopicReader(settings, settings.recommendations_topic)
    recs.until(lists_caused_by("ok"))
    assert worker.process.poll() is None
    health = worker.health()
    assert health["dead_lettered"] == len(bad) and health["events_processed"] == 1
    dead.close()
    recs.close()


def test_unkeyed_events_are_rekeyed_by_user_and_processed(settings_factory, worker_factory):
    settings = settings_factory()
    worker_factory(settings).wait_ready()
    produce(settings, settings.events_topic, [(None, event_json("nokey", "view", "u9", "i1"))])
    recs = TopicReader(settings, settings.recommendations_topic)
    recs.until(lists_caused_by("nokey"))
    # the user's own list, keyed by the user; and, as u9 is new, the newcomers' list
    assert {r.key for r in recs.records if json.loads(r.value)["caused_by"] == "nokey"} == {b"u9", b""}
    recs.close()


def test_two_workers_share_the_partitions_and_process_every_event_once(
    settings_factory, worker_factory, redis_client
):
    settings = settings_factory(partitions=4)
    first = worker_factory(settings)
    second = worker_factory(settings.model_copy(update={"web_port": free_port()}))
    first.wait_ready()
    second.wait_ready()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the second join triggers a rebalance
        shares = [first.health().get("assigned_partitions", 0), second.health().get("assigned_partitions", 0)]
        if all(shares) and first.health().get("status") == "ok":
            break
        time.sleep(0.3)
    assert all(shares), shares

    users = [f"user{n}" for n in range(40)]
    events = [(u, f"e{u}-{k}", f"item{(n + k) % 15}") for n, u in enumerate(users) for k in range(5)]
    produce(settings, settings.events_topic,
            [(u.encode(), event_json(eid, "view", u, item)) for u, eid, item in events])
    recs = TopicReader(settings, settings.recommendations_topic)
    last_ids = {f"e{u}-4" for u in users}
    recs.until(lambda records: last_ids <= {json.loads(r.value)["caused_by"] for r in records}, timeout=60)

    processed = [first.health()["events_processed"], second.health()["events_processed"]]
    assert sum(processed) == len(events)
    assert all(processed), processed  # both did work
    for user in users:  # each event applied exactly once to its user's state
        blob = redis_client.get(f"{settings.namespace}:{{u:{user}}}:profile")
        assert Profile.decode(user, blob).n_events == 5
    counts = Counter(json.loads(r.value)["user_id"] for r in recs.records)
    assert set(counts) == {*users, NEWCOMERS}
    recs.close()


def test_forget_removes_everything_about_a_user_within_seconds(settings_factory, worker_factory, redis_client):
    settings = settings_factory()
    worker = worker_factory(settings)
    worker.wait_ready()
    produce(settings, settings.events_topic, [
        (b"gone", event_json("g1", "view", "gone", "i1")),
        (b"gone", event_json("g2", "purchase", "gone", "i2")),
        (b"stays", event_json("s1", "view", "stays", "i1")),
    ])
    recs = TopicReader(settings, settings.recommendations_topic)
    recs.until(lambda records: {"g2", "s1"} <= {json.loads(r.value)["caused_by"] for r in records if r.value})
    assert list(redis_client.scan_iter(match=f"{settings.namespace}:{{u:gone}}:*"))

    env = {**os.environ, **settings.to_env()}
    done = subprocess.run([sys.executable, "-m", "streamreco.cli", "forget", "gone"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    started = time.monotonic()
    recs.until(lambda records: any(r.key == b"gone" and r.value is None for r in records), timeout=10)
    assert time.monotonic() - started < 5
    assert list(redis_client.scan_iter(match=f"{settings.namespace}:{{u:gone}}:*")) == []
    for key in redis_client.scan_iter(match=f"{settings.namespace}:*"):
        if redis_client.type(key) == b"string":
            assert b"gone" not in redis_client.get(key)
    assert list(redis_client.scan_iter(match=f"{settings.namespace}:{{u:stays}}:*"))
    with urllib.request.urlopen(f"{worker.url}/recommendations/gone", timeout=5) as response:
        answer = json.loads(response.read())  # a stranger now: shown what newcomers are
    assert answer["user_id"] == NEWCOMERS and answer["items"][0]["reason"] == "popular_with_new_users"
    recs.close()


def test_the_input_topics_get_the_configured_partitions(settings_factory, worker_factory):
    from kafka import KafkaConsumer

    settings = settings_factory(partitions=2)
    worker_factory(settings).wait_ready()
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers)
    try:
        assert len(consumer.partitions_for_topic(settings.events_topic)) == 2
        assert len(consumer.partitions_for_topic(settings.catalog_topic)) == 2
    finally:
        consumer.close()
