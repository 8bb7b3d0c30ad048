"""The in-process benchmark: its figures are never asserted, only that it runs, cleans up and is repeatable."""

from __future__ import annotations

import re

import redis

from bench import processor


def test_the_same_run_publishes_the_same_lists(redis_url: str, redis_client: redis.Redis) -> None:
    args = processor.parse(["--users", "300", "--items", "400", "--warm", "600", "--events", "300",
                            "--batches", "50,10", "--redis", redis_url])
    before = set(redis_client.scan_iter(match="bp*", count=1000))
    first, second = processor.run(args), processor.run(args)
    assert [line.split(":")[0] for line in first] == ["batches of 50", "batches of 10", "digest of every list"]
    for line in first[:2]:
        match = re.search(r"([\d,]+) us CPU/event, [\d,]+ us wall/event, ([\d.]+) lists/event", line)
        assert match is not None and int(match[1].replace(",", "")) > 0 and float(match[2]) > 0, line
    assert first[-1] == second[-1]  # the digest: same code and seed, same lists
    assert set(redis_client.scan_iter(match="bp*", count=1000)) == before
