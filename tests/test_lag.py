"""Consumer lag read from a real broker with a known backlog."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from streamreco.cli import main
from streamreco.lag import LagReader
from tests.kafka_helpers import produce

pytestmark = pytest.mark.integration


def test_lag_is_end_minus_committed_per_partition(settings_factory):
    settings = settings_factory()
    topic = settings.events_topic
    produce(settings, topic, [(f"u{n}".encode(), b"x") for n in range(30)])
    reader = LagReader(settings, [topic], group="lag-test")
    before = {p.partition: p for p in reader.read()}
    assert sum(p.end for p in before.values()) == 30
    assert all(p.committed is None and p.lag == p.end for p in before.values())

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id="lag-test",
                             enable_auto_commit=False)
    busiest = max(before.values(), key=lambda p: p.end)
    tp = TopicPartition(topic, busiest.partition)
    consumer.assign([tp])
    consumer.seek(tp, 2)
    consumer.commit({tp: OffsetAndMetadata(2, "", -1)})
    consumer.close()

    produce(settings, topic, [(f"u{n}".encode(), b"y") for n in range(30, 40)])  # the end moves on
    after = {p.partition: p for p in reader.read()}
    assert sum(p.end for p in after.values()) == 40
    assert after[busiest.partition].committed == 2
    assert after[busiest.partition].lag == after[busiest.partition].end - 2
    reader.close()


# --- the `streamreco lag` command ---------------------------------------------------------


@pytest.fixture
def backlog(settings_factory, monkeypatch):
    """A topic with 30 records and group ``lag-cli`` committed at 2 on one partition, 0 on the rest."""
    settings = settings_factory()
    produce(settings, settings.events_topic, [(f"u{n}".encode(), b"x") for n in range(30)])
    reader = LagReader(settings, [settings.events_topic], group="lag-cli")
    ends = {p.partition: p.end for p in reader.read()}
    reader.close()
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id="lag-cli", enable_auto_commit=False)
    busiest = max(ends, key=ends.get)
    consumer.commit({TopicPartition(settings.events_topic, p): OffsetAndMetadata(2 if p == busiest else 0, "", -1)
                     for p in ends})
    consumer.close()
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    lags = {p: end - (2 if p == busiest else 0) for p, end in ends.items()}
    return settings, lags


def lag_command(capsys, *args: str) -> tuple[int, list[list[str]]]:
    """Run ``streamreco lag --group lag-cli *args``; its exit code and the rows it printed, split."""
    code = main(["lag", "--group", "lag-cli", *args])
    out = capsys.readouterr().out
    return code, [line.split() for line in out.splitlines() if line.strip()]


def test_lag_command_prints_each_partition_and_exits_by_max_lag(backlog, capsys):
    settings, lags = backlog
    worst = max(lags.values())
    code, rows = lag_command(capsys, "--interval", "0")
    assert code == 0
    printed = {int(r[1]): int(r[4]) for r in rows if r[0] == settings.events_topic}
    assert printed == lags
    assert rows[-1] == ["total", str(sum(lags.values()))]
    assert lag_command(capsys, "--interval", "0", "--max-lag", str(worst - 1))[0] == 1
    assert lag_command(capsys, "--interval", "0", "--max-lag", str(worst))[0] == 0


def test_lag_command_estimates_catch_up_from_the_consume_rate(backlog, capsys):
    settings, lags = backlog
    code, rows = lag_command(capsys, "--interval", "0.3", "--watch", "--count", "2")
    tables = [r for r in rows if r[0] == settings.events_topic]
    assert len(tables) == 2 * len(lags)  # two refreshes
    assert {r[5] for r in tables} == {"0.0"}  # nobody consumes ...
    assert {r[6] for r in tables} == {"never"}  # ... so the lag never goes


def test_lag_command_fails_on_an_unknown_topic(backlog, capsys):
    code = main(["lag", "--group", "lag-cli", "--interval", "0", "--topic", "no-such-topic-here"])
    assert code == 2
