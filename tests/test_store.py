"""One contract suite for every store backend: memory, Redis, and the write-behind batch."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamreco.store import BatchStore, MemoryStore, Store, open_store
from streamreco.store.base import WHOLE
from tests.store_helpers import SlowWrites


class FlushingBatch(BatchStore):
    """A BatchStore whose every write is flushed at once, to run the contract through it."""

    def _flushed(self, method: str, *args: object) -> None:
        getattr(BatchStore, method)(self, *args)
        self.flush()

    def put(self, values):  # noqa: ANN001
        self._flushed("put", values)

    def delete(self, keys):  # noqa: ANN001
        self._flushed("delete", list(keys))

    def zincr(self, key, deltas, cap=None):  # noqa: ANN001
        self._flushed("zincr", key, deltas, cap)

    def zremove(self, key, members):  # noqa: ANN001
        self._flushed("zremove", key, list(members))


@pytest.fixture(params=["memory", "redis", "batch"])
def store(request: pytest.FixtureRequest) -> Iterator[tuple[Store, str]]:
    prefix = f"test{uuid.uuid4().hex[:8]}:"
    if request.param == "memory":
        yield MemoryStore(), prefix
    elif request.param == "batch":
        yield FlushingBatch(MemoryStore()), prefix
    else:
        redis_store = open_store(request.getfixturevalue("redis_url"))
        yield redis_store, prefix
        redis_store.delete(list(redis_store.scan(prefix)))
        redis_store.close()


def test_blobs_round_trip_and_delete(store):
    s, p = store
    s.put({p + "a": b"1", p + "b": b"\x00\xff"})
    assert s.get([p + "a", p + "b", p + "missing"]) == [b"1", b"\x00\xff", None]
    s.delete([p + "a"])
    assert s.get([p + "a"]) == [None]


def test_scored_sets_increment_rank_and_cap(store):
    s, p = store
    s.zincr(p + "z", {"x": 1.0, "y": 2.5})
    s.zincr(p + "z", {"x": 2.0, "w": 0.5})
    assert s.ztop([p + "z"], 2) == [[("x", 3.0), ("y", 2.5)]]
    assert s.zscores(p + "z", ["w", "nope"]) == [0.5, None]
    s.zincr(p + "z", {"v": 0.1}, cap=2)
    assert s.ztop([p + "z"], 10) == [[("x", 3.0), ("y", 2.5)]]
    s.zremove(p + "z", ["x"])
    assert s.ztop([p + "z", p + "empty"], 10) == [[("y", 2.5)], []]


def test_increments_add_up_to_the_last_bit(store):
    """Every store adds an increment as one double addition, whatever the double: Redis gets
    the increments packed as doubles, not printed and parsed."""
    s, p = store
    increments = [0.1, 0.2, 1 / 3, 0.7**19, -2.5e10, 1e-300, 5e-324, 2.0**-1074 * 3, 123456.789e-3]
    total = 0.0
    with s.pipeline():
        for delta in increments:
            s.zincr(p + "exact", {"m": delta, "n": -delta})
    for delta in increments:
        total += delta
    assert s.zscores(p + "exact", ["m", "n"]) == [total, -total]


def test_ties_are_ranked_like_redis(store):
    s, p = store
    s.zincr(p + "t", {"a": 1.0, "c": 1.0, "b": 1.0})
    assert [m for m, _ in s.ztop([p + "t"], 2)[0]] == ["c", "b"]


def test_a_top_of_nothing_is_empty(store):
    s, p = store
    s.zincr(p + "z", {"x": 1.0})
    assert s.ztop([p + "z", p + "empty"], 0) == [[], []]


#: Members of one and of several bytes (UTF-8), which Redis receives packed end to end.
MEMBERS = ["m", "né", "o", "päär", "q", "🎬 r"]

set_operations = st.lists(
    st.tuples(
        st.sampled_from(["incr", "incr", "incr", "remove", "delete"]),
        st.sampled_from(["a", "b"]),
        st.dictionaries(st.sampled_from(MEMBERS), st.sampled_from([-1.0, 0.5, 1.0, 2.0]), min_size=1, max_size=4),
        st.sampled_from([None, 1, 2, 3]),  # cap
    ),
    max_size=40,
)


@given(ops=set_operations, in_one_transaction=st.booleans())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_memory_store_ranks_and_trims_as_redis_does(redis_url, ops, in_one_transaction):
    """Redis is the reference: the same writes leave the same members, scores and order (ties, caps),
    whether each goes on its own or all go as one transaction (their increments in one command)."""
    memory, redis_store = MemoryStore(), open_store(redis_url)
    prefix = f"test{uuid.uuid4().hex[:8]}:"
    keys = [prefix + "a", prefix + "b"]

    def same() -> None:
        assert memory.ztop(keys, 10) == redis_store.ztop(keys, 10)
        assert memory.ztop(keys, 2) == redis_store.ztop(keys, 2)
        for key in keys:
            assert memory.zscores(key, MEMBERS) == redis_store.zscores(key, MEMBERS)

    try:
        with redis_store.pipeline() if in_one_transaction else contextlib.nullcontext():
            for op, key, deltas, cap in ops:
                for s in (memory, redis_store):
                    if op == "incr":
                        s.zincr(prefix + key, deltas, cap=cap)
                    elif op == "remove":
                        s.zremove(prefix + key, list(deltas))
                    else:
                        s.delete([prefix + key])
                if not in_one_transaction:
                    same()
        same()
    finally:
        redis_store.delete(list(redis_store.scan(prefix)))
        redis_store.close()


def test_the_memory_store_refuses_a_score_that_is_not_a_number():
    store = MemoryStore()
    store.zincr("z", {"m": float("inf"), "n": 1.0})
    with pytest.raises(ValueError, match="not be a number"):
        store.zincr("z", {"m": float("-inf")})
    assert store.ztop(["z"], 3) == [[("m", float("inf")), ("n", 1.0)]]


def test_a_removed_member_restarts_from_zero(store):
    s, p = store
    s.zincr(p + "r", {"m": 5.0})
    s.zremove(p + "r", ["m"])
    s.zincr(p + "r", {"m": 1.0})
    assert s.zscores(p + "r", ["m"]) == [1.0]


def test_scan_finds_keys_by_prefix(store):
    s, p = store
    s.put({p + "k1": b"1"})
    s.zincr(p + "k2", {"m": 1.0})
    assert sorted(s.scan(p)) == [p + "k1", p + "k2"]


def test_a_batch_reads_its_own_writes_before_the_flush():
    inner = MemoryStore()
    inner.zincr("z", {"old": 2.0, "gone": 9.0})
    batch = BatchStore(inner)
    batch.zincr("z", {"old": 1.0, "new": 2.5})
    batch.zremove("z", ["gone"])
    batch.put({"k": b"v"})
    assert batch.ztop(["z"], 5) == [[("old", 3.0), ("new", 2.5)]]
    assert batch.get(["k"]) == [b"v"] and inner.get(["k"]) == [None]
    assert inner.ztop(["z"], 5) == [[("gone", 9.0), ("old", 2.0)]]
    batch.flush()
    assert inner.ztop(["z"], 5) == [[("old", 3.0), ("new", 2.5)]]
    assert inner.get(["k"]) == [b"v"]


class GatedWrites(MemoryStore):
    """A MemoryStore whose transactions wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        self.gate.wait()
        yield


