"""What a batch costs the event processor itself: CPU per event and per list, with real Redis.

No broker and no Faust: :class:`~streams.processor.EventProcessor` on synthetic shop
events (:class:`~producers.synthetic.ShopSimulation`), state in Redis under a namespace of
its own (deleted at the end). The processor first learns ``--warm`` events in batches of
500, then processes ``--events`` new events at each size of ``--batches``: small batches
are what a worker takes at low load (about one list per event), large ones what it takes
from a backlog (a user's events coalesced into one list). Every list's items go into a
digest, so that a change meant to leave recommendations as they were can be checked: the
same code, sizes and seed give the same digest.

This is where to profile before optimising (``--profile 50`` prints cProfile's top
functions for the 50-event batches); the end-to-end figures are ``bench.speed``'s.

    python -m bench.processor                               # batches of 500, 50 and 10
    python -m bench.processor --batches 50 --events 8000 --repeat 3
    python -m bench.processor --batches 10 --profile 10
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import sys
import time
import uuid

from online_models import DEFAULT_MODEL
from producers.synthetic import ShopSimulation
from streamreco.events import ShopEvent, dumps
from streamreco.settings import Settings
from streamreco.store import open_store
from streams.processor import EventProcessor, RawMessage

WARM_BATCH = 500


def messages(users: int, items: int, n: int, seed: int) -> list[RawMessage]:
    """The first ``n`` behaviour events of a synthetic shop, as the worker consumes them."""
    events = (m for m in ShopSimulation(users, items, seed=seed).events(n * 2) if isinstance(m, ShopEvent))
    return [RawMessage(key=e.user_id.encode(), value=dumps(e)) for e, _ in zip(events, range(n))]


def run(args: argparse.Namespace) -> list[str]:
    """One pass: warm up, then each batch size on fresh events; a line per size and the digest."""
    sizes = args.batches
    stream = messages(args.users, args.items, args.warm + args.events * len(sizes), args.seed)
    settings = Settings(namespace=f"bp{uuid.uuid4().hex[:8]}", model=args.model, redis_url=args.redis)
    store = open_store(settings.redis_url, **settings.redis_options())
    lines, digest = [], hashlib.sha256()
    try:
        processor = EventProcessor(settings, store)
        for at in range(0, args.warm, WARM_BATCH):
            processor.process(stream[at : min(at + WARM_BATCH, args.warm)])
        processor.settle()
        position = args.warm
        for size in sizes:
            chunk = stream[position : position + args.events]
            position += len(chunk)
            profile = cProfile.Profile() if args.profile == size else None
            cpu, wall, lists = time.process_time(), time.perf_counter(), 0
            if profile is not None:
                profile.enable()
            for at in range(0, len(chunk), size):
                for published in processor.process(chunk[at : at + size]).lists:
                    lists += 1
                    digest.update(f"{published.user_id}:{','.join(i.item_id for i in published.items)};".encode())
            processor.settle()  # the last batch's write too
            if profile is not None:
                profile.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            lines.append(f"batches of {size}: {1e6 * cpu / len(chunk):,.0f} us CPU/event, "
                         f"{1e6 * wall / len(chunk):,.0f} us wall/event, {lists / len(chunk):.2f} lists/event, "
                         f"{1e6 * cpu / max(lists, 1):,.0f} us CPU/list")
            if profile is not None:
                pstats.Stats(profile, stream=sys.stdout).sort_stats(args.sort).print_stats(25)
    finally:
        store.delete(list(store.scan(settings.namespace + ":")))
        store.close()
    return [*lines, f"digest of every list: {digest.hexdigest()[:16]}"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    sizes = lambda s: [int(x) for x in s.split(",") if x]
    parser = argparse.ArgumentParser(prog="bench.processor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=sizes, default=[500, 50, 10], help="batch sizes, comma-separated")
    parser.add_argument("--events", type=int, default=5000, help="events measured per batch size")
    parser.add_argument("--warm", type=int, default=20_000, help="events learned first, in batches of 500")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--repeat", type=int, default=1, help="passes, each in a fresh namespace")
    parser.add_argument("--profile", type=int, default=None, metavar="SIZE", help="cProfile the batches of this size")
    parser.add_argument("--sort", default="tottime", help="cProfile order (tottime, cumulative, ...)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    for _ in range(args.repeat):
        print("\n".join(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
