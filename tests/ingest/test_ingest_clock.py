"""MediaClock: MJPEG arrival times smoothed into an even 90 kHz clock, on a fake clock."""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import LocalProtocolError
from gateway.ingest.clock import MediaClock

NS = 1_000_000_000
MS = 1_000_000
#: Where the fake monotonic clock starts (a machine up for a few hours).
START = 12_345 * NS
#: One output tick in ns.
TICK = NS / 90_000


def camera(
    fps: float, seconds: float, *, jitter_ns: float = 0.0, seed: int = 0, start: float = START
) -> list[int]:
    """Return arrivals of a camera at fps with uniform jitter (never out of order)."""
    rnd = random.Random(seed)
    interval = NS / fps
    out: list[int] = []
    for k in range(round(seconds * fps)):
        at = int(start + k * interval + rnd.uniform(-jitter_ns, jitter_ns))
        out.append(max(at, out[-1]) if out else at)
    return out


def stamp(clock: MediaClock, arrivals: Iterable[int], *, new: bool = True) -> list[float]:
    """Return the outputs (as ns) for arrivals; the first starts a connection if new."""
    out = []
    for k, at in enumerate(arrivals):
        out.append(clock.update(at, new_connection=new and k == 0) * TICK)
    return out


def intervals(times: list[float]) -> Iterator[float]:
    """Yield the differences of consecutive times."""
    return (b - a for a, b in itertools.pairwise(times))


def lag(arrivals: list[int], out: list[float]) -> float:
    """Return how far at most an output was before its arrival."""
    return max(a - o for o, a in zip(out, arrivals, strict=True))


def check_bounds(arrivals: list[int], out: list[float], *, lead: float = 2 * MS) -> None:
    """Outputs strictly increase and are never more than lead after their arrival."""
    assert all(d > 0 for d in intervals(out))
    assert max(o - a for o, a in zip(out, arrivals, strict=True)) <= lead + TICK


@pytest.mark.parametrize("fps", [12.5, 25, 30])
@pytest.mark.parametrize(("jitter", "relative"), [(5 * MS, False), (0.2, True)])
@pytest.mark.parametrize("seed", [0, 1])
def test_jitter_is_smoothed_to_the_camera_rate(
    fps: float, jitter: float, relative: bool, seed: int
) -> None:
    interval = NS / fps
    arrivals = camera(fps, 300, jitter_ns=jitter * interval if relative else jitter, seed=seed)
    out = stamp(MediaClock(), arrivals)
    check_bounds(arrivals, out)
    warm = round(3 * fps)  # a short warm-up: three seconds
    assert max(abs(d - interval) for d in intervals(out[warm:])) < 1 * MS
    # The rate is the camera's (after the first minute, while the phase settles).
    minute = round(60 * fps)
    rate = statistics.linear_regression(range(len(out) - minute), out[minute:]).slope
    assert rate == pytest.approx(interval, rel=1e-5)
    # Not behind arrival by much more than the jitter either.
    spread = 2 * (jitter * interval if relative else jitter)
    assert lag(arrivals[warm:], out[warm:]) < spread + 15 * MS
    assert lag(arrivals[minute:], out[minute:]) < spread + 4 * MS


def test_a_rate_change_at_a_reconnect_is_adopted() -> None:
    clock = MediaClock()
    first = camera(25, 20, jitter_ns=5 * MS)
    second = camera(12.5, 20, jitter_ns=5 * MS, seed=3, start=first[-1] + 1.5 * NS)
    out = stamp(clock, first) + stamp(clock, second)
    check_bounds(first + second, out)
    assert out[len(first)] == pytest.approx(second[0], abs=TICK)  # re-anchored on arrival
    later = out[len(first) + 3 * 12 :]
    assert max(abs(d - 80 * MS) for d in intervals(later)) < 1 * MS
    assert clock.restarts == 2


def test_a_rate_change_mid_connection_is_adopted() -> None:
    first = camera(25, 20, jitter_ns=2 * MS)
    second = camera(12.5, 20, jitter_ns=2 * MS, seed=4, start=first[-1] + 80 * MS)
    clock = MediaClock()
    out = stamp(clock, first + second)
    check_bounds(first + second, out)
    later = out[len(first) + 5 * 12 :]
    assert max(abs(d - 80 * MS) for d in intervals(later)) < 1 * MS
    assert clock.restarts == 2  # the connection, then the misses


