"""The quality bench through the pipeline agrees with the offline replay (issue #3, item 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import quality
from bench.pipeline_quality import relative_difference, replay_through_pipeline, score_published
from online_models import DEFAULT_MODEL
from producers.movielens import load_ratings, to_events
from streamreco.cli import build_parser
from streamreco.evaluation import replay_offline
from streamreco.events import ShopEvent

#: Events of MovieLens-100K (by time) run through the worker: a minute at worst on a busy machine.
PREFIX = 2_000


@pytest.fixture(scope="module")
def movielens_prefix() -> list[ShopEvent]:
    try:
        ratings = load_ratings()
    except (OSError, subprocess.CalledProcessError) as exc:  # no cached copy and no network
        pytest.skip(f"MovieLens-100K not available: {exc}")
    return list(to_events(ratings[:PREFIX]))


@pytest.mark.integration
def test_pipeline_scores_agree_with_offline_replay(settings_factory, movielens_prefix, tmp_path: Path) -> None:
    events = movielens_prefix
    half = [len(events) // 2]
    settings = settings_factory(model=DEFAULT_MODEL, partitions=1, coalesce_lists=False, quality_window=len(events))
    pipeline, health = replay_through_pipeline(settings, events, tmp_path, split_at=half)
    offline = replay_offline(DEFAULT_MODEL, events, split_at=half)

    # every event processed once and answered by its own list (replay_through_pipeline raises
    # otherwise), and each new user's first interaction by the newcomers' list too
    assert health["events_processed"] == health["lists_published"] == len(events)
    assert health["newcomer_lists_published"] == len({event.user_id for event in events})
    assert (health["duplicates"], health["dead_lettered"]) == (0, 0)
    # both modes test the same events...
    assert [(s.events, s.scored) for s in pipeline.segments] == [(s.events, s.scored) for s in offline.segments]
    # ...and score within 1%: not necessarily exactly, since the worker trims a capped
    # co-occurrence row once per batch, the offline replay after every event
    for metric in ("hr", "ndcg"):
        offline_value, pipeline_value = getattr(offline.total, metric), getattr(pipeline.total, metric)
        assert abs(relative_difference(pipeline_value, offline_value)) <= quality.TOLERANCE, metric
    # the lists read back from the topic are the ones the worker scored itself
    assert health["quality"]["scored"] == pipeline.total.scored
    assert health["quality"]["hr"] == pytest.approx(pipeline.total.hr)
    assert health["quality"]["ndcg"] == pytest.approx(pipeline.total.ndcg)


def test_an_event_meets_the_list_caused_by_its_users_previous_event() -> None:
    def event(k: int, type_: str, user: str, item: str | None = None) -> ShopEvent:
        extra = {"text": "tents"} if type_ == "search" else {}
        return ShopEvent(event_id=f"e{k}", type=type_, user_id=user, item_id=item, ts=k, **extra)

    events = [
        event(0, "view", "a", "x"),  # a's first event: scored against nothing, a miss
        event(1, "view", "b", "y"),  # b's first event: a miss
        event(2, "search", "a"),  # teaches nothing, but refreshes a's list
        event(3, "view", "a", "z"),  # tested against the list caused by e2: a hit at rank 2
        event(4, "view", "a", "x"),  # a repeat: counted, not scored
    ]
    published = {"e0": ["z"], "e1": ["x"], "e2": ["q", "z"], "e3": ["x"], "e4": []}
    (score,) = score_published(events, published, {})
    assert (score.events, score.scored, score.hits) == (4, 3, 1)
    assert score.ndcg == pytest.approx((1 / 1.584962500721156) / 3)


def test_streamreco_bench_quality_forwards_the_pipeline_options() -> None:
    rest = build_parser().parse_args(["bench", "quality", "--pipeline", "--partitions", "1,4", "--limit", "9"]).rest
    args = quality.parse_args(rest)
    assert (args.pipeline, args.models, args.partitions, args.limit) == (True, [DEFAULT_MODEL], [1, 4], 9)
    assert quality.parse_args([]).models == quality.DEFAULT_MODELS
    with pytest.raises(SystemExit):  # a baseline lives only in the offline replay
        quality.parse_args(["--pipeline", "--models", "river-funkmf"])


def test_each_mode_rewrites_only_its_own_section_of_the_results(tmp_path: Path) -> None:
    results = tmp_path / "quality.md"
    quality.write_sections(results, offline="# Quality\n\noffline table 1\n")
    quality.write_sections(results, pipeline=f"{quality.PIPELINE_HEADING}\n\npipeline table 1\n")
    quality.write_sections(results, offline="# Quality\n\noffline table 2\n")
    assert results.read_text() == f"# Quality\n\noffline table 2\n\n{quality.PIPELINE_HEADING}\n\npipeline table 1\n"
    quality.write_sections(results, pipeline=f"{quality.PIPELINE_HEADING}\n\npipeline table 2\n")
    assert results.read_text() == f"# Quality\n\noffline table 2\n\n{quality.PIPELINE_HEADING}\n\npipeline table 2\n"


def test_tuning_runs_score_the_default_with_the_given_options(movielens_prefix, capsys) -> None:
    """``bench.tune`` replays the default model with each option set, as the quality bench does."""
    from bench import tune

    assert tune.main(['{"moment": null, "source_recency": null}', "{}", "--limit", "300"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit(": HR@10", 1)[0] for line in lines] == ['{"moment": null, "source_recency": null}', "{}"]
    default = replay_offline(DEFAULT_MODEL, movielens_prefix[:300])
    assert lines[1].endswith(f"HR@10 {default.total.hr:.4f}, NDCG@10 {default.total.ndcg:.4f} (300 events)")
    with pytest.raises(SystemExit):  # the second half is never looked at while tuning
        tune.main(["{}", "--limit", str(tune.TUNING_EVENTS + 1)])
