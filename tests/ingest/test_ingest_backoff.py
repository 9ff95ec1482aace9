"""gateway.ingest.backoff: the reconnect and stall policy on a fake clock."""

from __future__ import annotations

import random

import pytest

from gateway.ingest.backoff import Failure, ReconnectPolicy, StallWatchdog


def test_delays_double_from_half_a_second_to_the_cap_within_jitter() -> None:
    policy = ReconnectPolicy(rng=random.Random(1))
    now = 0.0
    for attempt in range(12):
        base = min(30.0, 0.5 * 2**attempt)
        delay = policy.failed(now, Failure.NETWORK)
        assert base * 0.75 <= delay <= base
        assert delay <= 30.0
        now += delay


def test_jitter_spreads_delays() -> None:
    delays = {ReconnectPolicy(rng=random.Random(s)).failed(0.0, Failure.NETWORK) for s in range(20)}
    assert len(delays) > 10
    assert all(0.375 <= d <= 0.5 for d in delays)


def test_no_jitter_gives_exact_delays() -> None:
    policy = ReconnectPolicy(jitter=0.0)
    assert [policy.failed(0.0, Failure.STALL) for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]


def test_auth_failures_wait_a_minute_every_time() -> None:
    policy = ReconnectPolicy(rng=random.Random(2))
    for _ in range(5):
        assert 45.0 <= policy.failed(0.0, Failure.AUTH) <= 60.0


def test_timer_fires_once_when_due() -> None:
    policy = ReconnectPolicy(jitter=0.0)
    assert policy.get_timer() is None
    delay = policy.failed(100.0, Failure.UPSTREAM)
    assert policy.get_timer() == 100.0 + delay
    assert not policy.handle_timer(100.0 + delay / 2)
    assert policy.handle_timer(100.0 + delay)
    assert not policy.handle_timer(200.0)
    assert policy.get_timer() is None


def test_attempts_reset_after_a_healthy_minute() -> None:
    policy = ReconnectPolicy(jitter=0.0)
    for _ in range(5):
        policy.failed(0.0, Failure.NETWORK)
    policy.connected(10.0)
    assert policy.failed(40.0, Failure.NETWORK) == 16.0  # live 30 s: not healthy yet
    policy.connected(100.0)
    assert policy.failed(160.0, Failure.NETWORK) == 0.5  # live 60 s: start over
    assert policy.get_timer() == 160.5


def test_custom_bounds_for_tests() -> None:
    policy = ReconnectPolicy(initial=0.01, maximum=0.04, auth_delay=0.2, jitter=0.0)
    assert [policy.failed(0.0, Failure.NETWORK) for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    assert policy.failed(0.0, Failure.AUTH) == 0.2


def test_jitter_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="jitter"):
        ReconnectPolicy(jitter=1.0)


def test_stall_watchdog() -> None:
    watchdog = StallWatchdog(5.0)
    assert watchdog.get_timer() is None
    assert not watchdog.handle_timer(1e9)
    watchdog.data_received(10.0)
    assert watchdog.get_timer() == 15.0
    assert not watchdog.handle_timer(14.9)
    watchdog.data_received(14.0)
    assert not watchdog.handle_timer(18.9)
    assert watchdog.handle_timer(19.0)
    watchdog.stop()
    assert watchdog.get_timer() is None