def test_a_batch_written_behind_is_read_from_memory_where_known_and_after_it_is_applied_otherwise():
    inner = GatedWrites()
    inner.put({"other": b"0"})
    batch = BatchStore(inner, write_behind=True)
    batch.put({"profile": b"1"})
    batch.zremove("offsets", ["0", "1"])
    batch.zincr("offsets", {"0": 5.0})
    batch.zincr("counts", {"x": 1.0})
    batch.zincr("row", {"x": 1.0}, cap=5)
    outcome = batch.flush()
    # in flight: blobs and members removed are known exactly; what it does not change is read
    assert batch.get(["profile", "other"]) == [b"1", b"0"]
    assert batch.zscores("offsets", ["0", "1"]) == [5.0, None]
    assert batch.zscores("elsewhere", ["x"]) == [None] and batch.zscores("counts", ["y"]) == [None]
    assert not outcome.done() and inner.get(["profile"]) == [None]
    # a member it increments is read once it is applied
    assert read_once_applied(batch, inner, "counts", ["x"]) == [1.0] and outcome.result() is None
    # any member of a set trimmed to a cap may go, even one removed and set again
    inner.gate.clear()
    batch.zincr("row", {"z": 1.0}, cap=1)
    batch.zremove("row", ["x"])
    batch.zincr("row", {"x": 0.5}, cap=1)
    batch.flush()
    assert read_once_applied(batch, inner, "row", ["x"]) == [None]


