"""Part and segment durations within RFC 8216bis's rules, from regular and jittered cameras.

Every playlist the segmenter could serve (after each part) is read back as text and
checked (``m3u8.problems``): parts at most PART-TARGET and at least 85% of it unless
INDEPENDENT or a segment's last, EXTINF rounded at most TARGETDURATION, tags in order.
"""

from __future__ import annotations

from itertools import pairwise

import pytest

from gateway.errors import LocalProtocolError
from gateway.media import Frame, Payload
from gateway.mux.tracks import VideoTrack
from gateway.publish.hls.cutter import TICKS, frame_interval
from gateway.publish.hls.live import media_playlist
from gateway.publish.hls.parts import KeyframeWanted, Part, PartCompleted, Segment, SegmentCompleted
from gateway.publish.hls.playlist import render
from gateway.publish.hls.segmenter import Segmenter

from .m3u8 import problems
from .streams import HZ, OTHER_AVCC, feed, jittered, keyframes, regular, segmenter, synthetic

SOURCES = [
    pytest.param(fps, jitter, seed, id=f"{fps}fps-{'jitter' if jitter else 'regular'}-{seed}")
    for fps in (12.5, 25, 30)
    for jitter, seed in ((0.0, 0), (0.2, 1), (0.2, 2), (0.2, 3))
]


def _index(sample: bytes | memoryview) -> int:
    """Return the synthetic frame index a sample carries."""
    return int.from_bytes(bytes(sample)[5:9], "big")


def _run(frames: list[Frame], seg: Segmenter) -> tuple[list[Part], list[Segment]]:
    """Feed ``frames``, checking the playlist after every part; return parts and segments."""
    parts, segments = [], []
    for frame in frames:
        for event in seg.push_video(frame, frame.received_ns):
            if isinstance(event, PartCompleted):
                parts.append(event.part)
                assert problems(render(media_playlist(seg))) == []
            elif isinstance(event, SegmentCompleted):
                segments.append(event.segment)
    return parts, segments


@pytest.mark.parametrize(("fps", "jitter", "seed"), SOURCES)
def test_parts_and_segments_keep_the_rules(fps: float, jitter: float, seed: int) -> None:
    pts = jittered(fps, 20, jitter, seed) if jitter else regular(fps, 20)
    frames = synthetic(pts)
    seg = segmenter()
    parts, segments = _run(frames, seg)
    target = seg.part_target
    assert target is not None
    # Every picture but the open part's is published once, in order, gap-free.
    indexes = [_index(s) for p in parts for s in _samples(p)]
    assert indexes == list(range(len(indexes)))
    assert len(indexes) >= len(frames) - 6
    for a, b in pairwise(parts):
        assert b.start == a.start + a.duration
    finals = {id(s.parts[-1]) for s in segments}
    for part in parts:
        assert part.duration <= target
        if not part.independent and id(part) not in finals:
            assert part.duration >= 0.85 * target
    for segment in segments:
        first = segment.parts[0]
        assert first.independent
        assert _index(_samples(first)[0]) in keyframes(pts)  # starts on an IDR
        assert segment.duration < (seg.target_duration + 0.5) * TICKS
    assert seg.cutter.limit_cuts == seg.cutter.jumps == 0


@pytest.mark.parametrize(
    ("fps", "part_target"),
    [(12.5, 0.24), (25, 0.2), (30, 0.2), (29.97, 0.2002), (24, 0.208333), (7.5, 0.266667),
     (5, 0.2), (1, 1.0), (60, 0.2)],
)  # fmt: skip
def test_part_target_is_whole_frames_near_part_seconds(fps: float, part_target: float) -> None:
    seg = segmenter()
    feed(seg, synthetic(regular(fps, 3)))
    target = seg.part_target
    assert target is not None
    assert round(target / TICKS, 6) == part_target
    interval, nominal = frame_interval([round(HZ / fps)] * 8)
    assert nominal
    assert target % interval == 0


def test_an_odd_frame_rate_gets_room_to_keep_up() -> None:
    interval, nominal = frame_interval([5294] * 8)  # 17 fps: not a nominal rate
    assert (interval, nominal) == (5294, False)
    seg = segmenter()
    feed(seg, synthetic(regular(17, 3)))
    assert seg.part_target == 3 * 5294 * 105 // 100


@pytest.mark.parametrize("fps", [25, 30])
def test_a_part_completes_on_its_last_frames_arrival(fps: float) -> None:
    frames = synthetic(regular(fps, 6))
    seg = segmenter()
    checked = 0
    for frame in frames:
        calibrated = seg.part_target is not None
        for event in seg.push_video(frame, 0):
            if calibrated and isinstance(event, PartCompleted):
                assert _samples(event.part)[-1] is frame.sample
                checked += 1
    assert checked >= 25


def test_a_segments_short_last_part_completes_when_the_next_idr_arrives() -> None:
    # 12.5 fps: 13 pictures to the IDR grid's 1.04 s, parts of 3; the 13th is alone in
    # the segment's last part, which only the next IDR can end.
    frames = synthetic(regular(12.5, 6))
    seg = segmenter()
    fed = feed(seg, frames)
    short = [p.part for p in fed.parts if p.part.duration < 0.85 * (seg.part_target or 0)]
    assert short
    finals = {id(s.segment.parts[-1]) for s in fed.segments}
    assert all(id(p) in finals for p in short)


