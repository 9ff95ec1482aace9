"""Mpeg2Clock: PES PTS unwrapped and anchored, missing times derived, on a fake clock."""

from __future__ import annotations

import dataclasses
import itertools
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.demux.mpeg2 import PictureType, UnitIndexed
from gateway.errors import LocalProtocolError
from gateway.ingest.mpeg2_clock import PTS_WRAP, Mpeg2Clock
from tests.demux.mpeg2_helpers import feed, sim_stream, units_of

NS = 1_000_000_000
START = 5_000 * NS
PERIOD = 3600  # 25 fps in 90 kHz ticks


def sim_units(container: str, open_gop: bool) -> list[UnitIndexed]:
    """Return the simulator's units (160 pictures at 25 fps; the last B-pictures unsent)."""
    return units_of(feed(sim_stream(container, open_gop, pictures=160), "all")[0])


def arrivals(count: int, *, jitter_ns: int = 0, seed: int = 0, start: int = START) -> list[int]:
    """Return one arrival per picture at 25 fps (decode order), with jitter."""
    rnd = random.Random(seed)
    out: list[int] = []
    for k in range(count):
        at = start + k * 40_000_000 + rnd.randint(-jitter_ns, jitter_ns)
        out.append(max(at, out[-1]) if out else at)
    return out


def stamp(clock: Mpeg2Clock, units: list[UnitIndexed], times: list[int]) -> list[int]:
    """Return the outputs for units arriving at times (the first opens a connection)."""
    return [
        clock.update(u, t, new_connection=k == 0)
        for k, (u, t) in enumerate(zip(units, times, strict=True))
    ]


def unit(tr: int, pts: int | None, *, gop: bool = False, pictures: int = 1) -> UnitIndexed:
    """Return a P-picture unit (I when it opens a GOP) at 25 fps."""
    kind = PictureType.I if gop else PictureType.P
    return UnitIndexed(b"", kind, tr, None, False, pictures, pts, gop, Fraction(25))