def read_once_applied(batch: BatchStore, inner: GatedWrites, key: str, members: list[str]) -> list:
    """``batch.zscores(key, members)``, checked to wait while ``inner`` holds the write back."""
    read = concurrent.futures.ThreadPoolExecutor(1).submit(batch.zscores, key, members)
    waiting = concurrent.futures.wait([read], timeout=0.2).not_done == {read}
    inner.gate.set()
    assert waiting
    return read.result()


class FailingWrites(MemoryStore):
    def pipeline(self):
        raise ConnectionError("redis went away")


def test_a_failed_write_behind_raises_on_the_next_flush_and_from_its_outcome():
    batch = BatchStore(FailingWrites(), write_behind=True)
    batch.zincr("counts", {"x": 1.0})
    outcome = batch.flush()
    batch.zincr("counts", {"y": 1.0})
    with pytest.raises(ConnectionError):
        batch.flush()
    assert isinstance(outcome.exception(), ConnectionError)


def test_a_discarded_batch_writes_nothing():
    inner = MemoryStore()
    batch = BatchStore(inner)
    batch.put({"k": b"v"})
    batch.zincr("z", {"m": 1.0})
    batch.discard()
    batch.flush()
    assert inner.get(["k"]) == [None] and inner.ztop(["z"], 1) == [[]]


def test_unknown_store_url_is_a_clear_error():
    with pytest.raises(ValueError, match="no store for URL scheme 'mongodb'"):
        open_store("mongodb://x")


class CountingStore(MemoryStore):
    """A MemoryStore that counts the scored-set reads that reach it."""

    reads = 0

    def ztop(self, keys, n):  # noqa: ANN001
        self.reads += 1
        return super().ztop(keys, n)

    def zscores(self, key, members):  # noqa: ANN001
        self.reads += 1
        return super().zscores(key, members)


operations = st.lists(
    st.tuples(
        st.sampled_from(["incr", "incr", "top", "scores", "rows", "scores_of", "flush", "remove", "delete",
                         "put", "get"]),
        st.sampled_from(["r:a", "r:b", "other"]),  # "r:" sets are reusable
        st.dictionaries(st.sampled_from("mnopqrst"), st.floats(0.125, 4.0), min_size=1, max_size=4),
        st.integers(1, 6),
    ),
    max_size=60,
)


@pytest.mark.parametrize("write_behind", [False, True], ids=["written-at-once", "written-behind"])
@given(ops=operations)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_reused_reads_are_those_of_the_store_itself(ops, write_behind):
    """A single writer that keeps its reads across batches (and writes them behind, while the
    next batch reads) reads exactly what a fresh reader of the flushed writes would."""
    truth = MemoryStore()  # every flushed write, applied at once
    reusing = BatchStore(SlowWrites() if write_behind else truth, reusable=lambda key: key.startswith("r:"),
                         reuse_seconds=3600, write_behind=write_behind)
    writes: list[tuple[str, str, dict]] = []  # this batch's, replayed on a fresh reader
    for op, key, deltas, n in ops:
        fresh = BatchStore(truth)  # reads the flushed writes now; the pending batch is in `reusing`
        for write in writes:
            _write(fresh, *write)
        if op in ("incr", "remove", "delete", "put"):
            _write(reusing, op, key, deltas)
            writes.append((op, key, deltas))
        elif op == "get":
            assert reusing.get([f"blob:{key}"]) == fresh.get([f"blob:{key}"])
        elif op == "top":
            assert reusing.ztop([key], n) == fresh.ztop([key], n)
        elif op == "scores":
            assert reusing.zscores(key, list(deltas)) == fresh.zscores(key, list(deltas))
        elif op == "rows":  # the whole set, as a flush will leave it (trimmed to the cap)
            ((ids, scores),) = reusing.zrows([key])
            whole = fresh.ztop([key], 2 if key == "r:b" else WHOLE)[0]
            assert sorted(zip(reusing.members.names_of(ids.tolist()), scores.tolist())) == sorted(whole)
        elif op == "scores_of":
            scores = reusing.zscores_of(key, reusing.members.of(list(deltas)))
            assert [None if s != s else s for s in scores.tolist()] == fresh.zscores(key, list(deltas))
        else:
            reusing.flush()
            if write_behind:  # the same writes, applied at once
                flushed = BatchStore(truth)
                for write in writes:
                    _write(flushed, *write)
                flushed.flush()
            writes.clear()
    reusing.settle()


