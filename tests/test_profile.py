"""A user's profile survives its trip through Redis exactly, in a compact blob."""

from __future__ import annotations

import math

import msgpack
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from online_models.profile import Profile

items = st.sampled_from([f"i{k}" for k in range(12)])
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**70), 2**70).map(float),
    st.sampled_from([0.0, -0.0, 1.0, 1.5, 3.0, 1_700_000_000.0, 1_700_000_000.25]),
)


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    profile = Profile("u", history_size=draw(st.integers(1, 8)))
    for item, ts, weight, bought in draw(st.lists(st.tuples(items, numbers, numbers, st.booleans()), max_size=20)):
        profile.add(item, ts, weight, purchased=bought)
    profile.seen |= set(draw(st.lists(items, max_size=3)))
    profile.shown = draw(st.lists(items, max_size=10))
    if draw(st.booleans()):
        profile.factors = np.arange(4, dtype=np.float32)
    for k in range(draw(st.integers(0, 20))):
        profile.is_duplicate(f"e{k}")
    return profile


@given(profiles())
@settings(max_examples=300, deadline=None)
def test_a_profile_decodes_to_what_was_encoded(profile: Profile) -> None:
    again = Profile.decode("u", profile.encode(), history_size=profile.history_size)
    assert again.history == profile.history
    assert all(math.copysign(1, a[1]) == math.copysign(1, b[1]) for a, b in zip(again.history, profile.history))
    assert (again.seen, again.purchased, again.shown) == (profile.seen, profile.purchased, profile.shown)
    assert (again.n_events, again.last_ts, again.recent_events) == (profile.n_events, profile.last_ts, profile.recent_events)
    assert (again.factors is None) == (profile.factors is None)
    if profile.factors is not None:
        assert np.array_equal(again.factors, profile.factors)


def test_history_items_and_whole_numbers_are_stored_once_and_short() -> None:
    profile = Profile("u")
    for k in range(8):  # one item viewed, clicked, carted: the usual session
        profile.add("item-12345", 1_700_000_000.0 + k, weight=float(1 + k % 3))
    blob = profile.encode()
    assert blob.count(b"item-12345") == 1
    assert len(blob) < 100


def test_a_profile_written_by_0_1_is_read() -> None:
    digest = int.from_bytes(b"\x01\x02\x03\x04\x05\x06\x07\x08", "big")
    old = msgpack.packb(
        [[["a", 10.0, 1.0], ["b", 11.0, 5.0]], ["a", "b", "z"], ["b"], None, ["c"], 2, 11.0, [digest]],
        use_bin_type=True,
    )
    profile = Profile.decode("u", old)
    assert profile.history == [("a", 10.0, 1.0), ("b", 11.0, 5.0)]
    assert (profile.seen, profile.purchased, profile.shown, profile.n_events) == ({"a", "b", "z"}, {"b"}, ["c"], 2)
    assert profile.recent_events == [b"\x01\x02\x03\x04\x05\x06"]
