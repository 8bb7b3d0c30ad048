"""The batch processor on its own: pure logic over an in-memory store.

The store's transactions take a millisecond (:class:`~tests.store_helpers.SlowWrites`), so
that each batch is written while the next is computed, as in the worker; a test reading
the store itself settles the processor first."""

from __future__ import annotations

import concurrent.futures
import json
import time

import pytest

from online_models import Profile
from streamreco.events import NEWCOMERS
from streamreco.settings import Settings
from streamreco.store import MemoryStore
from streams.catalog import CatalogProcessor
from streams.processor import EventProcessor, RawMessage
from tests.store_helpers import SlowWrites


def message(event_id: str, type_: str, user: str, item: str | None = None, key: bytes | None = None, **extra):
    body = {"event_id": event_id, "type": type_, "user_id": user, "ts": 1000.0, **extra}
    if item is not None:
        body["item_id"] = item
    return RawMessage(key=user.encode() if key is None else key, value=json.dumps(body).encode())


@pytest.fixture
def store():
    return SlowWrites()


def crowd(processor: EventProcessor) -> None:
    processor.process([
        message(f"c{u}{i}", "view", f"crowd{u}", i) for u in range(4) for i in ("tent", "stove", "lamp")
    ])


def test_one_list_per_user_per_batch_reflects_all_of_the_users_events(store):
    processor = EventProcessor(Settings(), store)
    crowd(processor)
    result = processor.process([message("a1", "view", "ann", "tent"), message("a2", "view", "ann", "stove")])
    rec, newcomers = result.lists  # ann's first interaction changed the newcomers' list
    assert rec.user_id == "ann" and rec.caused_by == "a2" and result.processed == 2
    assert [i.item_id for i in rec.items][:1] == ["lamp"]
    assert newcomers.user_id == NEWCOMERS and newcomers.caused_by == "a1"
    # the crowd all began with the tent, and so did ann
    assert newcomers.items[0].item_id == "tent" and newcomers.items[0].reason == "popular_with_new_users"


def test_one_list_per_event_when_not_coalescing(store):
    processor = EventProcessor(Settings(coalesce_lists=False), store)
    result = processor.process([message("a1", "view", "ann", "tent"), message("a2", "view", "ann", "stove")])
    assert [(r.user_id, r.caused_by) for r in result.lists] == [("ann", "a1"), (NEWCOMERS, "a1"), ("ann", "a2")]


def test_state_is_written_once_per_batch_and_read_back(store):
    processor = EventProcessor(Settings(), store)
    processor.process([message("a1", "purchase", "ann", "tent")])
    processor.settle()
    (blob,) = store.get(["sr:{u:ann}:profile"])
    profile = Profile.decode("ann", blob)
    assert profile.purchased == {"tent"} and profile.n_events == 1
    (latest,) = store.get(["sr:{u:ann}:latest"])
    assert json.loads(latest)["caused_by"] == "a1"


def test_events_not_keyed_by_user_are_sent_round_again(store):
    processor = EventProcessor(Settings(), store)
    result = processor.process([message("a1", "view", "ann", "tent", key=b"")])
    assert result.processed == 0 and result.lists == []
    assert result.rekeyed == [(b"ann", message("a1", "view", "ann", "tent").value)]


def test_invalid_events_become_dead_letters_with_reasons(store):
    processor = EventProcessor(Settings(), store)
    raw = [RawMessage(b"u", b"[1, 2]"), message("x", "rating", "u", "i")]
    result = processor.process(raw)
    assert [d.message for d in result.dead_letters] == raw
    assert "expected a JSON object" in result.dead_letters[0].reason
    assert "value: a 'rating' event needs a value" in result.dead_letters[1].reason


class FailingOnce(MemoryStore):
    def __init__(self):
        super().__init__()
        self.fail = True

    def put(self, values):
        if self.fail:
            self.fail = False
            raise ConnectionError("redis went away")
        super().put(values)


def test_a_failed_batch_changes_nothing_and_its_retry_applies_once():
    store = FailingOnce()
    processor = EventProcessor(Settings(write_behind=False), store)
    batch = [message("a1", "view", "ann", "tent")]
    with pytest.raises(ConnectionError):
        processor.process(batch)
    assert store.get(["sr:{u:ann}:profile"]) == [None]
    assert store.ztop(["sr:counts"], 5) == [[]]
    processor.process(batch)
    assert Profile.decode("ann", store.get(["sr:{u:ann}:profile"])[0]).n_events == 1
    assert processor.quality.scored == 1


