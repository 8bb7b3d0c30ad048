"""The sequence-model research bench: its dump of the product's lists is the product's replay."""

from __future__ import annotations

import doctest
import random

import numpy as np

from bench.research import content, sequence
from streamreco.evaluation import replay_offline
from streamreco.events import ShopEvent


def test_dumped_lists_score_as_the_product_replay() -> None:
    rng = random.Random(7)
    events = [
        ShopEvent(event_id=str(k), type="view", user_id=str(rng.randint(1, 15)), item_id=str(rng.randint(1, 40)),
                  ts=float(k // 3))
        for k in range(400)
    ]
    # MovieLens has one event per user and item; so does this stream
    seen: set[tuple[str, str]] = set()
    events = [e for e in events if (e.user_id, e.item_id) not in seen and not seen.add((e.user_id, e.item_id))]
    ids, scores = sequence.product_lists("cooccurrence", events)
    gains = sequence.gains(ids, np.array([int(e.item_id) for e in events]))
    replayed = replay_offline("cooccurrence", events).total
    assert replayed.hits > 20  # a stream with something to find
    assert (int((gains > 0).sum()), round(float(gains.sum()), 9)) == (replayed.hits, round(replayed.gains, 9))
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # each list best first


def test_docstring_examples() -> None:
    assert doctest.testmod(sequence).failed == 0


def test_content_replay_scores_the_stream() -> None:
    data = content.events(limit=4000)
    plain = content.replay(data)
    with_content = content.replay(data, content_weight=10, year_scale=30)
    fresh = content.replay(data, fresh=True)
    for result in (plain, with_content, fresh):
        assert 0.05 < result["full"]["hr"] < 0.5
        assert result["full"]["ndcg"] < result["full"]["hr"]
    # the halves are each half of the events: their mean is the whole
    halves = (plain["first half"]["hr"] + plain["last half"]["hr"]) / 2
    assert abs(halves - plain["full"]["hr"]) < 1e-12
    assert with_content["full"] != plain["full"]  # the content row changes the lists


def test_content_docstring_examples() -> None:
    assert doctest.testmod(content).failed == 0