def _write(store: Store, op: str, key: str, deltas: dict) -> None:
    if op == "incr":
        store.zincr(key, deltas, cap=2 if key == "r:b" else None)
    elif op == "remove":
        store.zremove(key, list(deltas))
    elif op == "put":  # a blob beside each set
        store.put({f"blob:{key}": repr(sorted(deltas.items())).encode()})
    else:
        store.delete([key, f"blob:{key}"])


def test_kept_reads_spare_the_store_and_expire():
    inner = CountingStore()
    inner.zincr("r:row", {"a": 1.0, "b": 2.0})
    batch = BatchStore(inner, reusable=lambda key: key.startswith("r:"), reuse_seconds=0.2)
    assert batch.ztop(["r:row"], 5) == [[("b", 2.0), ("a", 1.0)]]
    assert batch.zscores("r:row", ["a", "z"]) == [1.0, None]
    batch.zincr("r:row", {"a": 5.0, "z": 1.0})
    assert batch.ztop(["r:row"], 5) == [[("a", 6.0), ("b", 2.0), ("z", 1.0)]]
    batch.flush()
    reads = inner.reads
    # kept, with its own writes applied
    assert batch.ztop(["r:row"], 5) == [[("a", 6.0), ("b", 2.0), ("z", 1.0)]]
    assert batch.zscores("r:row", ["a", "z"]) == [6.0, 1.0]
    assert inner.reads == reads
    inner.zincr("r:row", {"c": 9.0})  # another writer
    time.sleep(0.25)
    batch.flush()  # the next batch: the kept read has expired
    assert batch.ztop(["r:row"], 5)[0][0] == ("c", 9.0)
    assert inner.reads == reads + 1


def test_a_deleted_set_reads_empty_even_where_a_read_was_kept():
    inner = MemoryStore()
    batch = BatchStore(inner, reusable=lambda key: True, reuse_seconds=3600)
    batch.zincr("r:a", {"m": 1.0})
    batch.flush()
    assert batch.zscores("r:a", ["m"]) == [1.0]  # kept for the next batches
    batch.delete(["r:a"])
    assert batch.zscores("r:a", ["m"]) == [None]
    assert batch.ztop(["r:a"], 3) == [[]]
    batch.zincr("r:a", {"m": 2.0})
    assert batch.zscores("r:a", ["m"]) == [2.0]
    batch.flush()
    assert batch.zscores("r:a", ["m"]) == inner.zscores("r:a", ["m"]) == [2.0]


def test_a_top_holding_the_whole_set_spares_reading_members_new_to_it():
    inner = CountingStore()
    inner.zincr("row", {"a": 1.0, "b": 2.0, "c": 0.5})
    whole, cut = BatchStore(inner), BatchStore(inner)
    assert whole.ztop(["row"], 4) == [[("b", 2.0), ("a", 1.0), ("c", 0.5)]]  # fewer than asked: all
    assert cut.ztop(["row"], 2) == [[("b", 2.0), ("a", 1.0)]]  # as many as asked: maybe not all
    whole.zincr("row", {"new": 3.0, "a": 0.5})
    cut.zincr("row", {"c": 1.0})
    reads = inner.reads
    assert whole.ztop(["row"], 4) == [[("new", 3.0), ("b", 2.0), ("a", 1.5), ("c", 0.5)]]
    assert inner.reads == reads  # "new" cannot be in the store: not asked for
    assert cut.ztop(["row"], 2) == [[("b", 2.0), ("c", 1.5)]]
    assert inner.reads == reads + 1  # "c" may be: read


