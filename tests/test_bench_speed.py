"""Smoke test of the speed benchmark: a --quick run against the session's broker and Redis.

Timings are never asserted (the machine is shared); only that every section is
there and the numbers are sane.
"""

from __future__ import annotations

import re
from pathlib import Path

import redis

from bench import speed
from streamreco import embedded


def test_quick_run_writes_every_section(
    broker: embedded.Broker, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    out = tmp_path / "speed.md"
    before = set(redis_client.scan_iter(match="bs*", count=1000))
    status = speed.main([
        "--quick", "--kafka", broker.bootstrap, "--redis", redis_url, "--out", str(out),
        "--events", "4000", "--window", "3", "--naive-window", "0",
    ])
    assert status == 0
    text = out.read_text()
    for section in ("# Speed and cost", "## Targets (one worker)", "## Throughput", "## Freshness",
                    "## Redis memory", "## Where the time goes", "Machine:"):
        assert section in text, section
    throughput = re.search(r"^\| 1 \| ([\d,]+) \| [\d.]+ \| ([\d,]+) \|", text, re.MULTILINE)
    assert throughput is not None, text
    assert int(throughput[1].replace(",", "")) > 0 and int(throughput[2].replace(",", "")) > 0
    fresh = re.search(r"^\| 1 \| fixed \| [\d,]+ \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|", text, re.MULTILINE)
    assert fresh is not None, text
    lists, p50, p95, p99 = (int(g.replace(",", "")) for g in fresh.groups())
    assert lists > 0 and 0 <= p50 <= p95 <= p99
    spent = re.search(r"^\| 1 \| fixed \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+) \| ([\d.]+) "
                      r"\| ([\d.]+) \| ([\d,]+) \| ([\d,]+) \|$", text, re.MULTILINE)
    assert spent is not None, text
    worker_cpu, broker_cpu, _, producer_cpu, batches, size, batch_ms, publish_ms, _, gc_ms = (
        float(g.replace(",", "")) for g in spent.groups())
    assert worker_cpu > 0 and broker_cpu > 0 and producer_cpu > 0 and batches > 0 and size >= 1
    assert 0 < publish_ms <= batch_ms and gc_ms >= 0
    profile = re.search(r"median `MEMORY USAGE` of ([\d,]+) `profile` keys: \*\*([\d,]+) B\*\*", text)
    assert profile is not None and int(profile[2].replace(",", "")) > 0
    mine = re.compile(rb"^bs[0-9a-f]{8}-")
    leftovers = {k for k in redis_client.scan_iter(match="bs*", count=1000) if mine.match(k)} - before
    assert not leftovers  # every namespace of the run was deleted (another run's may remain)


def test_profile_summary_shares_samples_by_layer(tmp_path: Path) -> None:
    """Each sample counts for the layer of its innermost frame; shares add up to 100%."""
    raw = tmp_path / "raw.txt"  # py-spy names files relative to sys.path
    raw.write_text(
        "process (streams/processor.py:10);candidates (online_models/cooccurrence.py:5) 5\n"
        "candidates (online_models/cooccurrence.py:5);argsort (numpy/_core/fromnumeric.py:7) 1\n"
        "process (streams/processor.py:10);execute (redis/client.py:3) 2\n"
        "drain (faust/transport/consumer.py:1);send (aiokafka/conn.py:9) 1\n"
        "select (selectors.py:4) 1\n"
    )
    summary = speed.summarise_profile(raw)
    layers = dict(summary.layers)
    assert summary.samples == 10
    assert layers == {
        "streamreco (our code, numpy included)": 60.0,
        "redis-py and hiredis (Redis client)": 20.0,
        "aiokafka (Kafka client)": 10.0,
        "asyncio, threads, sockets (I/O)": 10.0,
    }
    assert dict(summary.inclusive)["process (streams/processor.py)"] == 70.0


def test_client_floor_consumes_and_answers_every_event(capsys) -> None:
    """``bench.client_floor`` times the bare consume-produce-commit loop over every pre-produced event."""
    from bench import client_floor

    assert client_floor.main(["--events", "700"]) == 0
    line = capsys.readouterr().out
    assert re.match(r"700 events: [\d,]+ events/s, [\d,]+ us CPU/event", line), line


def test_a_rerun_keeps_the_hand_written_reading(tmp_path: Path) -> None:
    report = tmp_path / "speed.md"
    assert speed._hand_written(report) == ""
    report.write_text("# Speed and cost\n\nold figures\n\n## Reading of this run\n\nwhy.\n")
    assert speed._hand_written(report) == "\n## Reading of this run\n\nwhy.\n"
