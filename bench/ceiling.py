"""How high a model could score on MovieLens with hindsight: a ceiling for issue #3.

A streaming recommender only knows the past. This bench asks how much better the
same model would score if, whenever it recommends to a user, it already knew
every *other* user's complete history, future included. Users are dealt into
``--folds`` groups in order of their first event. For each group, the model
learns the whole stream of every other group (in time order, as the worker
does) and is then frozen. The group's own events are replayed test-then-train
exactly as in :mod:`bench.quality` (:func:`~streamreco.evaluation.replay_offline`):
each event tested against the list last published for its user, a newcomer's
first event against the newcomers' list. Only the users' profiles grow from their own
events; the model's state does not, so a user's own future is never known.
Summed over the groups, the scores are those of a model with hindsight of
``(folds - 1) / folds`` of the other users. The same run replays the model as it
streams, the way :mod:`bench.quality` measures it, for the ratio.

Only models whose knowledge of a user is the user's profile (their history)
take part: a matrix factorisation keeps each user's factors in the model and,
frozen, would never learn the user at all (River's FunkMF and BiasedMF score
0.012 and 0.033 so, against 0.042 and 0.040 as they stream). No setting is tuned
here; the models are the ones ``bench.quality`` measures.

    python -m bench.ceiling --jobs 2                  # the default; writes bench/results/ceiling.md
    python -m bench.ceiling --models cooccurrence,popularity --folds 5 --limit 20000
"""

from __future__ import annotations

import argparse
import shlex
import sys
from concurrent.futures import Executor, ProcessPoolExecutor
from functools import partial
from pathlib import Path

from bench.quality import _run, _spec, header, segment_scores
from online_models import DEFAULT_MODEL, Profile, Recommender
from online_models.feedback import interaction_weight
from producers.movielens import load_ratings, to_events
from streamreco.evaluation import ModelSpec, PrequentialScore, ReplayResult, build_recommender, replay_offline
from streamreco.events import ShopEvent
from streamreco.store import BatchStore

RESULTS = Path(__file__).parent / "results" / "ceiling.md"
#: The models whose knowledge of a user is the user's profile, so that they can be frozen.
MODELS = ("cooccurrence", "blend", "cooccurrence-plain", "popularity")
#: Events learned between two flushes of the batch store: a worker's batch.
LEARNING_BATCH = 500


def folds_of(events: list[ShopEvent], folds: int) -> dict[str, int]:
    """Each user's group: users dealt round-robin in order of their first event.

    >>> events = [ShopEvent(event_id=str(k), type="view", user_id=u, item_id="x", ts=k)
    ...           for k, u in enumerate("abacd")]
    >>> folds_of(events, 2)
    {'a': 0, 'b': 1, 'c': 0, 'd': 1}
    """
    users = dict.fromkeys(event.user_id for event in events)
    return {user: at % folds for at, user in enumerate(users)}


def learn_stream(recommender: Recommender, store: BatchStore, events: list[ShopEvent]) -> None:
    """``recommender`` taught ``events`` in order, as the worker teaches it in batches, without listing anything."""
    profiles: dict[str, Profile] = {}
    for at, event in enumerate(events, start=1):
        weight = interaction_weight(event)
        if event.item_id is not None and weight is not None:
            profile = profiles.setdefault(event.user_id, Profile(event.user_id))
            recommender.learn_one(profile, event.item_id, weight, event.ts)
            profile.add(event.item_id, event.ts, weight, purchased=event.type == "purchase")
        if at % LEARNING_BATCH == 0:
            store.flush()
    store.flush()


def _learns_nothing(profile: Profile, item: str, weight: float, ts: float) -> None:
    """What a frozen model does with an event: nothing (the replay still adds it to the profile)."""


def knowing(model: ModelSpec, others: list[ShopEvent], store: BatchStore) -> Recommender:
    """``model`` built on ``store`` (the replay's), taught the whole of ``others``, then frozen."""
    recommender = build_recommender(model, store)
    learn_stream(recommender, store, others)
    recommender.learn_one = _learns_nothing  # type: ignore[method-assign]
    return recommender


