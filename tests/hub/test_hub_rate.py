"""Rate selector: accuracy, even spacing, jitter, gaps, clock restarts (fake source time)."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from gateway.errors import LocalProtocolError
from gateway.hub.rate import IntervalEstimator, RateSelector, pts_ns, received_ns
from gateway.media import NS_PER_SECOND, Frame

TARGETS = [1, 2, 5, 10, 15, 25]
SOURCES = [25, 30]


def source_times(
    fps: float, seconds: float, *, jitter: float = 0.0, seed: int = 0, start: int = 0
) -> list[int]:
    """Return frame times in ns: a regular grid, each moved by up to ``jitter`` intervals."""
    rng = random.Random(seed)
    period = NS_PER_SECOND / fps
    n = round(seconds * fps)
    return [start + round(k * period + rng.uniform(-jitter, jitter) * period) for k in range(n)]


def select(times: list[int], target: float | None) -> list[int]:
    """Run one selector over ``times`` and return the delivered times."""
    est = IntervalEstimator()
    sel = RateSelector(target)
    out = []
    for t in times:
        est.update(t)
        if sel.offer(t, est.interval_ns):
            out.append(t)
    return out


def max_gap(times: list[int]) -> int:
    """Return the largest gap between consecutive times."""
    return max(b - a for a, b in pairwise(times))


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("jitter", [0.0, 0.2])
def test_rate_within_5_percent_over_10_s_and_evenly_spaced(
    source: int, target: int, jitter: float
) -> None:
    times = source_times(source, 10.0, jitter=jitter, seed=source * 100 + target)
    got = select(times, target)
    assert abs(len(got) - target * 10) <= 0.05 * target * 10
    ideal = NS_PER_SECOND / target
    interval = NS_PER_SECOND / source
    # Even spacing: never more than one source interval from the ideal gap; with jitter
    # the delivered frames' own displacement (2 x 20%) comes on top.
    slack = interval * (1 + 2 * jitter) + 1
    assert max_gap(got) <= ideal + slack
    gaps = [b - a for a, b in pairwise(got)]
    assert min(gaps) >= ideal - slack


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("target", TARGETS)
def test_rate_exact_without_jitter_picks_the_same_phase_every_second(
    source: int, target: int
) -> None:
    got = select(source_times(source, 10.0), target)
    assert len(got) == target * 10
    # The pattern repeats every second: the same frames are chosen each second.
    per_second = [t % NS_PER_SECOND for t in got]
    assert per_second[:target] * 10 == per_second


def test_non_divisor_rate_alternates_two_and_three_intervals() -> None:
    got = select(source_times(25, 2.0), 10)
    gaps = {b - a for a, b in pairwise(got)}
    assert gaps == {80_000_000, 120_000_000}


@pytest.mark.parametrize("target", [None, 25, 30, 60])
@pytest.mark.parametrize("jitter", [0.0, 0.2])
def test_target_at_or_above_source_rate_delivers_every_frame(
    target: float | None, jitter: float
) -> None:
    times = source_times(25, 10.0, jitter=jitter, seed=7)
    assert select(times, target) == times


def test_target_zero_delivers_nothing_and_resumes_in_phase() -> None:
    est = IntervalEstimator()
    sel = RateSelector(0)
    times = source_times(25, 4.0)
    out = []
    for i, t in enumerate(times):
        if i == 50:
            sel.target_fps = 5
        est.update(t)
        if sel.offer(t, est.interval_ns):
            out.append(t)
    assert sel.target_fps == 5
    assert out[0] == times[50]
    assert len(out) == 10


def test_gap_resyncs_without_a_burst() -> None:
    before = source_times(25, 5.0)
    after = source_times(25, 5.0, start=8 * NS_PER_SECOND)  # camera paused 3 s
    got = select(before + after, 10)
    resumed = [t for t in got if t >= after[0]]
    assert resumed[0] == after[0]  # the first frame after the pause goes out at once
    gaps = [b - a for a, b in pairwise(resumed)]
    assert min(gaps) >= 80_000_000  # no catch-up burst
    assert abs(len(resumed) - 50) <= 1


def test_clock_going_backwards_resyncs() -> None:
    first = source_times(25, 2.0, start=50 * NS_PER_SECOND)
    second = source_times(25, 2.0)  # a new upstream connection restarts the clock
    got = select(first + second, 5)
    assert second[0] in got
    assert abs(len([t for t in got if t < first[0]]) - 10) <= 1


def test_retarget_keeps_the_phase() -> None:
    est = IntervalEstimator()
    sel = RateSelector(25)
    out = []
    for i, t in enumerate(source_times(25, 4.0)):
        if i == 50:
            sel.target_fps = 5
        est.update(t)
        if sel.offer(t, est.interval_ns):
            out.append(t)
    late = [t for t in out if t >= 2 * NS_PER_SECOND]
    assert len(late) == 10
    assert max_gap(late) == 200_000_000


def test_burst_of_identical_timestamps_delivers_one() -> None:
    est = IntervalEstimator()
    sel = RateSelector(10)
    decisions = []
    for t in [0, 100_000_000, 100_000_000, 100_000_000, 200_000_000]:
        est.update(t)
        decisions.append(sel.offer(t, est.interval_ns))
    assert decisions == [True, True, False, False, True]


def test_reset_delivers_the_next_frame() -> None:
    sel = RateSelector(1)
    assert sel.offer(0, 40)
    assert not sel.offer(40, 40)
    sel.reset()
    assert sel.offer(80, 40)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_invalid_target_is_a_local_error(bad: float) -> None:
    with pytest.raises(LocalProtocolError, match="target fps"):
        RateSelector(bad)


def test_interval_estimator_ignores_gaps_and_bursts() -> None:
    est = IntervalEstimator()
    assert est.fps is None
    for t in source_times(25, 2.0):
        est.update(t)
    assert est.interval_ns == 40_000_000
    est.update(10 * NS_PER_SECOND)  # gap
    est.update(10 * NS_PER_SECOND)  # burst
    assert est.interval_ns == 40_000_000
    assert est.fps == 25.0


def test_timestamps_from_pts_and_arrival() -> None:
    frame = Frame(b"x", "image/jpeg", 0, pts=90_000 * 3, received_ns=5)
    assert pts_ns(frame) == 3 * NS_PER_SECOND
    assert received_ns(frame) == 5
