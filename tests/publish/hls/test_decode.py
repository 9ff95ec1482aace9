"""FFmpeg (through PyAV) decodes what the segmenter wrote: every frame, at its time.

Real libx264 pictures with IDRs where the shared encode puts them and real AAC frames
arriving 100 ms after the pictures of their instant, cut into parts and segments;
init + every part, and init + every segment, each read as one fMP4 stream.
"""

from __future__ import annotations

from itertools import pairwise

import av
import pytest

from gateway.media import Payload
from gateway.publish.hls.cutter import TICKS
from gateway.publish.hls.segmenter import Segmenter
from tests.mux.boxreader import parse
from tests.mux.test_decode import decode

from .streams import EPOCH, HZ, RATE, aac, encoded, feed, jittered, regular, segmenter


@pytest.fixture
def ffmpeg_warnings() -> object:
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.VERBOSE)
    yield None
    av.logging.set_level(previous)


def _stream(pts: list[int]) -> tuple[Segmenter, list[int], list[int]]:
    """Segment ``pts`` with audio; return the segmenter and the input video and audio pts."""
    video = encoded(pts)
    audio_format, audio = aac(-HZ // 4, pts[-1] + HZ)  # audio from before the first picture
    seg = segmenter(audio=audio_format)
    fed = feed(seg, video, audio)
    assert fed.parts
    return seg, [f.pts - EPOCH for f in video], [f.pts for f in audio]


def _published(seg: Segmenter) -> tuple[bytes, bytes, int]:
    """Return init + all parts, init + all complete segments, and the parts' picture count."""
    init = seg.init(0)
    assert init is not None
    parts = [p for s in seg.segments for p in s.parts] + list(seg.building)
    by_parts = init + b"".join(bytes(c) for p in parts for c in p.chunks)
    by_segments = init + b"".join(bytes(c) for s in seg.segments for c in s.chunks)
    return by_parts, by_segments, sum(_pictures(p.chunks) for p in parts)


def _pictures(chunks: tuple[Payload, ...]) -> int:
    """Return the video samples of one part, read from its moof (not the segmenter)."""
    head = bytes(chunks[0])
    moof = parse(head[: len(head) - 8])[0]  # the first chunk ends with the mdat header
    runs = [t.one("trun") for t in moof.find("traf") if t.one("tfhd").fields["track_id"] == 1]
    return sum(int(run.fields["sample_count"]) for run in runs)


@pytest.mark.usefixtures("ffmpeg_warnings")
@pytest.mark.parametrize("fps", [12.5, 25, 30])
def test_parts_and_segments_decode_every_frame_at_its_time(fps: float) -> None:
    pts = regular(fps, 4.5)
    seg, video_pts, audio_pts = _stream(pts)
    by_parts, by_segments, pictures = _published(seg)
    assert seg.segments[0].msn == 0  # the window still holds the first segment
    result = decode(by_parts)
    assert result.problems == []
    # A regular camera's pictures keep their exact times, rebased to the first IDR.
    assert result.video_frames == pictures >= len(pts) - 6
    assert result.video_pts == [p - video_pts[0] for p in video_pts[:pictures]]
    # Audio: continuous, each frame at its own time on the same clock; none lost after
    # the first one that starts at or after the first picture.
    origin = (EPOCH + video_pts[0]) * RATE // HZ
    kept = [p - origin for p in audio_pts if p >= origin]
    assert result.audio_pts == kept[: len(result.audio_pts)]
    assert len(result.audio_pts) >= (pictures / fps - 0.2) * RATE / 1024
    whole = decode(by_segments)
    assert whole.problems == []
    assert whole.video_pts == result.video_pts[: len(whole.video_pts)]
    assert whole.audio_pts == result.audio_pts[: len(whole.audio_pts)]
    assert len(whole.video_pts) == sum(_pictures(p.chunks) for s in seg.segments for p in s.parts)


@pytest.mark.usefixtures("ffmpeg_warnings")
def test_a_jittered_camera_decodes_with_times_near_its_own() -> None:
    pts = jittered(25, 4.5)
    seg, video_pts, _ = _stream(pts)
    by_parts, _, pictures = _published(seg)
    result = decode(by_parts)
    assert result.problems == []
    assert result.video_frames == pictures
    real = [p - video_pts[0] for p in video_pts[:pictures]]
    # Increasing, and each picture within one frame interval of the camera's time (only
    # a part's first picture moves, to where the part before it ended).
    assert all(b > a for a, b in pairwise(result.video_pts))
    worst = max(abs(a - b) for a, b in zip(result.video_pts, real, strict=True))
    assert worst <= TICKS / 25
    moved = sum(a != b for a, b in zip(result.video_pts, real, strict=True))
    assert moved <= len(seg.segments) * 6 + len(seg.building)


@pytest.mark.usefixtures("ffmpeg_warnings")
def test_a_stalled_camera_still_decodes_as_one_continuous_stream() -> None:
    # 3 s of pictures, a 2 s stall (the camera reconnects; its audio goes on), 2 s more.
    pts = regular(25, 3) + [p + 5 * HZ for p in regular(25, 2)]
    video = encoded(pts)
    audio_format, audio = aac(0, pts[-1] + HZ)
    seg = segmenter(audio=audio_format)
    feed(seg, video, audio)
    assert seg.cutter.jumps == 1
    by_parts, _, pictures = _published(seg)
    result = decode(by_parts)
    assert result.problems == []
    assert result.video_frames == pictures >= len(pts) - 6
    steps = {b - a for a, b in pairwise(result.video_pts)}
    assert steps == {HZ // 25}  # the stall is taken out of the timeline
    # Audio stays one continuous track (the stall's audio is dropped with it).
    ends = [p + 1024 for p in result.audio_pts]
    assert result.audio_pts[1:] == ends[:-1]
    assert result.audio_pts[-1] >= (result.video_pts[-1] / HZ - 0.3) * RATE
