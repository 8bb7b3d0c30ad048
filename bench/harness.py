"""Running the real pipeline under test and benchmark: worker processes, streams, state checks.

Used by the integration and fault tests and by ``bench/reliability.py``.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import redis
from kafka import KafkaProducer

from online_models import Profile
from streamreco.embedded import stop_process
from streamreco.settings import Settings
from streamreco.store import MemoryStore
from streams.processor import EventProcessor, RawMessage

State = tuple[dict[str, bytes], dict[str, dict[str, float]]]


def shop_stream(n: int, users: int = 400, items: int = 120, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """``n`` view/cart/purchase events, keyed by user, with skewed item popularity."""
    rng = random.Random(seed)
    types = ["view"] * 8 + ["add_to_cart", "purchase"]
    stream = []
    for k in range(n):
        user = f"u{rng.randrange(users)}"
        item = f"i{min(int(rng.paretovariate(1.1)) - 1, items - 1)}"
        body = {"event_id": f"f{seed}-{k}", "type": rng.choice(types), "user_id": user,
                "item_id": item, "ts": 1_700_000_000 + k}
        stream.append((user.encode(), json.dumps(body).encode()))
    return stream


def produce_all(settings: Settings, stream: list[tuple[bytes, bytes]]) -> dict[int, int]:
    """Produce the stream; the last offset written to each partition."""
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_servers, acks="all", linger_ms=5, **settings.kafka_client_options()
    )
    futures = [producer.send(settings.events_topic, key=k, value=v) for k, v in stream]
    producer.flush()
    last: dict[int, int] = {}
    for future in futures:
        meta = future.get(30)
        last[meta.partition] = max(meta.offset, last.get(meta.partition, -1))
    producer.close()
    return last


def fault_free_state(settings: Settings, stream: list[tuple[bytes, bytes]]) -> State:
    """What the state must be: the same events through the processor, in memory, no faults."""
    store = MemoryStore()
    processor = EventProcessor(settings, store)
    for start in range(0, len(stream), 500):
        processor.process([RawMessage(k, v) for k, v in stream[start : start + 500]])
    processor.settle()
    return dict(store._blobs), {key: dict(members) for key, members in store._sets.items()}


def redis_state(client: redis.Redis, namespace: str) -> State:
    blobs, sets = {}, {}
    for raw_key in client.scan_iter(match=f"{namespace}:*", count=1000):
        key = raw_key.decode()
        if client.type(raw_key) == b"zset":
            sets[key] = {m.decode(): s for m, s in client.zrange(raw_key, 0, -1, withscores=True)}
        else:
            blobs[key] = client.get(raw_key)
    return blobs, sets


def applied_offsets(client: redis.Redis, settings: Settings) -> dict[int, int]:
    rows = client.zrange(f"{settings.namespace}:offsets:{settings.events_topic}", 0, -1, withscores=True)
    return {int(member): int(score) for member, score in rows}


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached after {timeout}s")
        time.sleep(0.2)


def assert_same_state(expected: State, actual: State, namespace: str) -> None:
    """Profiles equal event for event; counters equal up to float summation order."""
    blobs, sets = expected
    got_blobs, got_sets = actual
    profiles = {k for k in blobs if k.endswith(":profile")}
    assert profiles == {k for k in got_blobs if k.endswith(":profile")}
    for key in profiles:
        want, got = Profile.decode("", blobs[key]), Profile.decode("", got_blobs[key])
        assert (got.history, got.seen, got.purchased, got.n_events, got.recent_events) == (
            want.history, want.seen, want.purchased, want.n_events, want.recent_events
        ), key
    offsets_prefix = f"{namespace}:offsets"  # offsets and offsets-at: the bookkeeping of redelivery
    counters = {k for k in sets if not k.startswith(offsets_prefix)}
    assert counters == {k for k in got_sets if not k.startswith(offsets_prefix)}
    for key in counters:
        assert sets[key].keys() == got_sets[key].keys(), key
        for member, score in sets[key].items():
            assert math.isclose(got_sets[key][member], score, rel_tol=1e-9), (key, member)


def lost_and_doubled(expected: State, actual: State) -> tuple[int, int]:
    """Events missing from, and events applied twice in, each user's profile, summed."""
    lost = doubled = 0
    for key, blob in expected[0].items():
        if key.endswith(":profile"):
            want = Profile.decode("", blob).n_events
            got_blob = actual[0].get(key)
            got = Profile.decode("", got_blob).n_events if got_blob else 0
            lost += max(0, want - got)
            doubled += max(0, got - want)
    return lost, doubled


def total_events(state: State) -> int:
    return sum(Profile.decode("", b).n_events for k, b in state[0].items() if k.endswith(":profile"))


class WorkerProcess:
    """A worker child process (``python -m <module> [worker]``) with its own settings and log file."""

    #: Seconds a SIGTERM'd worker is given before it is killed.
    stop_grace = 20.0

    def __init__(self, settings: Settings, log: Path, module: str = "streamreco.cli") -> None:
        self.settings = settings
        self.log = log
        self.module = module
        env = {**os.environ, **settings.to_env()}
        self.process = subprocess.Popen(
            [sys.executable, "-m", module] + (["worker"] if module == "streamreco.cli" else []),
            env=env,
            stdout=open(log, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def health(self) -> dict:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read())
        except (OSError, ValueError):
            return {}

    def ready(self, health: dict) -> bool:
        """Whether ``health`` shows partitions assigned and Redis answering."""
        return health.get("status") == "ok"

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until :meth:`ready`, or fail with the end of the worker's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            if self.ready(self.health()):
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        stop_process(self.process, grace=self.stop_grace)
