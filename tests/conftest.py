"""Shared fixtures: a real Tansu broker and a real Redis for the whole session.

Each test gets its own topic names, consumer group and Redis namespace through
:func:`settings_factory`, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from bench.harness import WorkerProcess
from streamreco import embedded
from streamreco.settings import Settings


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.Broker]:
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with embedded.broker(log=log) as running:
        yield running


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with embedded.redis_server() as url:
        yield url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings_factory(
    broker: embedded.Broker, redis_url: str, redis_client: redis.Redis
) -> Iterator[Callable[..., Settings]]:
    """Settings for this test: its own topics, consumer group and Redis namespace."""
    namespaces: list[str] = []

    def make(**overrides: object) -> Settings:
        tag = uuid.uuid4().hex[:10]
        namespaces.append(f"t{tag}")
        values: dict[str, object] = {
            "kafka_bootstrap": broker.bootstrap,
            "redis_url": redis_url,
            "namespace": f"t{tag}",
            "app_id": f"streamreco-{tag}",
            "events_topic": f"events-{tag}",
            "catalog_topic": f"catalog-{tag}",
            "recommendations_topic": f"recommendations-{tag}",
            "dead_letter_topic": f"dead-letter-{tag}",
            "partitions": 2,
            "session_timeout": 6.0,
            "web_port": embedded.free_port(),
            "collector_port": embedded.free_port(),
        }
        values.update(overrides)
        return Settings(**values)

    yield make
    for namespace in namespaces:
        keys = list(redis_client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            redis_client.unlink(*keys)


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start workers for a test; every one is stopped when the test ends."""
    started: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
