"""Recommendation quality, prequential top-10 on MovieLens-100K (see EVALUATION.md).

Every event is a test of the list the user was last shown, then a lesson; the
score counts every one of the 100,000 ratings. Reports HR@10, NDCG@10,
catalogue coverage, popularity bias (share of list slots taken by the top 10%
of items) and events per second of the offline replay, for the full stream and
for its first and last halves, for our default model and the baselines.

    python -m bench.quality                     # everything; writes bench/results/quality.md
    python -m bench.quality --models blend --limit 20000
    python -m bench.quality --events shop.csv --json
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shlex
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.baselines import BASELINES
from online_models import MODEL_NAMES
from producers.movielens import load_ratings, to_events
from streamreco.evaluation import ReplayResult, replay_offline
from streamreco.events import ShopEvent

RESULTS = Path(__file__).parent / "results" / "quality.md"
DEFAULT_MODELS = ["blend", *BASELINES, "cooccurrence"]
SEGMENTS = ("full", "first 50%", "last 50%")
TUNING = (
    "Tuning: every hyperparameter of the default (`blend`: item co-occurrence with "
    "alpha 0.4 and row normalisation, plus popularity at weight 0.1) was chosen on the "
    "first 50% of the stream only (most on its first 50,000 events, the blend weight on "
    "its first 20,000); the last 50% was never looked at while tuning. Baselines are untuned."
)


def read_events(path: str | Path) -> list[ShopEvent]:
    """Events from a CSV with header ``user_id,item_id,timestamp[,rating]``, stably sorted by time.

    A row with a rating is a ``rating`` event, one without a ``view``.
    """
    with open(path, newline="", encoding="utf-8") as lines:
        rows = sorted(csv.DictReader(lines), key=lambda row: float(row["timestamp"]))
    return [
        ShopEvent(
            event_id=f"csv-{index}",
            type="rating" if row.get("rating") else "view",
            user_id=row["user_id"],
            item_id=row["item_id"],
            ts=float(row["timestamp"]),
            value=float(row["rating"]) if row.get("rating") else None,
        )
        for index, row in enumerate(rows)
    ]


def _spec(name: str) -> str | Callable:
    return BASELINES[name] if name in BASELINES else name


def _run(name: str, events: list[ShopEvent]) -> tuple[str, ReplayResult]:
    result = replay_offline(_spec(name), events, split_at=[len(events) // 2])
    return name, result


def measure(models: list[str], events: list[ShopEvent], jobs: int = 1) -> dict[str, dict]:
    """Each model's scores by segment: ``{model: {segment: {metric: value}}}``."""
    catalogue = len({e.item_id for e in events})
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        done = list(pool.map(_run, models, [events] * len(models)))
    report = {}
    for name, result in done:
        first, last = result.segments
        scores = zip(SEGMENTS, (result.total, first, last), strict=True)
        report[name] = {segment: s.as_dict(catalogue) for segment, s in scores}
        report[name]["full"]["events_per_second"] = result.events_per_second
    return report


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores, {memory:.1f} GiB, {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def table(report: dict[str, dict]) -> str:
    lines = [
        "| model | segment | HR@10 | NDCG@10 | coverage | popularity bias | events/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, segments in report.items():
        for segment, m in segments.items():
            speed = f"{m['events_per_second']:.0f}" if "events_per_second" in m else ""
            lines.append(
                f"| {name} | {segment} | {m['hr']:.4f} | {m['ndcg']:.4f} | {m['coverage']:.3f} "
                f"| {m['popularity_bias']:.3f} | {speed} |"
            )
    return "\n".join(lines)


def write_markdown(path: Path, report: dict[str, dict], command: str, source: str, events: int) -> None:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Recommendation quality: prequential top-10\n\n"
        f"- command: `{command}`\n- data: {source}, {events:,} events, every one a test then a lesson\n"
        f"- machine: {machine()}\n- date: {today}\n\n"
        "HR@10 and NDCG@10 over scored events (MovieLens: all of them); coverage = distinct "
        "items recommended / items in the stream; popularity bias = share of list slots taken "
        "by the top 10% of items by interactions; events/s of the offline replay (in-memory MemoryStore, "
        "one process per model).\n\n"
        f"{TUNING}\n\n"
        f"{table(report)}\n"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.quality", description=__doc__.split("\n\n")[0])
    choices = sorted({*BASELINES, *MODEL_NAMES})
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"comma-separated, from: {', '.join(choices)}")  # fmt: skip
    parser.add_argument("--events", help="CSV with header user_id,item_id,timestamp[,rating]")
    parser.add_argument("--limit", type=int, help="only the first N events")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--jobs", type=int, default=1, help="models measured in parallel")
    parser.add_argument("--output", type=Path,
                        help=f"Markdown report (default for a full MovieLens run: {RESULTS})")  # fmt: skip
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in choices]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(choices)}")
    if args.output is None and args.events is None and args.limit is None:
        args.output = RESULTS
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.events:
        events, source = read_events(args.events), args.events
    else:
        events, source = list(to_events(load_ratings())), "MovieLens-100K (recbole==1.2.1 wheel)"
    events = events[: args.limit] if args.limit else events
    report = measure(args.models, events, args.jobs)
    if args.json:
        print(json.dumps({"source": source, "events": len(events), "machine": machine(),
                          "models": report}))  # fmt: skip
    else:
        print(table(report))
    if args.output:
        command = shlex.join(["python", "-m", "bench.quality", *(sys.argv[1:] if argv is None else argv)])
        write_markdown(args.output, report, command, source, len(events))
    return 0


if __name__ == "__main__":
    sys.exit(main())
