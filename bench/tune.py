"""Tuning runs on the first half of MovieLens-100K only (EVALUATION.md: no tuning on the answer).

Each argument is a JSON object of :class:`~online_models.ItemCooccurrence` options; the
default model with those changes is replayed prequentially, exactly as ``bench.quality``
does, on the first ``--limit`` events (default 50,000, half the stream), and HR@10 /
NDCG@10 are printed per option set.

    python -m bench.tune '{}' '{"source_recency": 0.7, "moment": 1.0}' '{"neighbours": 300}' --jobs 2
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from online_models import ItemCooccurrence
from producers.movielens import load_ratings, to_events
from streamreco.evaluation import ReplayResult, replay_offline
from streamreco.store import Store

#: The first half of MovieLens-100K, where every hyperparameter is chosen.
TUNING_EVENTS = 50_000


def default_with(options: dict, store: Store) -> ItemCooccurrence:
    """The default model (co-occurrence) with these options."""
    return ItemCooccurrence(store=store, **options)


def run(options: dict, limit: int) -> ReplayResult:
    return replay_offline(partial(default_with, options), list(to_events(load_ratings()))[:limit])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("options", nargs="+", type=json.loads, help="JSON objects of ItemCooccurrence options")
    parser.add_argument("--limit", type=int, default=TUNING_EVENTS, help="events replayed (at most the first half)")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    if args.limit > TUNING_EVENTS:
        parser.error(f"--limit: tuning looks at the first {TUNING_EVENTS:,} events only")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = pool.map(run, args.options, [args.limit] * len(args.options))
        for options, result in zip(args.options, results, strict=True):
            print(f"{json.dumps(options)}: HR@10 {result.total.hr:.4f}, NDCG@10 {result.total.ndcg:.4f} "
                  f"({result.total.events:,} events)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
