"""The worker's Prometheus metrics: from a real worker, and the dashboard that reads them."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaConsumer
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from producers.collector import RequestMetrics
from streamreco.settings import Settings
from streams.metrics import WorkerMetrics
from streams.processor import BatchResult, RawMessage
from streams.web import BrokerProbe
from streams.worker import build_worker
from tests.kafka_helpers import event_json, produce

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "streamreco.json"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\bstreamreco_[a-zA-Z0-9_]+")
SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """``GET url/metrics`` as {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(response.read().decode())


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def exported_names(*registries: CollectorRegistry) -> set[str]:
    """Every sample name the registries can export, children or not."""
    return {
        family.name + suffix
        for registry in registries for family in registry.collect()
        for suffix in SAMPLE_SUFFIXES.get(family.type, ("",))
    }


def unknown_metrics(expressions: list[str], known: set[str]) -> list[str]:
    return sorted({name for expr in expressions for name in METRIC.findall(expr)} - known)


def dashboard_expressions(dashboard: dict) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


KNOWN = exported_names(WorkerMetrics(Settings()).registry, RequestMetrics().registry)


# --- the dashboard and the alert rules read only what the processes export --------------


def test_the_dashboard_reads_only_exported_metrics_and_shows_the_essentials() -> None:
    expressions = dashboard_expressions(json.loads(DASHBOARD.read_text()))
    assert unknown_metrics(expressions, KNOWN) == []
    shown = {name for expr in expressions for name in METRIC.findall(expr)}
    assert {"streamreco_consumer_lag", "streamreco_events_processed_total", "streamreco_freshness_seconds_bucket",
            "streamreco_dead_letters_total", "streamreco_online_hr"} <= shown


def test_a_misspelt_metric_in_the_dashboard_is_caught() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard["panels"][0]["targets"][0]["expr"] = "sum(streamreco_consumer_lags)"
    assert unknown_metrics(dashboard_expressions(dashboard), KNOWN) == ["streamreco_consumer_lags"]


def test_the_alert_rules_read_only_exported_metrics() -> None:
    import yaml

    rules = [r["expr"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert len(rules) >= 3
    assert unknown_metrics(rules, KNOWN) == []


# --- the metric functions, without a worker -------------------------------------------


def test_a_batch_is_counted_by_type_and_its_lists_measured_from_the_record_timestamps() -> None:
    from streamreco.events import RecommendationList

    metrics = WorkerMetrics(Settings())
    now = time.time()
    messages = [RawMessage(b"u1", b"", "events", 0, 7, timestamp=now - 2.0),
                RawMessage(b"u1", b"", "events", 0, 8, timestamp=now - 1.0),  # u1's latest event
                RawMessage(b"u2", b"", "events", 1, 3, timestamp=now - 1.0)]
    fresh = RecommendationList(user_id="u1", items=[], model="blend", generated_at=now, caused_by="e", event_ts=0)
    resent = fresh.model_copy(update={"user_id": "u2", "generated_at": now - 60})  # a stored list sent again
    result = BatchResult(lists=[fresh, resent], processed=3, by_type={"view": 2, "purchase": 1}, duplicates=1)
    metrics.observe_batch("events", messages, result, seconds=0.003)
    metrics.observe_published("events", messages, result, started=now - 0.5, publishing=0.2, acknowledged=now - 0.1)

    assert metrics.value("streamreco_events_processed_total", stream="events", type="view") == 2
    assert metrics.value("streamreco_events_processed_total", stream="events", type="purchase") == 1
    assert metrics.value("streamreco_duplicates_total", stream="events") == 1
    assert metrics.value("streamreco_lists_published_total") == 2
    assert metrics.value("streamreco_event_processing_seconds_sum", stream="events") == pytest.approx(0.001)
    assert metrics.value("streamreco_publish_seconds_sum", stream="events") == pytest.approx(0.2)
    assert metrics.value("streamreco_freshness_seconds_count") == 1  # the re-sent list is not measured
    # both end when the broker acknowledged the lists (not when the batch's state was written)
    assert metrics.value("streamreco_batch_seconds_sum", stream="events") == pytest.approx(0.4)
    assert metrics.value("streamreco_freshness_seconds_sum") == pytest.approx(0.9)
    assert metrics.value("streamreco_freshness_seconds_bucket", le="0.5") == 0  # from u1's last event: ~1 s
    assert metrics.value("streamreco_freshness_seconds_bucket", le="2.5") == 1
    assert metrics.processed_offsets == {("events", 0): 9, ("events", 1): 4}


def test_every_garbage_collection_pause_is_timed_by_generation() -> None:
    import gc

    metrics = WorkerMetrics(Settings())
    before = metrics.value("streamreco_gc_pause_seconds_count", generation="2") or 0
    gc.collect()
    gc.collect()
    assert metrics.value("streamreco_gc_pause_seconds_count", generation="2") == before + 2
    assert metrics.value("streamreco_gc_pause_seconds_sum", generation="2") > 0


# --- against the real broker -----------------------------------------------------------


@pytest.mark.integration
async def test_lag_is_the_high_watermark_minus_the_next_offset_to_process(settings_factory) -> None:
    settings = settings_factory()
    topic = settings.events_topic
    produce(settings, topic, [(f"u{n}".encode(), b"x") for n in range(40)])
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # metadata
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[int, int] = {}
        deadline = time.monotonic() + 20
        while sum(ends.values()) < 40 and time.monotonic() < deadline:  # fetches set the high watermarks
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                ends[tp.partition] = max(ends.get(tp.partition, 0), records[-1].offset + 1)
        metrics = WorkerMetrics(settings)
        busiest = max(ends, key=ends.get)
        metrics.observe_batch("events", [RawMessage(b"u", b"", topic, busiest, 4)], BatchResult(), 0.0)
        await metrics.sample_lag(consumer, {topic})
        assert metrics.value("streamreco_consumer_lag", topic=topic, partition=str(busiest)) == ends[busiest] - 5
        others = [p for p in ends if p != busiest]  # nothing processed there: lag from the position
        assert all(metrics.value("streamreco_consumer_lag", topic=topic, partition=str(p)) == 0 for p in others)
    finally:
        await consumer.stop()


class Assigned:
    """A consumer's assignment and high watermarks, as :meth:`WorkerMetrics.sample_lag` reads them."""

    def __init__(self, highwaters: dict[TopicPartition, int]) -> None:
        self.highwaters = highwaters

    def assignment(self) -> set[TopicPartition]:
        return set(self.highwaters)

    def highwater(self, tp: TopicPartition) -> int:
        return self.highwaters[tp]

    async def position(self, tp: TopicPartition) -> int:
        return 0


async def test_a_revoked_partition_loses_its_lag_series_and_its_offset() -> None:
    metrics = WorkerMetrics(Settings())
    one, two = TopicPartition("events", 0), TopicPartition("events", 1)
    metrics.observe_batch("events", [RawMessage(b"u", b"", "events", 1, 9)], BatchResult(), 0.0)
    await metrics.sample_lag(Assigned({one: 5, two: 30}), {"events"})
    assert metrics.value("streamreco_consumer_lag", topic="events", partition="1") == 20
    await metrics.sample_lag(Assigned({one: 5}), {"events"})
    assert metrics.value("streamreco_consumer_lag", topic="events", partition="1") is None
    assert metrics.value("streamreco_consumer_lag", topic="events", partition="0") == 5
    assert ("events", 1) not in metrics.processed_offsets


@pytest.mark.integration
async def test_the_broker_probe_tells_a_broker_from_a_closed_port(settings_factory) -> None:
    from streamreco import embedded

    live = BrokerProbe(settings_factory())
    dead = BrokerProbe(settings_factory(kafka_bootstrap=f"kafka://127.0.0.1:{embedded.free_port()}"), timeout=1.0)
    try:
        assert await live.answers() is True
        assert await dead.answers() is False
    finally:
        await live.close()
        await dead.close()


@pytest.mark.parametrize("level", ["warning", "error"])
def test_a_worker_at_warning_or_above_makes_no_debug_records(level: str) -> None:
    root = logging.getLogger()
    was = root.level, list(root.handlers)
    settings = Settings(log_level=level, kafka_bootstrap="kafka://127.0.0.1:1", redis_url="memory://")
    try:
        build_worker(settings)._setup_logging()  # what the worker does as it starts
        assert root.level == getattr(logging, level.upper())
        assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(was[0])
        root.handlers[:] = was[1]


def test_warm_up_loads_the_kernel_a_batch_on_redis_calls(redis_url, redis_client) -> None:
    """After :func:`streams.worker.warm_up`, batches on Redis compile and load nothing more: the
    warm-up loaded the very kernel they call (before ``gc.freeze``). A fresh interpreter, so that
    nothing else loaded it first."""
    namespace = f"warm{uuid.uuid4().hex[:8]}"
    code = textwrap.dedent(f"""
        import json
        from online_models.cooccurrence import _top_neighbours
        from streamreco.settings import Settings
        from streamreco.store import open_store
        from streams.processor import EventProcessor, RawMessage
        from streams.worker import warm_up

        loaded = [len(_top_neighbours.signatures)]
        warm_up(Settings(model="cooccurrence"))
        loaded.append(len(_top_neighbours.signatures))
        settings = Settings(model="cooccurrence", redis_url={redis_url!r}, namespace={namespace!r})
        processor = EventProcessor(settings, open_store(settings.redis_url))
        for n, item in enumerate(["tent", "stove", "lamp", "tent"]):
            user = f"u{{n % 2}}"
            body = {{"event_id": f"e{{n}}", "type": "view", "user_id": user, "item_id": item, "ts": 1000.0 + n}}
            result = processor.process([RawMessage(key=user.encode(), value=json.dumps(body).encode())])
        loaded.append(len(_top_neighbours.signatures))
        print(json.dumps({{"loaded": loaded, "last": [i.item_id for i in result.lists[0].items]}}))
    """)
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    finally:
        if keys := list(redis_client.scan_iter(match=f"{namespace}:*")):
            redis_client.unlink(*keys)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["loaded"] == [0, 1, 1]  # none before, one after the warm-up, none more after batches
    assert report["last"][0] == "lamp"  # u1's list came from the neighbours of their items (tent, stove)


def test_the_settled_runtime_freezes_spaces_full_collections_and_switches_often() -> None:
    """:func:`streams.worker.settle_runtime` in a fresh interpreter, from the environment's settings."""
    code = textwrap.dedent("""
        import gc, json, sys
        from streamreco.settings import Settings
        from streams.worker import settle_runtime

        before = [gc.get_threshold()[2], gc.get_freeze_count()]
        settle_runtime(Settings())
        print(json.dumps(before + [gc.get_threshold()[2], gc.get_freeze_count(), sys.getswitchinterval()]))
    """)
    env = {**os.environ, "STREAMRECO_GC_FULL_EVERY": "37", "STREAMRECO_SWITCH_INTERVAL": "0.002"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    full_before, frozen_before, full_after, frozen_after, switch = json.loads(out.stdout.strip().splitlines()[-1])
    assert (full_before, frozen_before) == (10, 0)  # Python's defaults
    assert full_after == 37 and switch == 0.002
    assert frozen_after > 10_000  # the modules' objects, out of every collection's sight


@pytest.mark.integration
def test_a_worker_exports_what_it_did_and_logs_json(settings_factory, worker_factory) -> None:
    settings = settings_factory(log_format="json")
    worker = worker_factory(settings)
    worker.wait_ready()
    kinds = ["view", "view", "click", "add_to_cart", "purchase"]
    events = [(f"u{n % 4}".encode(), event_json(f"e{n}", kinds[n % 5], f"u{n % 4}", f"i{n % 9}")) for n in range(30)]
    events.append(events[-1])  # the same event_id again, right after: a duplicate
    events += [(b"u1", b"{not json"), (b"u2", b'{"type": "view"}')]
    produce(settings, settings.events_topic, events)
    partitions = len(KafkaConsumer(bootstrap_servers=settings.kafka_servers).partitions_for_topic(settings.events_topic))

    deadline = time.monotonic() + 30
    while True:
        samples = scrape(worker.url)
        lags = {k: v for k, v in samples.items() if k[0] == "streamreco_consumer_lag"
                and dict(k[1])["topic"] == settings.events_topic}
        done = value(samples, "streamreco_dead_letters_total", stream="events") == 2 and len(lags) == partitions
        if (done and not any(lags.values()) and value(samples, "streamreco_online_scored_events")) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.3)

    by_type = Counter(kinds[n % 5] for n in range(30))
    for kind, count in by_type.items():
        assert value(samples, "streamreco_events_processed_total", stream="events", type=kind) == count
    assert value(samples, "streamreco_duplicates_total", stream="events") == 1
    assert value(samples, "streamreco_dead_letters_total", stream="events") == 2
    lists = value(samples, "streamreco_lists_published_total")
    assert lists and value(samples, "streamreco_freshness_seconds_count") == lists
    assert sorted(int(dict(k[1])["partition"]) for k in lags) == list(range(partitions))
    assert not any(lags.values())
    assert value(samples, "streamreco_batch_size_sum", stream="events") == len(events)
    assert value(samples, "streamreco_online_scored_events") > 0
    assert value(samples, "streamreco_model_info", model=settings.model, top_n="10", window="10000",
                 version=dict(next(k[1] for k in samples if k[0] == "streamreco_model_info"))["version"]) == 1
    assert worker.health()["broker"] is True

    lines = [line for line in worker.log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line a JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["logger"].startswith("faust") for r in records)


def test_the_readme_operations_section_names_only_exported_metrics() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Operations", 1)[1].split("\n## ", 1)[0]
    families = {f.name for r in (WorkerMetrics(Settings()).registry, RequestMetrics().registry) for f in r.collect()}
    assert unknown_metrics([section], KNOWN | families) == []
    assert "streamreco_consumer_lag" in section and "streamreco_freshness_seconds" in section


@pytest.mark.integration
async def test_the_collector_counts_its_requests_by_route_and_status(settings_factory) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from producers.collector import make_app

    async with TestClient(TestServer(make_app(settings_factory()))) as client:
        assert (await client.post("/events", json={"type": "view", "user_id": "u1", "item_id": "i1"})).status == 202
        assert (await client.post("/events", data=b"{nope")).status == 400
        assert (await client.get("/no/such/page")).status == 404
        samples = parse(await (await client.get("/metrics")).text())
    assert value(samples, "streamreco_collector_requests_total", method="POST", route="/events", status="202") == 1
    assert value(samples, "streamreco_collector_requests_total", method="POST", route="/events", status="400") == 1
    assert value(samples, "streamreco_collector_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(samples, "streamreco_collector_request_seconds_count", method="POST", route="/events") == 2
