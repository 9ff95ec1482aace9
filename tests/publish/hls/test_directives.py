"""Delivery directives (RFC 8216bis §6.2.5): validation, blocking reload, delta updates."""

from __future__ import annotations

from itertools import pairwise

import pytest

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.publish.hls.live import (
    PlaylistRequest,
    Readiness,
    advance_part_limit,
    blocking_timeout,
    media_playlist,
    parse_directives,
    readiness,
)
from gateway.publish.hls.playlist import render
from gateway.publish.hls.segmenter import Segmenter

from .m3u8 import parse, problems
from .streams import feed, regular, segmenter, synthetic

R = PlaylistRequest


@pytest.mark.parametrize(
    ("query", "request_"),
    [
        ([], R()),
        ([("_HLS_msn", "5")], R(msn=5)),
        ([("_HLS_msn", "5"), ("_HLS_part", "2")], R(5, 2)),
        ([("_HLS_part", "0"), ("_HLS_msn", "007")], R(7, 0)),  # decimal-integer digits
        ([("_HLS_msn", "18446744073709551615")], R(msn=2**64 - 1)),
        ([("_HLS_skip", "YES")], R(skip=True)),
        ([("_HLS_skip", "v2"), ("_HLS_msn", "3")], R(msn=3, skip=True)),
        ([("token", "abc"), ("_HLS_future", "1"), ("_hls_msn", "x")], R()),  # not ours
    ],
)
def test_directives_parse(query: list[tuple[str, str]], request_: PlaylistRequest) -> None:
    assert parse_directives(query) == request_


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ([("_HLS_part", "1")], "_HLS_part without _HLS_msn"),  # §6.2.5.2: MUST be 400
        ([("_HLS_msn", "-1")], "decimal-integer"),
        ([("_HLS_msn", "1.5")], "decimal-integer"),
        ([("_HLS_msn", "")], "decimal-integer"),
        ([("_HLS_msn", " 1")], "decimal-integer"),
        ([("_HLS_msn", "0x10")], "decimal-integer"),
        ([("_HLS_msn", "\uff11")], "decimal-integer"),  # FULLWIDTH DIGIT ONE
        ([("_HLS_msn", "18446744073709551616")], "decimal-integer"),
        ([("_HLS_msn", "1" * 200)], "decimal-integer"),
        ([("_HLS_msn", "1"), ("_HLS_part", "x")], "decimal-integer"),
        ([("_HLS_msn", "1"), ("_HLS_msn", "2")], "twice"),
        ([("_HLS_skip", "NO")], "YES or v2"),
        ([("_HLS_skip", "yes")], "YES or v2"),
    ],
)
def test_bad_directives_are_a_400(query: list[tuple[str, str]], reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason) as error:
        parse_directives(query)
    assert len(str(error.value)) < 80  # a hostile value is not echoed at length


def _after(seconds: float) -> Segmenter:
    seg = segmenter()
    feed(seg, synthetic(regular(25, seconds)))
    return seg


def test_nothing_is_ready_before_the_first_part() -> None:
    seg = segmenter()
    assert readiness(seg, R()) is Readiness.WAIT
    assert readiness(seg, R(0, 0)) is Readiness.WAIT
    assert readiness(seg, R(1)) is Readiness.WAIT
    assert readiness(seg, R(2)) is Readiness.TOO_FAR


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (R(), Readiness.READY),
        (R(skip=True), Readiness.READY),
        (R(0), Readiness.READY),  # long gone or old: the whole playlist at once (§6.2.5.2)
        (R(0, 3), Readiness.READY),
        (R(1), Readiness.READY),
        (R(2), Readiness.WAIT),  # segment 2 has parts, no EXTINF yet
        (R(3), Readiness.WAIT),
        (R(4), Readiness.TOO_FAR),  # more than two past the last complete segment
        (R(2, 0), Readiness.READY),
        (R(2, 1), Readiness.WAIT),
        (R(1, 7), Readiness.READY),  # past segment 1's last part: part 0 of segment 2
        (R(2, 15), Readiness.WAIT),  # 15 parts ahead: the Advance Part Limit (3 / 0.2)
        (R(2, 16), Readiness.TOO_FAR),
        (R(3, 0), Readiness.WAIT),
        (R(3, 10), Readiness.WAIT),  # segment 2's other 4 parts (nominally), then 11
        (R(3, 11), Readiness.TOO_FAR),
        (R(4, 0), Readiness.TOO_FAR),
    ],
)
def test_blocking_reload(request_: PlaylistRequest, expected: Readiness) -> None:
    seg = _after(2.2)  # segments 0 and 1 complete, part 2.0 published
    last = seg.last_part()
    assert last is not None
    assert (last.msn, last.index) == (2, 0)
    assert readiness(seg, request_) is expected


