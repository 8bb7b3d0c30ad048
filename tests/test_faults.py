"""Faults mid-stream: the final state equals a fault-free run; no event lost, none applied twice.

The scenarios live in ``bench/reliability.py``, which also reports them as a table.
"""

from __future__ import annotations

import pytest

from bench import reliability
from bench.harness import assert_same_state, fault_free_state, redis_state, shop_stream

pytestmark = pytest.mark.integration


def check(outcome: reliability.Outcome) -> None:
    assert (outcome.lost, outcome.doubled) == (0, 0), outcome
    assert outcome.same_state, outcome
    assert outcome.processed == outcome.sent


def test_a_worker_killed_mid_stream_and_restarted_loses_and_doubles_nothing(
    settings_factory, worker_factory, redis_client
):
    settings = settings_factory(model=reliability.MODEL)
    check(reliability.worker_killed(settings, worker_factory, redis_client, events=20_000))
    # and the comparison itself can fail: the state differs from another stream's
    with pytest.raises(AssertionError):
        assert_same_state(fault_free_state(settings, shop_stream(20_000, seed=99)),
                          redis_state(redis_client, settings.namespace), settings.namespace)


def test_a_redis_outage_makes_the_worker_wait_and_retry_then_catch_up(settings_factory, worker_factory, tmp_path):
    check(reliability.redis_outage(settings_factory(model=reliability.MODEL), worker_factory, tmp_path))


def test_the_worker_reconnects_by_itself_when_the_broker_restarts(
    settings_factory, worker_factory, redis_client, tmp_path
):
    check(reliability.broker_restart(settings_factory(model=reliability.MODEL), worker_factory, redis_client, tmp_path))


def test_a_worker_joining_then_leaving_mid_stream_loses_and_doubles_nothing(
    settings_factory, worker_factory, redis_client
):
    check(reliability.rebalance(settings_factory(model=reliability.MODEL), worker_factory, redis_client))


def test_an_overloaded_worker_keeps_its_memory_bounded_and_catches_up(settings_factory, worker_factory, redis_client):
    outcome = reliability.overload(
        settings_factory(model=reliability.MODEL), worker_factory, redis_client, events=12_000
    )
    check(outcome)
    assert outcome.backlog > 0  # the producer did outrun the worker
    assert outcome.memory_growth_mib < 200, outcome.fault
