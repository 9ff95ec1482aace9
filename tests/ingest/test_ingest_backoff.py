"""gateway.ingest.backoff: the reconnect and stall policy on a fake clock."""

from __future__ import annotations

import random

import pytest

from gateway.ingest.backoff import Failure, ReconnectPolicy, StallWatchdog, format_bytes


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


def test_stall_watchdog_counts_frames_not_bytes() -> None:
    watchdog = StallWatchdog(5.0)
    assert watchdog.get_timer() is None
    assert watchdog.handle_timer(1e9) is None
    watchdog.start(10.0, bytes_in=300)
    assert watchdog.get_timer() == 15.0
    assert watchdog.handle_timer(14.9) is None
    watchdog.frame_received(14.0, bytes_in=50_300)
    watchdog.data_received(18.8, 3_250_300)  # bytes keep coming: no frame does
    assert watchdog.handle_timer(18.9) is None
    assert watchdog.handle_timer(19.0) == "stalled: no frame for 5.0 s while 3.2 MB arrived"
    watchdog.stop()
    assert watchdog.get_timer() is None


def test_stall_watchdog_without_data_says_so() -> None:
    watchdog = StallWatchdog(0.3)
    watchdog.start(0.0, bytes_in=120)
    watchdog.data_received(0.0, 120)
    assert watchdog.handle_timer(0.3) == "stalled: no data for 0.3 s"
    watchdog.frame_received(1.0, 500)
    watchdog.data_received(1.01, 516)  # the delimiter after the frame, then silence
    assert watchdog.handle_timer(1.3) == "stalled: no data for 0.3 s"
    watchdog.data_received(1.2, 1_400)
    assert watchdog.handle_timer(1.3) == "stalled: no frame for 0.3 s while 900 B arrived"


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (4_149, "4.1 kB"), (999_949, "999.9 kB"),
     (999_950, "1.0 MB"), (3_200_000, "3.2 MB"), (12_345_678_901, "12.3 GB")],
)  # fmt: skip
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text
