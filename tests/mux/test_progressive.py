"""ProgressiveMuxer: real libx264 and AAC frames in, FFmpeg's mov demuxer reads them back.

Frames are made as the shared encode makes them (an Annex B payload, the MP4 sample,
the avcC on each IDR's cut point; AAC packets with their duration), then muxed as a
viewer's cursor would hand them out: one fragment per picture, with the audio that
arrived meanwhile. What FFmpeg demuxes must be the camera's own timing, less whatever
a cut took out of the timeline.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import av
import pytest

from gateway.errors import LocalProtocolError
from gateway.media import Frame
from gateway.mux.progressive import AudioFormat, ProgressiveMuxer
from gateway.mux.tracks import AudioCodec
from tests.mux.encoded import AAC_FRAME, GOP, HZ, RATE, Stream, make_stream
from tests.transcode.h264_helpers import jittered, stamps

#: Where the test stream starts on the shared clock (90 kHz): not 0, as a camera's.
START = 900_000


@pytest.fixture(scope="module")
def steady() -> Stream:
    return make_stream(stamps(25, 3 * GOP, start=START))


def audio_format(stream: Stream) -> AudioFormat:
    return AudioFormat(AudioCodec.AAC, RATE, 1, stream.asc)


def mux(
    muxer: ProgressiveMuxer,
    video: Sequence[tuple[Frame, bool]],
    audio: Sequence[Frame],
    *,
    started: bool = False,
) -> bytes:
    """Mux ``video`` one picture a fragment, each with the audio up to its end."""
    out: list[bytes] = []
    pending: Iterator[Frame] = iter(audio)
    held: list[Frame] = []
    for index, (frame, joined) in enumerate(video):
        if not started and index == 0:
            out.append(muxer.start(frame))
        # What arrived up to the next picture (the last picture takes the rest).
        limit = video[index + 1][0].pts if index + 1 < len(video) else None
        batch = held
        held = []
        for packet in pending:
            if limit is not None and packet.pts * HZ // RATE >= limit:
                held.append(packet)
                break
            batch.append(packet)
        out += [bytes(part) for part in muxer.fragment([(frame, joined)], batch)]
    return b"".join(out)


@dataclass
class Demuxed:
    """What FFmpeg read: per track, (pts, duration) of each packet; decoded pictures."""

    video: list[tuple[int, int]] = field(default_factory=list)
    audio: list[tuple[int, int]] = field(default_factory=list)
    pictures: int = 0
    audio_samples: int = 0
    problems: list[object] = field(default_factory=list)


def demux(data: bytes) -> Demuxed:
    """Demux and decode ``data`` strictly; FFmpeg's warnings and errors are problems."""
    out = Demuxed()
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.VERBOSE)
    try:
        with av.logging.Capture() as logs, av.open(io.BytesIO(data), "r", format="mp4") as box:
            for packet in box.demux():
                if packet.size == 0:
                    continue
                assert packet.pts is not None
                assert packet.duration is not None
                try:
                    decoded = packet.decode()
                except av.FFmpegError as exc:
                    out.problems.append(exc)
                    continue
                if packet.stream.type == "video":
                    assert packet.stream.time_base == Fraction(1, HZ)
                    out.video.append((packet.pts, packet.duration))
                    out.pictures += len(decoded)
                else:
                    assert packet.stream.time_base == Fraction(1, RATE)
                    out.audio.append((packet.pts, packet.duration))
                    for sound in decoded:
                        assert isinstance(sound, av.AudioFrame)
                        out.audio_samples += sound.samples
    finally:
        av.logging.set_level(previous)
    out.problems += [entry for entry in logs if entry[0] <= av.logging.WARNING]
    return out


def continuous(track: Sequence[tuple[int, int]]) -> bool:
    """Return True if each packet starts where the previous one ended."""
    return all(b[0] == a[0] + a[1] for a, b in itertools.pairwise(track))


def test_init_then_fragments_decode(steady: Stream) -> None:
    muxer = ProgressiveMuxer(audio_format(steady))
    data = mux(muxer, [(f, i == 0) for i, f in enumerate(steady.video)], steady.audio)
    assert muxer.started
    result = demux(data)
    assert result.problems == []
    assert result.pictures == len(steady.video)
    # The camera's timing, from 0 at the first keyframe.
    assert [pts for pts, _ in result.video] == [f.pts - START for f in steady.video]
    assert continuous(result.video)
    assert result.audio[0][0] == 0
    assert continuous(result.audio)
    assert len(result.audio) == len(steady.audio)
    assert result.audio_samples == len(steady.audio) * AAC_FRAME
    assert muxer.audio_dropped == 0
    assert muxer.skipped_ticks == 0


def test_video_only() -> None:
    stream = make_stream(stamps(30, 10, start=START))
    muxer = ProgressiveMuxer()
    data = mux(muxer, [(f, False) for f in stream.video], stream.audio)
    result = demux(data)
    assert result.problems == []
    assert result.audio == []
    assert [pts for pts, _ in result.video] == [f.pts - START for f in stream.video]