def test_the_output_is_published_before_the_write_and_a_failed_write_publishes_the_same_again():
    store = FailingOnce()
    store.fail = False
    processor = EventProcessor(Settings(write_behind=False), store)
    crowd(processor)
    store.fail = True
    published, profiles_then = [], []

    def publish(result):
        published.append([(r.user_id, [i.item_id for i in r.items]) for r in result.lists])
        profiles_then.append(store.get(["sr:{u:ann}:profile"])[0])

    batch = [message("a1", "view", "ann", "tent"), message("b1", "view", "bob", "stove")]
    with pytest.raises(ConnectionError):
        processor.process(batch, publish)
    result = processor.process(batch, publish)
    assert len(published) == 2 and published[0] == published[1] and published[1][0][1][:1] == ["stove"]
    assert profiles_then == [None, None]  # each time before the batch's state was written
    assert Profile.decode("ann", store.get(["sr:{u:ann}:profile"])[0]).n_events == 1
    assert [(r.user_id, [i.item_id for i in r.items]) for r in result.lists] == published[1]


class FailingOnceSlowly(SlowWrites, FailingOnce):
    """Transactions that take a while, the first of which fails."""


def test_a_batch_whose_write_behind_fails_is_applied_again_before_the_next_one():
    store = FailingOnceSlowly()
    store.fail = False
    processor = EventProcessor(Settings(), store)
    crowd(processor)
    processor.settle()
    store.fail = True
    published = []
    result = processor.process([message("a1", "view", "ann", "tent")], published.append)
    # the next batch is computed before the failure is known; its write waits for the one before
    with pytest.raises(ConnectionError):
        processor.process([message("a2", "view", "ann", "stove")], published.append)
    assert isinstance(result.written.exception(), ConnectionError)
    assert store.get(["sr:{u:ann}:profile"]) == [None] and store.zscores("sr:counts", ["tent"]) == [4.0]
    # tried again: the failed batch is applied first (not published again), then the next
    processor.process([message("a2", "view", "ann", "stove")], published.append)
    processor.settle()
    caused_by = [r.caused_by for done in published for r in done.users_lists()]
    assert caused_by[0] == "a1" and set(caused_by[1:]) == {"a2"}  # (a2 maybe twice: once per try)
    profile = Profile.decode("ann", store.get(["sr:{u:ann}:profile"])[0])
    assert [item for item, _, _ in profile.history] == ["tent", "stove"]
    assert store.zscores("sr:counts", ["tent", "stove"]) == [5.0, 5.0]
    assert processor.quality.scored == 12 + 2  # each event scored once


def test_settling_applies_a_failed_write_behind_when_no_batch_follows():
    store = FailingOnceSlowly()
    processor = EventProcessor(Settings(), store)
    result = processor.process([message("a1", "view", "ann", "tent")])
    processor.settle()
    assert isinstance(result.written.exception(), ConnectionError)
    assert Profile.decode("ann", store.get(["sr:{u:ann}:profile"])[0]).n_events == 1


class RefusingSlowly(SlowWrites):
    """Transactions that take a while, refused (applying nothing) while ``refuse`` is set."""

    refuse = False

    def put(self, values):
        if self.refuse:
            raise RuntimeError("writes refused")
        super().put(values)


def test_a_batch_whose_write_fails_for_good_is_told_and_can_be_dropped():
    store = RefusingSlowly()
    processor = EventProcessor(Settings(), store)
    processor.process([message("a1", "view", "ann", "tent")])
    processor.settle()
    assert not processor.write_failed()
    store.refuse = True
    result = processor.process([message("a2", "view", "ann", "stove")])
    concurrent.futures.wait([result.written])
    assert processor.write_failed()
    with pytest.raises(RuntimeError):  # the last batch's error, raised by the next (applying it first)
        processor.process([message("a3", "view", "bob", "lamp")])
    assert processor.write_failed()  # (what the worker asks before it blames the next batch)
    store.refuse = False
    processor.drop_unwritten()  # (the worker dead-letters it)
    assert not processor.write_failed()
    processor.process([message("a3", "view", "bob", "lamp")])
    processor.settle()
    ann = Profile.decode("ann", store.get(["sr:{u:ann}:profile"])[0])
    assert [item for item, _, _ in ann.history] == ["tent"]
    assert store.zscores("sr:counts", ["tent", "stove", "lamp"]) == [1.0, None, 1.0]


