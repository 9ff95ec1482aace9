"""Log budgets: one summary line per burst (at most one a minute), a token bucket."""

from __future__ import annotations

import itertools

import pytest

from gateway.errors import LocalProtocolError
from gateway.server import Tally, TokenBucket


def test_nothing_recorded_nothing_due() -> None:
    tally = Tally()
    assert tally.get_timer() is None
    assert tally.handle_timer(1e9) is None
    assert tally.flush(1e9) is None


def test_a_burst_is_summarised_once_it_settles() -> None:
    tally = Tally(interval=60.0, settle=3.0)
    for i in range(500):
        tally.record("over max_connections_per_address", "127.0.0.2", 10.0 + i / 1000)
    for i in range(200):
        tally.record("header timeout", "127.0.0.3", 12.0 + i / 1000)
    assert tally.get_timer() == pytest.approx(15.199)
    assert tally.handle_timer(15.0) is None
    summary = tally.handle_timer(15.2)
    assert summary is not None
    count, seconds, details = summary
    assert count == 700
    assert seconds == pytest.approx(5.2)
    assert details == (
        "500 over max_connections_per_address from 127.0.0.2 (500); "
        "200 header timeout from 127.0.0.3 (200)"
    )
    assert tally.get_timer() is None
    assert tally.totals == {"over max_connections_per_address": 500, "header timeout": 200}


def test_a_steady_stream_is_summarised_at_most_once_per_interval() -> None:
    tally = Tally(interval=60.0, settle=3.0)
    lines = []
    now = 0.0
    while now < 600.0:
        tally.record("header timeout", "10.0.0.1", now)
        summary = tally.handle_timer(now)
        if summary is not None:
            lines.append(now)
        now += 0.5
    assert len(lines) == 9
    assert all(b - a >= 60.0 for a, b in itertools.pairwise(lines))


def test_the_next_burst_waits_for_the_interval_after_the_last_line() -> None:
    tally = Tally(interval=60.0, settle=3.0)
    tally.record("header timeout", "10.0.0.1", 0.0)
    assert tally.handle_timer(3.0) is not None
    tally.record("header timeout", "10.0.0.1", 10.0)
    assert tally.get_timer() == 63.0
    assert tally.handle_timer(62.0) is None
    assert tally.handle_timer(63.0) == (1, 53.0, "1 header timeout from 10.0.0.1 (1)")


def test_the_summary_names_the_top_addresses_and_how_many_more() -> None:
    tally = Tally()
    for i, n in enumerate((5, 4, 3, 2, 1)):
        for _ in range(n):
            tally.record("header timeout", f"10.0.0.{i + 1}", 0.0)
    summary = tally.flush(1.0)
    assert summary is not None
    assert summary[2] == (
        "15 header timeout from 10.0.0.1 (5), 10.0.0.2 (4), 10.0.0.3 (3) and 2 more"
    )


def test_addresses_are_bounded_under_a_spoofed_flood() -> None:
    tally = Tally(max_addresses=4)
    for i in range(100):
        tally.record("header timeout", f"10.0.{i // 256}.{i % 256}", 0.0)
    summary = tally.flush(1.0)
    assert summary is not None
    assert "other addresses (96)" in summary[2]


def test_tally_bounds_are_checked() -> None:
    with pytest.raises(LocalProtocolError):
        Tally(interval=1.0, settle=2.0)


def test_token_bucket_allows_a_burst_then_its_rate() -> None:
    bucket = TokenBucket(burst=5, period=60.0)
    assert [bucket.allow(0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert not bucket.allow(11.9)
    assert bucket.allow(12.0)
    assert not bucket.allow(12.0)
    assert [bucket.allow(1000.0) for _ in range(6)] == [True] * 5 + [False]


def test_token_bucket_bounds_are_checked() -> None:
    with pytest.raises(LocalProtocolError):
        TokenBucket(burst=0)