def _hindsight_fold(name: str, events: list[ShopEvent], folds: int, fold: int) -> ReplayResult:
    """The replay of one group's events by ``name`` frozen after learning every other group's."""
    group = folds_of(events, folds)
    others = [event for event in events if group[event.user_id] != fold]
    mine = [(at, event) for at, event in enumerate(events) if group[event.user_id] == fold]
    first_half = sum(1 for at, _ in mine if at < len(events) // 2)
    result = replay_offline(partial(knowing, _spec(name), others), [event for _, event in mine], split_at=[first_half])
    if len(result.segments) == 1:  # none of the group's events is in the last half
        result.segments.append(PrequentialScore())
    return result


def hindsight(name: str, events: list[ShopEvent], folds: int, pool: Executor) -> ReplayResult:
    """``name``'s prequential score, in halves, when it knows every other user's whole stream
    (see the module's docstring); the groups are replayed in ``pool``."""
    runs = list(pool.map(partial(_hindsight_fold, name, events, folds), range(folds)))
    first = sum((run.segments[0] for run in runs), PrequentialScore())
    last = sum((run.segments[1] for run in runs), PrequentialScore())
    return ReplayResult(name, [first, last], sum(run.seconds for run in runs))


def table(rows: list[tuple[str, str, dict]]) -> str:
    lines = [
        (
            "| model | knows | HR@10 full | NDCG@10 full | HR@10 first 50% | NDCG@10 first 50% "
            "| HR@10 last 50% | NDCG@10 last 50% |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, knows, report in rows:
        cells = " | ".join(
            f"{report[s]['hr']:.4f} | {report[s]['ndcg']:.4f}" for s in ("full", "first 50%", "last 50%")
        )
        lines.append(f"| {name} | {knows} | {cells} |")
    return "\n".join(lines)


def markdown(rows: list[tuple[str, str, dict]], command: str, source: str, events: int, folds: int) -> str:
    return (
        "# Quality ceiling: the same models with hindsight\n\n"
        f"{header(command, source, events)}- folds: {folds}\n\n"
        '"the past": the model as it streams, measured as in `quality.md`. "every other user\'s whole '
        f'stream": the model, before it recommends to a user, has learned the complete stream (future '
        f"included) of the users outside the user's group ({folds - 1}/{folds} of the others) and learns "
        "nothing more; the user's own events are tested then added to their profile as usual, so a "
        "user's own future is never known. No setting was tuned here. See `bench/ceiling.py`.\n\n"
        f"{table(rows)}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ceiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODEL, help=f"comma-separated, from: {', '.join(MODELS)}")
    parser.add_argument("--folds", type=int, default=10, help="groups of users (default 10)")
    parser.add_argument("--limit", type=int, help="only the first N events")
    parser.add_argument("--jobs", type=int, default=1, help="replays run in parallel")
    parser.add_argument("--output", type=Path, help=f"Markdown report (default for a full run: {RESULTS})")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if unknown := [m for m in models if m not in MODELS]:
        parser.error(f"model(s) {', '.join(unknown)} cannot be frozen; choose from {', '.join(MODELS)}")
    if args.folds < 2:
        parser.error("--folds: at least 2 (one group is replayed while the others are known)")
    output = args.output or (RESULTS if args.limit is None else None)
    events = list(to_events(load_ratings()))[: args.limit]
    catalogue = len({event.item_id for event in events})
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        streaming = {name: pool.submit(_run, name, events) for name in models}
        for name in models:
            known = hindsight(name, events, args.folds, pool)
            rows.append((name, "the past", segment_scores(streaming[name].result()[1], catalogue)))
            rows.append((name, "every other user's whole stream", segment_scores(known, catalogue)))
    print(table(rows))
    if output:
        command = shlex.join(["python", "-m", "bench.ceiling", *(sys.argv[1:] if argv is None else argv)])
        source = "MovieLens-100K (recbole==1.2.1 wheel)"
        output.write_text(markdown(rows, command, source, len(events), args.folds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