def display_index(container_units: list[UnitIndexed]) -> list[int]:
    """Return each picture's display position, from the program stream's PTS."""
    pts = [u.pts for u in container_units]
    assert None not in pts
    return [(p - 45_000) // PERIOD for p in pts]  # type: ignore[operator]


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed", "open"])
@pytest.mark.parametrize("container", ["ps", "ts"])
def test_outputs_follow_the_camera_pts(container: str, open_gop: bool) -> None:
    units = sim_units(container, open_gop)
    clock = Mpeg2Clock()
    times = arrivals(len(units), jitter_ns=15_000_000)
    out = stamp(clock, units, times)
    assert out[0] == pytest.approx(times[0] * 90_000 / NS, abs=1)  # anchored at arrival
    assert [o - out[0] for o in out] == [u.pts - units[0].pts for u in units]  # type: ignore[operator]
    assert (clock.from_pts, clock.derived, clock.discontinuities) == (len(units), 0, 0)


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed", "open"])
def test_elementary_stream_times_come_from_temporal_reference_and_arrival(open_gop: bool) -> None:
    units = sim_units("es", open_gop)
    shown = display_index(sim_units("ps", open_gop))
    clock = Mpeg2Clock()
    out = stamp(clock, units, arrivals(len(units), jitter_ns=5_000_000, seed=1))
    assert clock.derived == len(units)
    # In display order, a period apart once the arrival clock is warm (within 1.5 ms:
    # the clock's corrections add up over the few slots a B-picture is shown early).
    pairs = sorted(zip(shown, out, strict=True))[50:]
    assert sorted(pairs, key=lambda p: p[1]) == pairs
    for (s0, t0), (s1, t1) in itertools.pairwise(pairs):
        assert abs(t1 - t0 - (s1 - s0) * PERIOD) <= 135


@pytest.mark.parametrize("keep", ["I", "none-in-a-gop"])
def test_pictures_without_pts_are_derived_from_their_gop(keep: str) -> None:
    units = sim_units("ps", False)
    times = arrivals(len(units), jitter_ns=10_000_000)
    expected = stamp(Mpeg2Clock(), units, times)
    gops = [k for k, u in enumerate(units) if u.gop]
    if keep == "I":  # only I-pictures carry a PTS (a camera's choice)
        stripped = [u if u.gop else dataclasses.replace(u, pts=None) for u in units]
    else:  # the second GOP has none at all
        second = range(gops[1], gops[2])
        stripped = [
            dataclasses.replace(u, pts=None) if k in second else u for k, u in enumerate(units)
        ]
    clock = Mpeg2Clock()
    assert stamp(clock, stripped, times) == expected
    assert clock.derived > 0


def test_pts_wraps_at_33_bits() -> None:
    first = PTS_WRAP - 3 * PERIOD
    units = [unit(k, (first + k * PERIOD) % PTS_WRAP, gop=k == 0) for k in range(8)]
    out = stamp(Mpeg2Clock(), units, arrivals(8))
    assert [b - a for a, b in itertools.pairwise(out)] == [PERIOD] * 7


@pytest.mark.parametrize("jump_s", [20, -5, -2])
def test_a_jump_of_the_camera_clock_continues_after_the_latest_output(jump_s: int) -> None:
    pts = [90_000 + k * PERIOD + (jump_s * 90_000 if k >= 10 else 0) for k in range(20)]
    units = [unit(k, p % PTS_WRAP, gop=k == 0) for k, p in enumerate(pts)]
    clock = Mpeg2Clock()
    out = stamp(clock, units, arrivals(20))
    assert [b - a for a, b in itertools.pairwise(out)] == [PERIOD] * 19
    assert clock.discontinuities == 1


def test_a_pause_longer_than_a_frame_is_kept_at_a_discontinuity() -> None:
    units = [unit(k, k * PERIOD + (50 * 90_000 if k >= 5 else 0), gop=k == 0) for k in range(8)]
    times = arrivals(8)
    times[5:] = [t + 2 * NS for t in times[5:]]  # the jump came with 2 s of silence
    out = stamp(Mpeg2Clock(), units, times)
    assert out[5] - out[4] == 2 * 90_000 + PERIOD


def test_small_backward_steps_are_b_pictures_not_jumps() -> None:
    trs = [0, 3, 1, 2, 6, 4, 5]
    units = [unit(tr, 9000 + tr * PERIOD, gop=tr == 0) for tr in trs]
    clock = Mpeg2Clock()
    out = stamp(clock, units, arrivals(7))
    assert [o - out[0] for o in out] == [tr * PERIOD for tr in trs]
    assert clock.discontinuities == 0


def test_a_new_connection_starts_again_from_arrival() -> None:
    clock = Mpeg2Clock()
    stamp(clock, [unit(k, 1_000_000 + k * PERIOD, gop=k == 0) for k in range(5)], arrivals(5))
    later = START + 7 * NS
    again = stamp(clock, [unit(0, 77, gop=True), unit(1, 77 + PERIOD)], [later, later + 40_000_000])
    assert again == [later * 90_000 // NS, later * 90_000 // NS + PERIOD]


def test_a_stream_without_gop_headers_or_usable_temporal_references_is_monotonic() -> None:
    # The fake camera's pictures: one P-picture header repeated, temporal_reference 68.
    units = [dataclasses.replace(unit(68, None), frame_rate=None) for _ in range(50)]
    out = stamp(Mpeg2Clock(), units, arrivals(50, jitter_ns=3_000_000))
    assert all(b > a for a, b in itertools.pairwise(out))


def test_bytes_after_the_last_picture_take_its_time() -> None:
    clock = Mpeg2Clock()
    out = stamp(clock, [unit(0, 500, gop=True), unit(1, 500 + PERIOD)], arrivals(2))
    tail = UnitIndexed(b"\x00\x00\x01\xb7", None, None, None, False, 0)
    assert clock.update(tail, START + NS, new_connection=False) == out[-1]
    fresh = Mpeg2Clock()
    assert fresh.update(tail, START, new_connection=True) == START * 90_000 // NS


def test_bad_bounds_are_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Mpeg2Clock(max_jump_ns=0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 1023),
            st.one_of(st.none(), st.integers(0, PTS_WRAP - 1)),
            st.booleans(),
            st.integers(0, 3),
            st.sampled_from([None, Fraction(25), Fraction(30000, 1001), Fraction(25, 2)]),
            st.integers(0, 2 * NS),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_any_units_get_an_integer_time(
    steps: list[tuple[int, int | None, bool, int, Fraction | None, int]],
) -> None:
    clock = Mpeg2Clock()
    at = START
    for k, (tr, pts, gop, pictures, rate, wait) in enumerate(steps):
        at += wait
        event = UnitIndexed(b"", PictureType.B, tr, None, False, pictures, pts, gop, rate)
        assert isinstance(clock.update(event, at, new_connection=k == 0), int)