def test_a_stalled_camera_leaves_no_gap_and_moves_the_wall_clock() -> None:
    pts = regular(25, 4) + [p + 7 * HZ for p in regular(25, 3)]  # a 3 s stall at 4 s
    keys = keyframes(pts)
    assert 100 in keys  # the encode restarts its grid at the first picture after a gap
    seg = segmenter()
    parts, segments = _run(synthetic(pts, keys), seg)
    assert seg.cutter.jumps == 1
    assert seg.cutter.shift == pytest.approx(3 * HZ, abs=HZ // 25)
    for a, b in pairwise(parts):
        assert b.start == a.start + a.duration
    after = next(s for s in segments if s.start >= 4 * HZ)
    before = next(s for s in segments if s.msn == after.msn - 1)
    step = after.program_date_time - before.program_date_time
    assert step == pytest.approx(before.duration * 10**9 // HZ + 3 * 10**9, abs=50_000_000)


def test_segments_follow_the_pdt_of_their_first_picture() -> None:
    frames = synthetic(regular(25, 5))
    seg = segmenter()
    feed(seg, frames)
    segments = list(seg.held_segments())
    first = segments[0]
    assert first.program_date_time == frames[0].received_ns + seg.wall_offset_ns
    for a, b in pairwise(segments):
        assert b.program_date_time == a.program_date_time + a.duration * 10**9 // HZ


def test_an_early_idr_cuts_when_waiting_would_overrun_the_target_duration() -> None:
    pts = regular(25, 8)
    # Viewers asked for IDRs at 1.4 s and 4.0 s; each re-anchors the encode's grid.
    keys = {0, 25, 35, 60, 85, 100, 125, 150, 175}
    seg = segmenter()
    parts, segments = _run(synthetic(pts, keys), seg)
    starts = [_index(_samples(s.parts[0])[0]) for s in segments]
    # 1.4 s is 0.4 s into its segment: the next IDR (2.4 s) still leaves that segment
    # within TARGETDURATION (1.4 s rounds to 1). 4.0 s is 0.6 s in: waiting for 5.0 s
    # would not, so it cuts.
    assert starts == [0, 25, 60, 85, 100, 125, 150]
    held = next(p for p in parts if any(_index(s) == 35 for s in _samples(p)))
    assert held.independent  # the part holding it is INDEPENDENT=YES


def test_without_idrs_segments_are_cut_before_the_target_duration_overruns() -> None:
    pts = regular(25, 6)
    seg = segmenter()
    events = feed(seg, synthetic(pts, {0, 140})).events
    segments = [e.segment for e in events if isinstance(e, SegmentCompleted)]
    assert seg.cutter.limit_cuts >= 3
    assert all(s.duration < 1.5 * HZ for s in segments)
    assert [s.independent for s in segments][:4] == [True, False, False, False]
    assert sum(isinstance(e, KeyframeWanted) for e in events) >= 3
    assert problems(render(media_playlist(seg))) == []


def test_a_new_avcc_starts_a_segment_with_a_new_init_and_a_discontinuity() -> None:
    pts = regular(25, 20)
    other = synthetic(pts[100:], {0, 25, 50, 75}, avcc=OTHER_AVCC, size=(320, 240))
    frames = synthetic(pts[:100]) + other
    seg = segmenter(window=6)
    feed(seg, frames[:100])
    seg.push_video(frames[100], frames[100].received_ns)  # opens the new init's first part
    hints = render(media_playlist(seg)).split("\n")[-3:]
    assert hints == [
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part4.0.m4s"',
        '#EXT-X-PRELOAD-HINT:TYPE=MAP,URI="init1.mp4"',  # Appendix B.1
        "",
    ]
    fed = feed(seg, frames[101:150])
    segments = [e.segment for e in fed.segments]
    changed = next(s for s in segments if s.discontinuity)
    assert changed.init == 1
    assert changed.start == 4 * HZ
    assert seg.init(1) is not None
    video = seg.tracks()[0]
    assert isinstance(video, VideoTrack)
    assert video.width == 320
    text = render(media_playlist(seg))
    assert problems(text) == []
    assert '#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init1.mp4"' in text
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:0\n" in text
    feed(seg, frames[150:])
    text = render(media_playlist(seg))
    assert problems(text) == []
    # The window moved past it: the discontinuity left, DISCONTINUITY-SEQUENCE counts it
    # and the old init segment is forgotten once no held segment needs it.
    assert seg.discontinuity_sequence == 1
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in text
    assert seg.init(0) is None


def test_frames_before_the_first_idr_and_without_samples() -> None:
    seg = segmenter()
    frames = synthetic(regular(25, 1), {5})
    for frame in frames[:5]:
        assert seg.push_video(frame, 0) == []
    assert seg.cutter.frames_dropped == 5
    with pytest.raises(LocalProtocolError, match="sample form"):
        seg.push_video(Frame(b"x", "video/h264", 0, 0), 0)


def _samples(part: Part) -> list[Payload]:
    """Return a part's video samples (synthetic pictures, told by their NAL header)."""
    return [c for c in part.chunks[1:] if bytes(c)[4:5] in (b"\x65", b"\x41")]