@pytest.mark.parametrize("reusable", [None, lambda key: False])
def test_reads_not_kept_are_read_again_by_the_next_batch(reusable):
    """A set read (and not changed) in one batch is read afresh in the next unless its reads may be kept."""
    inner = MemoryStore()
    inner.zincr("row", {"a": 1.0})
    batch = BatchStore(inner, reusable=reusable, reuse_seconds=3600)
    assert batch.ztop(["row"], 3) == [[("a", 1.0)]]
    batch.flush()
    inner.zincr("row", {"b": 2.0})  # another writer
    assert batch.ztop(["row"], 3) == [[("b", 2.0), ("a", 1.0)]]


def test_held_rows_and_scores_are_what_the_store_holds_after_each_flush():
    """Arrays held across batches follow the batch's increments and the store's trim to the cap, ties by name."""
    inner = MemoryStore()
    batch = BatchStore(inner, reusable=lambda key: True, reuse_seconds=3600)
    batch.zincr("row", {"m": 1.0, "n": 2.0, "o": 3.0}, cap=2)
    ((ids, scores),) = batch.zrows(["row"])  # held from now on: in the batch, as the flush will trim it
    assert sorted(zip(batch.members.names_of(ids.tolist()), scores.tolist())) == [("n", 2.0), ("o", 3.0)]
    counts = batch.members.of(["m", "o", "x"])
    batch.zincr("count", {"m": 1.0})
    assert batch.zscores_of("count", counts).tolist()[0] == 1.0
    for _ in range(3):
        batch.flush()
        ((ids, scores),) = batch.zrows(["row"])
        assert sorted(zip(batch.members.names_of(ids.tolist()), scores.tolist())) == sorted(inner.ztop(["row"], 9)[0])
        held = batch.zscores_of("count", counts).tolist()
        assert [None if s != s else s for s in held] == inner.zscores("count", ["m", "o", "x"])
        batch.zincr("row", {"a": 2.0, "z": 2.0}, cap=2)  # first "a" and "z" tie with "n": "z" stays
        batch.zincr("count", {"m": 1.0, "o": 2.0})


def test_an_empty_increment_changes_nothing_not_even_the_trim(store):
    backend, prefix = store
    backend.zincr(f"{prefix}row", {"a": 3.0, "b": 2.0, "c": 1.0})
    backend.zincr(f"{prefix}row", {}, cap=1)
    assert backend.ztop([f"{prefix}row"], 5) == [[("a", 3.0), ("b", 2.0), ("c", 1.0)]]


def test_a_top_read_after_a_removal_still_holds_n_members():
    inner = MemoryStore()
    inner.zincr("row", {"a": 3.0, "b": 2.0, "c": 1.0})
    batch = BatchStore(inner)
    batch.zremove("row", ["b"])
    assert batch.ztop(["row"], 2) == [[("a", 3.0), ("c", 1.0)]]


def test_scores_known_before_a_batch_add_its_increments_as_the_store_does():
    """base + (d1 + d2), the store's own sum, not (base + d1) + d2: equal to the last bit."""
    inner = MemoryStore()
    batch = BatchStore(inner, reusable=lambda key: True, reuse_seconds=3600)
    batch.zincr("set", {"n": 0.1})
    batch.flush()
    assert batch.zscores("set", ["n"]) == [0.1]
    batch.zincr("set", {"n": 0.2})
    batch.zincr("set", {"n": 0.3})
    read = batch.zscores("set", ["n"])
    batch.flush()
    assert read == inner.zscores("set", ["n"]) == [0.1 + (0.2 + 0.3)]
