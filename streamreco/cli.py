"""The ``streamreco`` command: one entry point, a sub-command per role.

Settings come from ``STREAMRECO_*`` environment variables, read once here and
passed down.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import threading

from streamreco import embedded
from streamreco.settings import EMBEDDED, Settings


def _with_redis(settings: Settings) -> Settings:
    """Resolve an 'embedded' Redis for a long-running command: the local one must answer."""
    if settings.redis_url != EMBEDDED:
        return settings
    local = "redis://127.0.0.1:6379/0"
    if not embedded.redis_answers(local):
        raise SystemExit(
            "STREAMRECO_REDIS_URL is 'embedded' and no Redis answers on 127.0.0.1:6379; "
            "start one or set STREAMRECO_REDIS_URL=redis://host:port/0"
        )
    return settings.model_copy(update={"redis_url": local})


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from streams.worker import run_worker

    run_worker(_with_redis(settings))
    return 0


def _collector(settings: Settings, args: argparse.Namespace) -> int:
    from producers.collector import run_collector

    run_collector(settings)
    return 0


def _progress_printer(label: str):  # noqa: ANN202
    step = {"next": 0}

    def progress(done: int, total: int) -> None:
        if done >= step["next"] or done == total:
            print(f"\r{label}: {done:,}/{total:,}", end="" if done < total else "\n", file=sys.stderr, flush=True)
            step["next"] = done + max(total // 100, 1)

    return progress


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from producers.replay import replay_movielens

    sent = replay_movielens(settings, rate=args.rate, limit=args.limit, progress=_progress_printer("replayed"))
    print(f"{sent:,} MovieLens events produced to {settings.events_topic}")
    return 0


def _produce(settings: Settings, args: argparse.Namespace) -> int:
    from producers.synthetic import run_synthetic

    sent = run_synthetic(
        settings, n_events=args.events, n_users=args.users, n_items=args.items,
        rate=args.rate, seed=args.seed, progress=_progress_printer("produced"),
    )
    print(f"{sent:,} synthetic events produced to {settings.events_topic}")
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from streamreco.demo import run_demo

    return run_demo(settings, rate=args.rate, limit=args.limit, duration=args.duration)


def _broker(settings: Settings, args: argparse.Namespace) -> int:
    running = embedded.start_broker(port=args.port)
    print(f"Tansu broker listening: STREAMRECO_KAFKA_BOOTSTRAP={running.bootstrap} (Ctrl-C stops it)")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
    return 0


def _lag(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from streamreco.lag import LagReader, lag_table, with_rates

    if args.watch and args.interval <= 0:
        raise SystemExit("streamreco lag: --watch needs --interval above 0")
    topics = args.topic or [settings.events_topic]
    reader = LagReader(settings, topics, group=args.group)
    shown, status = 0, 0
    try:
        rows, taken = reader.read(), time.monotonic()
        while True:
            if args.interval > 0:  # a second reading gives the rates and the catch-up time
                time.sleep(args.interval)
                later, now = reader.read(), time.monotonic()
                rows, taken = with_rates(rows, later, now - taken), now
            if not rows:
                print(f"no partitions found for {', '.join(topics)}", file=sys.stderr)
                return 2
            if args.watch:
                print(f"\n{time.strftime('%H:%M:%S')}  group {reader.group}")
            print(lag_table(rows), flush=True)
            worst = max(row.lag for row in rows)
            status = 1 if args.max_lag is not None and worst > args.max_lag else 0
            shown += 1
            if not args.watch or shown == args.count:
                return status
    except KeyboardInterrupt:
        return status
    finally:
        reader.close()


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    benchmark = importlib.import_module(f"bench.{args.which}")
    return benchmark.main(args.rest)


def _forget(settings: Settings, args: argparse.Namespace) -> int:
    from producers.sdk import EventProducer

    with EventProducer(settings) as producer:
        event = producer.track("forget", user_id=args.user_id)
    print(f"forget {event.event_id} sent for user {args.user_id!r}; the worker owning the user deletes "
          "their keys and tombstones their list on the recommendations topic")
    return 0


def _schema(settings: Settings, args: argparse.Namespace) -> int:
    from streamreco.events import json_schemas

    print(json.dumps(json_schemas(), indent=2))
    return 0


def _count(text: str) -> int:
    """A command-line count: a whole number, 0 or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamreco",
        description="Streaming, real-time recommendations for web shops. "
        "Configure with STREAMRECO_* environment variables (see README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run, help: str) -> argparse.ArgumentParser:  # noqa: A002, ANN001
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    demo = command("demo", _demo, "run broker, Redis, a worker and the MovieLens replay; watch it live")
    demo.add_argument("--rate", type=float, default=200.0, help="events per second to replay")
    demo.add_argument("--limit", type=_count, default=None, help="stop the replay after this many events")
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    command("worker", _worker, "run a worker: consume events, learn, publish refreshed lists")
    command("collector", _collector, "run the HTTP collector (POST /events)")
    replay = command("replay", _replay, "produce MovieLens-100K ratings in timestamp order")
    replay.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    replay.add_argument("--limit", type=_count, default=None, help="only the first N ratings, by time")
    produce = command("produce", _produce, "produce synthetic shop traffic for load tests")
    produce.add_argument("--events", type=_count, default=100_000)
    produce.add_argument("--users", type=int, default=10_000)
    produce.add_argument("--items", type=int, default=10_000)
    produce.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    produce.add_argument("--seed", type=int, default=0)
    broker = command("broker", _broker, "run an embedded Tansu broker (development only; memory-only)")
    broker.add_argument("--port", type=int, default=9092)
    lag = command("lag", _lag, "consumer lag of the workers' group per partition")
    lag.add_argument("--group", default=None, help="consumer group (default: STREAMRECO_APP_ID)")
    lag.add_argument("--max-lag", type=int, default=None, help="exit 1 when any partition lags more")
    lag.add_argument("--topic", action="append", help="topic to read (repeatable; default: STREAMRECO_EVENTS_TOPIC)")
    lag.add_argument("--interval", type=float, default=1.0,
                     help="seconds between the two readings that give rates and catch-up time "
                     "(0: one reading, no estimate); with --watch, between refreshes")
    lag.add_argument("--watch", action="store_true", help="print again every --interval seconds until Ctrl-C")
    lag.add_argument("--count", type=int, default=None, help="with --watch: stop after this many tables")
    bench = command("bench", _bench, "run a benchmark; arguments after its name go to it")
    bench.add_argument("which", choices=["quality", "ceiling", "speed", "reliability"])
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    forget = command("forget", _forget, "delete everything streamreco holds about a user")
    forget.add_argument("user_id")
    command("schema", _schema, "print the JSON Schemas of the event contract")
    return parser


def main(argv: list[str] | None = None) -> int:
    from producers.sdk import DeliveryError

    args = build_parser().parse_args(argv)
    try:
        return args.run(Settings(), args)
    except DeliveryError as exc:
        raise SystemExit(f"streamreco {args.command}: {exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