def test_live_quality_scores_each_event_against_the_list_shown_before_it(store):
    processor = EventProcessor(Settings(), store)
    crowd(processor)
    processor.process([message("a1", "view", "ann", "tent")])
    processor.settle()
    shown = Profile.decode("ann", store.get(["sr:{u:ann}:profile"])[0]).shown
    before = processor.quality.scored
    processor.process([message("a2", "view", "ann", shown[0])])
    assert processor.quality.scored == before + 1
    assert processor.quality.hr > 0


def test_catalogue_changes_make_items_unavailable_and_back(store):
    catalog = CatalogProcessor(Settings(), store)
    out = {"item_id": "lamp", "ts": 5, "in_stock": False, "created_at": 1}
    catalog.process([RawMessage(b"lamp", json.dumps(out).encode())])
    assert store.zscores("sr:unavailable", ["lamp"]) == [5.0]
    catalog.process([RawMessage(b"lamp", json.dumps({**out, "in_stock": True}).encode())])
    assert store.zscores("sr:unavailable", ["lamp"]) == [None]
    assert store.zscores("sr:new", ["lamp"]) == [1.0]
    catalog.process([RawMessage(b"lamp", json.dumps({"op": "delete", "item_id": "lamp", "ts": 9}).encode())])
    assert store.zscores("sr:unavailable", ["lamp"]) == [9.0] and store.get(["sr:item:lamp"]) == [None]
    bad = catalog.process([RawMessage(b"x", b'{"item_id": "x"}')])
    assert "ts" in bad.dead_letters[0].reason


def at(offset: int, raw: RawMessage, partition: int = 0) -> RawMessage:
    return RawMessage(raw.key, raw.value, "events", partition, offset)


def test_a_redelivered_batch_changes_no_state_and_publishes_the_stored_lists_again(store):
    processor = EventProcessor(Settings(), store)
    batch = [at(0, message("a1", "view", "ann", "tent")), at(1, message("a2", "view", "ann", "stove"))]
    first = processor.process(batch)
    processor.settle()
    state = dict(store._blobs), {k: dict(v) for k, v in store._sets.items()}
    again = processor.process(batch)  # the worker died before the offsets were committed
    processor.settle()
    assert (dict(store._blobs), {k: dict(v) for k, v in store._sets.items()}) == state
    assert again.processed == 0
    assert [r.model_dump() for r in again.lists] == [r.model_dump() for r in first.lists]
    later = processor.process([at(1, message("a2", "view", "ann", "stove")), at(2, message("a3", "view", "ann", "lamp"))])
    assert later.processed == 1  # only the new offset is applied
    processor.settle()
    assert Profile.decode("ann", store.get(["sr:{u:ann}:profile"])[0]).n_events == 3


def test_an_event_id_sent_twice_by_the_producer_is_applied_once(store):
    processor = EventProcessor(Settings(), store)
    result = processor.process([at(0, message("a1", "view", "ann", "tent")), at(1, message("a1", "view", "ann", "tent"))])
    assert (result.processed, result.duplicates) == (1, 1)
    processor.settle()
    assert Profile.decode("ann", store.get(["sr:{u:ann}:profile"])[0]).n_events == 1


def test_forget_deletes_everything_held_about_the_user_and_unpublishes_the_list(store):
    processor = EventProcessor(Settings(), store)
    crowd(processor)
    processor.process([message("a1", "purchase", "ann", "tent"), message("a2", "view", "ann", "stove")])
    processor.settle()
    assert list(store.scan("sr:{u:ann}:"))
    result = processor.process([message("a3", "view", "ann", "lamp"), message("a4", "forget", "ann")])
    processor.settle()
    assert list(store.scan("sr:{u:ann}:")) == []
    assert result.tombstones == [b"ann"] and [r.user_id for r in result.lists] == []
    for blob in store._blobs.values():  # no other key mentions the user either
        assert b"ann" not in blob
    again = processor.process([message("a5", "view", "ann", "tent")])  # a new start
    processor.settle()
    assert Profile.decode("ann", store.get(["sr:{u:ann}:profile"])[0]).history == [("tent", 1000.0, 1.0)]
    assert again.lists[0].caused_by == "a5"