def test_a_blocked_request_is_answered_by_the_part_it_waits_for() -> None:
    seg = segmenter()
    frames = synthetic(regular(25, 8))
    answered = []
    request = R(0, 0)
    for pushed, frame in enumerate(frames, 1):
        seg.push_video(frame, 0)
        state = readiness(seg, request)
        assert state is not Readiness.TOO_FAR
        if state is Readiness.READY:
            text = render(media_playlist(seg))
            playlist = parse(text)
            names = [p.uri for s in playlist.segments for p in s.parts]
            assert f"part{request.msn}.{request.part}.m4s" in names or request.part == 5
            last = seg.last_part()
            assert last is not None
            answered.append(pushed)
            # What a player asks next: the part after the newest one it saw.
            request = R(last.msn, last.index + 1)
    assert len(answered) >= 30
    # Answered as soon as the part exists: every five pictures at 25 fps, part = 0.2 s.
    gaps = {b - a for a, b in pairwise(answered[2:])}
    assert gaps == {5}


def test_a_session_numbered_from_one_counts_its_parts_from_there() -> None:
    """The HTTP layer numbers from 1 (hls.js 1.7 takes a part of segment 0 for none)."""
    seg = Segmenter(first_msn=1)
    # Before the first part: the Advance Part Limit counts from the first segment.
    assert readiness(seg, R(1, 14)) is Readiness.WAIT  # 15 parts ahead
    assert readiness(seg, R(1, 15)) is Readiness.TOO_FAR
    assert readiness(seg, R(3)) is Readiness.TOO_FAR
    feed(seg, synthetic(regular(25, 2.2)))  # segments 1 and 2 complete, part 3.0 out
    last = seg.last_part()
    assert last is not None
    assert (last.msn, last.index) == (3, 0)
    assert readiness(seg, R(3, 1)) is Readiness.WAIT
    assert readiness(seg, R(5)) is Readiness.TOO_FAR
    text = render(media_playlist(seg))
    assert problems(text) == []
    playlist = parse(text)
    assert playlist.media_sequence == 1
    assert [s.uri for s in playlist.complete] == ["seg1.m4s", "seg2.m4s"]
    assert seg.segment(0) is None
    with pytest.raises(LocalProtocolError, match="first_msn"):
        Segmenter(first_msn=-1)


def test_limits_and_timeout_follow_the_targets() -> None:
    assert advance_part_limit(Segmenter()) == pytest.approx(15.0)  # before the first frames
    assert advance_part_limit(_after(1.5)) == pytest.approx(15.0)
    seg = Segmenter(part_target=1.0, segment_target=2.0)
    feed(seg, synthetic(regular(25, 3)))
    assert seg.part_target == 90_000
    assert advance_part_limit(seg) == 3.0
    seg = segmenter()
    feed(seg, synthetic(regular(12.5, 3)))
    assert advance_part_limit(seg) == pytest.approx(12.5)
    assert blocking_timeout(seg) == 3.0
    assert blocking_timeout(Segmenter(segment_target=2.0)) == 6.0


def test_a_delta_update_skips_what_is_beyond_the_skip_boundary() -> None:
    seg = _after(20.5)  # a 12 s window of 1 s segments
    full_text = render(media_playlist(seg))
    delta_text = render(media_playlist(seg, skip=True))
    assert problems(full_text) == problems(delta_text) == []
    full, delta = parse(full_text), parse(delta_text)
    assert (full.version, delta.version) == (6, 9)  # §8: EXT-X-SKIP needs 9
    assert full.server_control["CAN-SKIP-UNTIL"] == "6.0"  # six target durations
    assert len(full.complete) == 12
    # Segments that end 6 s or more before the last complete one's end are skipped.
    assert delta.skipped == 6
    assert delta.media_sequence == full.media_sequence
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n" in delta_text
    # A client that merges the delta into its last playlist has the full one (§6.2.5.1).
    merged = full.segments[: delta.skipped] + delta.segments
    assert [(s.uri, s.duration, s.program_date_time, s.parts) for s in merged] == [
        (s.uri, s.duration, s.program_date_time, s.parts) for s in full.segments
    ]
    assert delta.segments[0].map_uri == "init0.mp4"  # still applies to what follows
    assert delta.hints == full.hints


def test_a_short_window_has_nothing_to_skip() -> None:
    seg = segmenter(window=5)
    feed(seg, synthetic(regular(25, 10)))
    assert render(media_playlist(seg, skip=True)) == render(media_playlist(seg))