@pytest.mark.parametrize(
    ("fps", "seed"), [(25, 3), (12.5, 4), (30, 5)], ids=["25fps", "12.5fps", "30fps"]
)
def test_a_jittered_camera_keeps_its_timestamps(fps: float, seed: int) -> None:
    pts = [START + p for p in jittered(fps, GOP, jitter=0.2, seed=seed)]
    stream = make_stream(pts)
    muxer = ProgressiveMuxer(audio_format(stream))
    data = mux(muxer, [(f, False) for f in stream.video], stream.audio)
    result = demux(data)
    assert result.problems == []
    assert result.pictures == GOP
    assert [p for p, _ in result.video] == [p - pts[0] for p in pts]
    assert continuous(result.audio)


def test_a_cut_keeps_the_timeline_continuous(steady: Stream) -> None:
    """A viewer cut forward to a keyframe 2 s on plays on without waiting out the gap."""
    video, audio = steady.video, steady.audio
    assert video[2 * GOP].cut is not None
    before = [(f, i == 0) for i, f in enumerate(video[:GOP])]
    after = [(f, i == 0) for i, f in enumerate(video[2 * GOP :])]
    gap = video[2 * GOP].pts - video[GOP].pts  # what the cut skipped: 1 s of pictures
    assert gap == HZ
    # The audio cursor is not cut: it still hands out what arrived during the gap.
    muxer = ProgressiveMuxer(audio_format(steady))
    cut_at = video[GOP].pts * RATE // HZ
    first = mux(muxer, before, [a for a in audio if a.pts < cut_at])
    second = mux(muxer, after, [a for a in audio if a.pts >= cut_at], started=True)
    result = demux(first + second)
    assert result.problems == []
    assert result.pictures == len(before) + len(after)
    step = HZ // 25
    expected = [f.pts - START for f, _ in before]
    expected += [f.pts - START - gap for f, _ in after]
    assert [pts for pts, _ in result.video] == expected
    assert expected[GOP] == expected[GOP - 1] + step  # right after the previous picture
    assert muxer.skipped_ticks == gap
    # The audio of the gap is dropped; after it the track goes on, shifted the same.
    assert continuous(result.audio)
    skipped = gap * RATE // HZ // AAC_FRAME
    assert abs(muxer.audio_dropped - skipped) <= 1
    assert abs(len(result.audio) + muxer.audio_dropped - len(audio)) <= 1
    # Audio and video end together, as they did at the camera.
    video_end = result.video[-1][0] + result.video[-1][1]
    audio_end = result.audio[-1][0] + result.audio[-1][1]
    assert abs(audio_end * HZ // RATE - video_end) < 0.25 * HZ


def test_audio_before_the_first_picture_is_dropped() -> None:
    pts = stamps(25, 10, start=START)
    stream = make_stream(pts, audio_from=START - HZ // 2)  # audio from 0.5 s earlier
    early = [a for a in stream.audio if a.pts < START * RATE // HZ]
    assert len(early) > 20
    muxer = ProgressiveMuxer(audio_format(stream))
    data = mux(muxer, [(f, False) for f in stream.video], stream.audio)
    result = demux(data)
    assert result.problems == []
    assert muxer.audio_dropped == len(early)
    assert result.audio[0][0] >= 0
    assert result.audio[0][0] < AAC_FRAME
    assert continuous(result.audio)


def test_an_audio_gap_stays_a_gap(steady: Stream) -> None:
    """Camera audio that stopped for 0.3 s resumes 0.3 s later, even within one fragment."""
    video = steady.video[:GOP]
    shift = 14 * AAC_FRAME  # about 0.3 s
    audio = steady.audio[:10] + [
        Frame(
            payload=a.payload,
            content_type=a.content_type,
            seq=a.seq,
            pts=a.pts + shift,
            time_base=a.time_base,
            cut=a.cut,
            duration=a.duration,
        )
        for a in steady.audio[10:30]
    ]
    muxer = ProgressiveMuxer(audio_format(steady))
    out = [muxer.start(video[0])]
    # All the audio arrives with the first picture (a burst after a stall).
    out += [bytes(p) for p in muxer.fragment([(video[0], True)], audio)]
    for frame in video[1:]:
        out += [bytes(p) for p in muxer.fragment([(frame, False)])]
    result = demux(b"".join(out))
    assert result.problems == []
    starts = [pts for pts, _ in result.audio]
    first = audio[0].pts - START * RATE // HZ
    assert starts == [a.pts - audio[0].pts + first for a in audio]


def test_start_needs_a_keyframe_with_its_config(steady: Stream) -> None:
    muxer = ProgressiveMuxer()
    with pytest.raises(LocalProtocolError, match="keyframe"):
        muxer.start(steady.video[1])
    with pytest.raises(LocalProtocolError, match="start"):
        muxer.fragment([(steady.video[0], True)])