def test_a_stall_is_a_gap_not_a_squeeze() -> None:
    arrivals = camera(25, 30, jitter_ns=3 * MS)
    stalled = arrivals[:250] + arrivals[325:]  # 75 frames (3 s) never came
    clock = MediaClock()
    out = stamp(clock, stalled)
    check_bounds(stalled, out)
    jump = out[250] - out[249]
    assert 2.95 * NS < jump < 3.1 * NS
    assert clock.stalls == 1
    after = list(intervals(out[250:]))
    assert max(abs(d - 40 * MS) for d in after) < 1 * MS


@pytest.mark.parametrize("burst", [3, 12])
def test_a_burst_after_a_hole_stays_even_and_never_ahead(burst: int) -> None:
    arrivals = camera(25, 20)
    for hole in range(100, 500, 50):  # every 2 s, frames held for (burst - 1) intervals
        arrivals[hole : hole + burst] = [arrivals[hole + burst - 1]] * burst
    clock = MediaClock()
    out = stamp(clock, arrivals)
    assert all(o <= a for o, a in zip(out, arrivals, strict=True))
    assert max(abs(d - 40 * MS) for d in intervals(out[50:])) < 1 * MS
    assert (clock.stalls, clock.restarts) == (0, 1)


def test_an_hour_slightly_off_the_nominal_rate_does_not_drift() -> None:
    fps = 25.02
    arrivals = camera(fps, 3600, jitter_ns=5 * MS, seed=5)
    out = stamp(MediaClock(), arrivals)
    check_bounds(arrivals, out)
    assert max(abs(a - o) for o, a in zip(out, arrivals, strict=True)) < 100 * MS
    assert max(abs(a - o) for o, a in zip(out[-100:], arrivals[-100:], strict=True)) < 15 * MS
    mean = (out[-1] - out[100]) / (len(out) - 101)
    assert mean == pytest.approx(NS / fps, rel=1e-5)


def test_skipped_frames_catch_up() -> None:
    arrivals = camera(25, 20, jitter_ns=2 * MS)
    skipped = arrivals[:200] + arrivals[203:]  # the camera left out three frames
    clock = MediaClock()
    out = stamp(clock, skipped)
    check_bounds(skipped, out)
    # A few frames late by three intervals, then one gap; the fit goes on (no restart).
    assert (clock.stalls, clock.restarts) == (1, 1)
    assert 150 * MS < max(intervals(out)) < 170 * MS
    assert lag(skipped[210:], out[210:]) < 8 * MS
    assert max(abs(d - 40 * MS) for d in intervals(out[210:])) < 1 * MS


def test_frames_arriving_together_still_advance() -> None:
    clock = MediaClock()
    out = stamp(clock, [START, START, START, START + 40 * MS, START + 40 * MS])
    assert all(d > 0 for d in intervals(out))
    assert out[0] == pytest.approx(START, abs=TICK)


def test_a_new_connection_never_goes_back() -> None:
    clock = MediaClock()
    first = stamp(clock, camera(25, 2))
    again = stamp(clock, [START + 1 * MS])  # a reconnect in a clock that went back (tests)
    assert again[0] > first[-1]
    assert clock.interval_ns is None  # the fit starts again


def test_interval_estimate() -> None:
    clock = MediaClock()
    assert clock.interval_ns is None
    stamp(clock, camera(30, 5, jitter_ns=1 * MS))
    assert clock.interval_ns == pytest.approx(NS / 30, rel=1e-3)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_lead_ns": -1}, {"gap_ns": 0}, {"window": 1}, {"slew_ns": -1}, {"max_misses": 0}],
)
def test_bad_bounds_are_a_local_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(LocalProtocolError):
        MediaClock(**kwargs)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(0, 3 * NS), st.integers(35 * MS, 45 * MS), st.just(0)),
        min_size=1,
        max_size=300,
    ),
    st.lists(st.integers(0, 299), max_size=3),
)
def test_any_arrivals_give_increasing_times_within_the_lead(
    steps: list[int], reconnects: list[int]
) -> None:
    clock = MediaClock()
    at, ticks = START, [0]
    for k, step in enumerate(steps):
        at += step
        tick = clock.update(at, new_connection=k == 0 or k in reconnects)
        # At most the lead after arrival, unless that is not after the previous output.
        assert ticks[-1] < tick <= max((at + 2 * MS) * 90_000 // NS, ticks[-1] + 1)
        ticks.append(tick)
