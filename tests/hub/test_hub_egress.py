"""Egress budget across streams: the issue 3 scenario end to end, rebalanced rarely."""

from __future__ import annotations

import pytest

from gateway.hub import EgressBudget, Priority, Stream, Subscription
from gateway.media import Frame, StreamKind

FRAME_BYTES = 50_000
TICKS_25 = 3600


def frames(n: int, *, start: int = 0, size: int = FRAME_BYTES) -> list[Frame]:
    return [Frame(bytes(size), "image/jpeg", i, pts=i * TICKS_25) for i in range(start, start + n)]


def run(stream: Stream, subs: list[Subscription], batch: list[Frame]) -> list[int]:
    """Publish ``batch``; every subscriber takes what it is due at once. Return counts."""
    counts = [0] * len(subs)
    for f in batch:
        stream.publish(f)
        for i, sub in enumerate(subs):
            if sub.poll() is not None:
                counts[i] += 1
    return counts


def test_required_client_keeps_its_rate_while_desired_ones_degrade_evenly() -> None:
    # A budget that fits about one full-rate stream: 25 fps x 50 kB.
    budget = EgressBudget(25 * FRAME_BYTES)
    stream = Stream(StreamKind.MJPEG, budget=budget)
    run(stream, [], frames(5))  # the stream's rate and frame size become known
    req = stream.subscribe(target_fps=10, priority=Priority.REQUIRED)
    des = [stream.subscribe(target_fps=25) for _ in range(3)]
    counts = run(stream, [req, *des], frames(250, start=5))
    assert counts[0] == pytest.approx(100, rel=0.05)
    # (25 - 10) x 50 kB/s shared by three: 5 fps each, evenly.
    assert counts[1:] == pytest.approx([50, 50, 50], rel=0.05)
    assert max(counts[1:]) - min(counts[1:]) <= 1
    assert req.allowed_fps is None  # granted in full
    assert [d.allowed_fps for d in des] == pytest.approx([5, 5, 5])
    assert [d.effective_fps for d in des] == pytest.approx([5, 5, 5])
    # Bytes sent stay within the budget.
    assert sum(counts) * FRAME_BYTES <= 25 * FRAME_BYTES * 10 * 1.05
    # The allocator ran on membership changes, not per frame.
    assert budget.runs <= 4
    # One desired client leaves: the other two get its share.
    des[0].close()
    counts = run(stream, [req, *des[1:]], frames(250, start=255))
    assert counts == pytest.approx([100, 75, 75], rel=0.05)


def test_budget_is_shared_across_streams_and_follows_frame_size() -> None:
    budget = EgressBudget.from_mbps(8.0)  # 1 MB/s
    assert budget.bytes_per_s == 1_000_000
    a = Stream(StreamKind.MJPEG, name="a", budget=budget)
    b = Stream(StreamKind.MJPEG, name="b", budget=budget)
    run(a, [], frames(5, size=20_000))
    run(b, [], frames(5, size=20_000))
    sa = a.subscribe()  # source rate, desired
    sb = b.subscribe(target_fps=25)
    run(a, [], frames(2, start=5, size=20_000))
    # 2 x 25 fps x 20 kB = 1 MB/s: fits exactly.
    assert (sa.allowed_fps, sb.allowed_fps) == (None, None)
    runs = budget.runs
    # Frames double in size: the average follows over ~16 frames and the allocator re-runs
    # once per 10% of drift (log(2) / log(1.1) ~ 7 times), not per frame.
    run(a, [], frames(50, start=7, size=40_000))
    assert budget.runs - runs <= 8
    assert sa.allowed_fps is not None
    assert sa.allowed_fps < 25
    assert sb.allowed_fps is not None
    assert sa.allowed_fps == pytest.approx(sb.allowed_fps, rel=0.05)
    a.close()
    run(b, [], frames(1, start=60, size=20_000))
    assert sb.allowed_fps is None


def test_unlimited_budget_never_limits() -> None:
    budget = EgressBudget.from_mbps(0)
    assert budget.bytes_per_s is None
    stream = Stream(StreamKind.MJPEG, budget=budget)
    sub = stream.subscribe()
    assert run(stream, [sub], frames(100)) == [100]
    assert sub.allowed_fps is None


def test_starved_desired_client_gets_nothing_until_budget_frees() -> None:
    budget = EgressBudget(10 * FRAME_BYTES)
    stream = Stream(StreamKind.MJPEG, budget=budget)
    run(stream, [], frames(5))
    req = stream.subscribe(target_fps=10, priority=Priority.REQUIRED)
    des = stream.subscribe(target_fps=25, start_with_latest=False)
    counts = run(stream, [req, des], frames(250, start=5))
    assert counts[0] == pytest.approx(100, rel=0.05)
    assert counts[1] == 0
    req.close()
    assert run(stream, [des], frames(50, start=255)) == [pytest.approx(20, abs=1)]


def test_streams_report_demands_and_subscriptions_take_their_allocation() -> None:
    stream = Stream(StreamKind.MJPEG)
    req = stream.subscribe(target_fps=10, priority=Priority.REQUIRED)
    fast = stream.subscribe(target_fps=60)
    any_rate = stream.subscribe()
    # Before the source rate is measured, "the source rate" is priced at default_fps.
    claims = stream.demands(default_fps=25.0)
    assert [sub for sub, _ in claims] == [req, fast, any_rate]
    assert [(d.priority, d.fps) for _, d in claims] == [
        (Priority.REQUIRED, 10),
        (Priority.DESIRED, 60),
        (Priority.DESIRED, 25),
    ]
    run(stream, [], frames(5))  # 25 fps, 50 kB frames measured
    claims = stream.demands(default_fps=12.5)
    assert [d.fps for _, d in claims] == pytest.approx([10, 25, 25])  # capped at the source
    assert {d.frame_bytes for _, d in claims} == {FRAME_BYTES}
    fast.set_allowed_fps(5.0)
    assert fast.allowed_fps == 5.0
    assert fast.effective_fps == pytest.approx(5.0)
    req.set_allowed_fps(20.0)  # more than it asked for: its target stays
    assert req.effective_fps == pytest.approx(10)
    fast.set_allowed_fps(None)
    assert fast.effective_fps == pytest.approx(60)
