"""``streamreco demo``: the whole pipeline on this machine, watched live in the terminal.

Starts what is not configured (a Tansu broker, Redis), a worker process and the
MovieLens-100K replay producer, then shows events/s, consumer lag, a few users'
lists as they change, and the worker's running HR@10.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaConsumer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from streamreco import embedded
from streamreco.lag import LagReader
from streamreco.settings import Settings, redact_url

USERS_SHOWN = 6


@dataclass
class DemoView:
    """What the screen shows, updated by the background threads."""

    produced: int = 0
    health: dict = field(default_factory=dict)
    lag: int = 0
    rate: float = 0.0
    lists: OrderedDict[str, dict] = field(default_factory=OrderedDict)
    changes: dict[str, int] = field(default_factory=dict)

    def render(self) -> Group:
        quality = self.health.get("quality", {})
        stats = Table(title="streamreco demo  (Ctrl-C to stop)", show_header=False, expand=False)
        stats.add_row("events on the events topic", f"{self.produced:,}")
        stats.add_row("events processed", f"{self.health.get('events_processed', 0):,}")
        stats.add_row("events/s (worker)", f"{self.rate:,.0f}")
        stats.add_row("consumer lag", f"{self.lag:,}")
        stats.add_row("lists published", f"{self.health.get('lists_published', 0):,}")
        stats.add_row("dead-lettered", f"{self.health.get('dead_lettered', 0):,}")
        stats.add_row(
            "running HR@10 / NDCG@10",
            f"{quality.get('hr', 0.0):.3f} / {quality.get('ndcg', 0.0):.3f}  "
            f"(last {quality.get('scored', 0):,} scored events)",
        )
        users = Table(title="latest lists of the most recently active users")
        users.add_column("user")
        users.add_column("updates", justify="right")
        users.add_column("top 5 (item: reason)")
        for user, rec in reversed(self.lists.items()):
            top = ", ".join(f"{i['item_id']}: {i['reason']}" for i in rec["items"][:5])
            users.add_row(user, str(self.changes.get(user, 0)), top or "-")
        return Group(stats, users)


def _follow_lists(settings: Settings, view: DemoView, stop: threading.Event) -> None:
    consumer = KafkaConsumer(
        settings.recommendations_topic, bootstrap_servers=settings.kafka_servers, group_id=None,
        auto_offset_reset="latest", **settings.kafka_client_options(),
    )
    while not stop.is_set():
        for records in consumer.poll(timeout_ms=200).values():
            for record in records:
                if record.value is None:
                    continue
                rec = orjson.loads(record.value)
                user = rec["user_id"]
                view.lists.pop(user, None)
                view.lists[user] = rec
                view.changes[user] = view.changes.get(user, 0) + 1
                while len(view.lists) > USERS_SHOWN:
                    view.lists.popitem(last=False)
    consumer.close()


def _poll_worker(settings: Settings, view: DemoView, stop: threading.Event) -> None:
    lag = LagReader(settings, [settings.events_topic])
    last = (time.monotonic(), 0)
    while not stop.wait(1.0):
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/health", timeout=2) as r:
                view.health = orjson.loads(r.read())
        with contextlib.suppress(Exception):
            partitions = lag.read()
            view.lag = sum(p.lag for p in partitions)
            view.produced = sum(p.end for p in partitions)
        now, processed = time.monotonic(), view.health.get("events_processed", 0)
        view.rate = (processed - last[1]) / max(now - last[0], 1e-9)
        last = (now, processed)
    lag.close()


def _child(command: list[str], settings: Settings, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamreco.cli", *command],
        env={**os.environ, **settings.to_env()},
        stdout=open(log, "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )


def run_demo(settings: Settings, rate: float, limit: int | None, duration: float | None) -> int:
    """Run everything until Ctrl-C, or for ``duration`` seconds."""
    console = Console()
    with tempfile.TemporaryDirectory(prefix="streamreco-demo-") as folder:
        logs = Path(folder)
        with embedded.services(settings, logs) as live_settings:
            console.print(f"broker {live_settings.kafka_bootstrap}, Redis {redact_url(live_settings.redis_url)}")
            worker = _child(["worker"], live_settings, logs / "worker.log")
            replay = ["replay", "--rate", str(rate)] + (["--limit", str(limit)] if limit else [])
            producer = _child(replay, live_settings, logs / "replay.log")
            view, stop = DemoView(), threading.Event()
            threads = [
                threading.Thread(target=_follow_lists, args=(live_settings, view, stop), daemon=True),
                threading.Thread(target=_poll_worker, args=(live_settings, view, stop), daemon=True),
            ]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + duration if duration else float("inf")
            try:
                with Live(view.render(), console=console, refresh_per_second=4) as screen:
                    while time.monotonic() < deadline and worker.poll() is None:
                        time.sleep(0.25)
                        screen.update(view.render())
            except KeyboardInterrupt:
                pass
            finally:
                stop.set()
                for child in (producer, worker):
                    child.terminate()
                    child.wait(30)
            console.print(view.render())
            for name, child in (("worker", worker), ("replay", producer)):
                if child.returncode not in (0, -15):
                    console.print(f"{name} failed:\n" + (logs / f"{name}.log").read_text()[-3000:])
                    return 1
    return 0
