"""The prequential scorer on cases small enough to compute by hand."""

from __future__ import annotations

import math

import pytest

from streamreco.evaluation import PrequentialScore, RollingScore, gain, replay_offline
from streamreco.events import ShopEvent


@pytest.mark.parametrize(
    ("rank", "expected"), [(1, 1.0), (2, 1 / math.log2(3)), (3, 0.5), (10, 1 / math.log2(11))]
)
def test_gain_of_a_hit_at_rank(rank: int, expected: float) -> None:
    recommended = [f"i{k}" for k in range(1, 11)]
    assert gain(recommended, f"i{rank}") == pytest.approx(expected)


def test_items_beyond_n_are_misses() -> None:
    assert gain(["a", "b", "c"], "c", n=2) == 0.0
    assert gain([], "a") == 0.0


def test_hr_and_ndcg_over_scored_events() -> None:
    score = PrequentialScore(n=3)
    score.update(["a", "b", "c"], "a", seen_before=False)  # rank 1: 1.0
    score.update(["a", "b", "c"], "c", seen_before=False)  # rank 3: 0.5
    score.update(["a", "b", "c"], "d", seen_before=False)  # miss
    score.update(["a", "b", "c", "d"], "d", seen_before=False)  # rank 4 > n: miss
    assert (score.events, score.scored, score.hits) == (4, 4, 2)
    assert score.hr == 0.5
    assert score.ndcg == pytest.approx(1.5 / 4)


def test_repeats_are_not_scored_but_counted_as_events() -> None:
    score = PrequentialScore()
    assert score.update(["a"], "a", seen_before=True) is None
    score.update(["a"], "b", seen_before=False)
    assert (score.events, score.scored, score.hits, score.hr) == (2, 1, 0, 0.0)


def test_empty_score_is_zero_not_an_error() -> None:
    score = PrequentialScore()
    assert (score.hr, score.ndcg, score.coverage(), score.popularity_bias) == (0.0, 0.0, 0.0, 0.0)


def test_coverage_counts_distinct_recommended_items() -> None:
    score = PrequentialScore(n=2)
    score.update(["a", "b", "x"], "c", seen_before=False)  # x is beyond n: not shown
    score.update(["a", "c"], "d", seen_before=False)
    # recommended {a, b, c}; items in the stream or lists {a, b, c, d}
    assert score.coverage() == 0.75
    assert score.coverage(catalogue_size=30) == 0.1


def test_popularity_bias_is_the_share_of_slots_of_the_top_tenth() -> None:
    score = PrequentialScore()
    for k in range(20):  # i0 is interacted with 20 times more, i1 twice, others once
        score.update(["i0", "i1"], f"i{k}", seen_before=False)
        score.update([], "i0", seen_before=True)
    score.update([], "i1", seen_before=True)
    # 20 items -> top 2 are i0, i1, which fill all 40 slots
    assert score.popularity_bias == 1.0


def test_segments_add_up() -> None:
    first, last = PrequentialScore(), PrequentialScore()
    first.update(["a"], "a", seen_before=False)
    last.update(["b"], "c", seen_before=False)
    both = first + last
    assert (both.events, both.hits, both.hr, both.ndcg) == (2, 1, 0.5, 0.5)


def test_rolling_score_forgets_old_events() -> None:
    rolling = RollingScore(window=2)
    rolling.update(["a"], "a", seen_before=False)
    rolling.update(["a"], "b", seen_before=False)
    rolling.update(["a"], "a", seen_before=True)  # not scored
    assert rolling.hr == 0.5
    rolling.update(["b"], "c", seen_before=False)
    assert (rolling.scored, rolling.hr, rolling.ndcg) == (2, 0.0, 0.0)


def _views(pairs: list[tuple[str, str]]) -> list[ShopEvent]:
    return [
        ShopEvent(event_id=str(k), type="view", user_id=u, item_id=i, ts=float(k))
        for k, (u, i) in enumerate(pairs)
    ]


def test_replay_tests_the_list_published_after_the_previous_event() -> None:
    # a new user meets the newcomers' list, as published after the last new user's first event
    events = _views([("a", "x"), ("b", "x"), ("b", "y"), ("c", "y"), ("c", "x"), ("c", "x")])
    result = replay_offline("popularity", events)
    total = result.total
    # a:x miss (the newcomers' list is still empty), b:x hit at rank 1 (newcomers: [x]), b:y miss
    # (b saw x; the list excludes it -> []), c:y miss (newcomers: [x]), c:x hit at rank 1 (c's
    # list after c:y), c:x repeat: not scored
    assert (total.events, total.scored, total.hits) == (6, 5, 2)
    assert total.ndcg == pytest.approx(2 / 5)
    assert result.events_per_second > 0


def test_replay_splits_segments_and_reports_progress() -> None:
    done: list[int] = []
    events = _views([("a", "x"), ("b", "x"), ("c", "x"), ("d", "x")])
    result = replay_offline("popularity", events, split_at=[1], progress=done.append)
    assert [s.events for s in result.segments] == [1, 3]
    assert [s.hits for s in result.segments] == [0, 3]  # the first meets an empty newcomers' list; the rest [x]
    assert done == [4]
