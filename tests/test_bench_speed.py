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
        "--events", "800", "--window", "3", "--naive-window", "0",
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
    profile = re.search(r"median `MEMORY USAGE` of ([\d,]+) `profile` keys: \*\*([\d,]+) B\*\*", text)
    assert profile is not None and int(profile[2].replace(",", "")) > 0
    mine = re.compile(rb"^bs[0-9a-f]{8}-")
    leftovers = {k for k in redis_client.scan_iter(match="bs*", count=1000) if mine.match(k)} - before
    assert not leftovers  # every namespace of the run was deleted (another run's may remain)