def test_forget_leaves_users_whose_id_begins_with_the_forgotten_ones_keys(store):
    processor = EventProcessor(Settings(), store)
    crowd(processor)
    processor.process([message("b1", "view", "bob", "tent"), message("b2", "view", "bob}:x", "stove")])
    processor.settle()
    assert store.get(["sr:{u:bob}:x}:profile"]) != [None]  # its key begins with bob's prefix
    result = processor.process([message("b3", "forget", "bob")])
    processor.settle()
    assert result.tombstones == [b"bob"]
    assert store.get(["sr:{u:bob}:profile", "sr:{u:bob}:latest"]) == [None, None]
    kept = Profile.decode("bob}:x", store.get(["sr:{u:bob}:x}:profile"])[0])
    assert kept.history == [("stove", 1000.0, 1.0)] and store.get(["sr:{u:bob}:x}:latest"]) != [None]


def test_user_ids_are_pseudonymised_before_anything_is_stored_or_published(store):
    processor = EventProcessor(Settings(pseudonymise_key="k"), store)
    result = processor.process([message("a1", "view", "alice@example.com", "tent")])
    assert result.lists == [] and result.processed == 0  # keyed by the raw id: re-keyed first
    ((key, value),) = result.rekeyed
    assert key.startswith(b"p1:") and b"alice" not in value
    final = processor.process([RawMessage(key, value)])
    processor.settle()
    assert final.lists[0].user_id == key.decode()
    assert not any(b"alice" in k.encode() or b"alice" in v for k, v in store._blobs.items())


def test_a_partial_redelivery_does_not_move_the_applied_offset_back(store):
    processor = EventProcessor(Settings(), store)
    views = [at(n, message(f"a{n}", "view", "ann", f"i{n}")) for n in range(13)]
    processor.process(views[:10])
    assert processor.process(views[:5]).processed == 0  # redelivered from the last commit
    assert processor.process(views[5:]).processed == 3  # 10, 11, 12 are new; 5..9 are not
    processor.settle()
    assert Profile.decode("ann", store.get(["sr:{u:ann}:profile"])[0]).n_events == 13


def test_a_topic_that_started_over_is_new_input_not_a_redelivery(store):
    processor = EventProcessor(Settings(), store)
    old = [RawMessage(b"ann", message(f"a{n}", "view", "ann", "tent").value, "events", 0, n, time.time() - 60)
           for n in range(5)]
    processor.process(old)
    fresh = [RawMessage(b"bob", message("b0", "view", "bob", "lamp").value, "events", 0, 0, time.time() + 5)]
    assert processor.process(fresh).processed == 1
    processor.settle()
    assert store.zscores("sr:offsets:events", ["0"]) == [0.0]


class ReadCountingStore(MemoryStore):
    """Counts the read calls that reach the store: one per round trip on Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, keys):  # noqa: ANN001
        self.reads += 1
        return super().get(keys)

    def ztop(self, keys, n):  # noqa: ANN001
        self.reads += 1
        return super().ztop(keys, n)

    def zscores_many(self, requests):  # noqa: ANN001
        self.reads += 1
        return [MemoryStore.zscores(self, key, members) for key, members in requests.items()]

    def zscores(self, key, members):  # noqa: ANN001
        self.reads += 1
        return super().zscores(key, members)


@pytest.mark.parametrize("reuse_seconds", [0.0, 60.0])
def test_a_batch_reads_in_a_few_round_trips_however_many_users_it_has(reuse_seconds):
    def reads_for(users: int) -> tuple[int, list]:
        store = ReadCountingStore()
        processor = EventProcessor(Settings(reuse_seconds=reuse_seconds), store)
        history = [
            message(f"h{u}-{k}", "view", f"u{u}", f"i{(u * 7 + k) % 40}") for u in range(users) for k in range(5)
        ]
        processor.process(history)
        store.reads = 0
        result = processor.process([message(f"n{u}", "click", f"u{u}", f"i{u % 40}") for u in range(users)])
        return store.reads, result.lists

    few, few_lists = reads_for(3)
    many, many_lists = reads_for(60)
    assert len(many_lists) == 60 and all(rec.items for rec in many_lists)
    # not one more round trip per user (a batch whose lists run short reads the popular items once)
    assert many <= 10 and abs(many - few) <= 1
