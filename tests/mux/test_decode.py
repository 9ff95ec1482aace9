"""Real decoders read what the writer wrote: libx264 + AAC + Opus through FFmpeg's mov demuxer."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from gateway.mux import fmp4, h264
from gateway.mux.fmp4 import Sample, TrackRun
from gateway.mux.tracks import AudioCodec, AudioTrack, VideoTrack

FRAMES = 50
FRAME_TICKS = 3000  # 30 fps in 1/90000 s
AAC_FRAME = 1024
OPUS_FRAME = 960  # 20 ms at 48 kHz
RATE = 48000


@dataclass
class Encoded:
    """Encoder output: (Annex-B access unit, pts, dts, keyframe) per picture, and audio packets."""

    avcc: bytes
    video: list[tuple[bytes, int, int, bool]]
    asc: bytes
    aac: list[bytes]
    opus_head: bytes
    opus: list[bytes]


@dataclass
class Decoded:
    """What FFmpeg made of a file."""

    video_pts: list[int] = field(default_factory=list)
    video_frames: int = 0
    audio_pts: list[int] = field(default_factory=list)
    audio_samples: list[int] = field(default_factory=list)
    problems: list[tuple[int, str, str]] = field(default_factory=list)


def encode(global_header: bool) -> Encoded:
    """Encode FRAMES pictures with libx264 and enough AAC and Opus frames to cover them."""
    video = av.CodecContext.create("libx264", "w")
    assert isinstance(video, av.VideoCodecContext)
    video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
    video.time_base, video.framerate = Fraction(1, 90000), Fraction(30)
    # Out of band: SPS/PPS only in extradata; in band: before every IDR (x264's default).
    headers = "repeat-headers=0" if global_header else "repeat-headers=1"
    video.options = {"tune": "zerolatency", "bf": "0", "x264-params": f"keyint=20:{headers}"}
    if global_header:
        video.flags |= av.codec.context.Flags.global_header
    video.open()
    packets = []
    for i in range(FRAMES):
        pixels = np.full((240, 320, 3), (i * 5) % 256, np.uint8)
        pixels[:, (i * 6) % 320] = 255
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
        frame.pts = i * FRAME_TICKS
        packets += video.encode(frame)
    packets += video.encode(None)
    pictures = [(bytes(p), p.pts or 0, p.dts or 0, p.is_keyframe) for p in packets]
    assert all(p.pts is not None and p.dts is not None for p in packets)
    if global_header:
        assert video.extradata is not None
        avcc = h264.avcc_from_extradata(video.extradata)
    else:  # the parameter sets arrive in band, in the first IDR access unit
        avcc = h264.avcc_from_parameter_sets(
            *h264.parameter_sets(h264.split_annexb(pictures[0][0]))
        )
    seconds = FRAMES * FRAME_TICKS / 90000
    aac = _encode_audio("aac", "fltp", AAC_FRAME, int(seconds * RATE / AAC_FRAME) + 2)
    opus = _encode_audio("libopus", "s16", OPUS_FRAME, int(seconds * RATE / OPUS_FRAME) + 2)
    return Encoded(avcc, pictures, aac[0], aac[1], opus[0], opus[1])


def _encode_audio(
    codec: str, sample_format: str, size: int, count: int
) -> tuple[bytes, list[bytes]]:
    context = av.CodecContext.create(codec, "w")
    assert isinstance(context, av.AudioCodecContext)
    context.sample_rate, context.layout, context.format = RATE, "mono", sample_format
    context.open()
    packets = []
    for i in range(count):
        t = np.arange(i * size, (i + 1) * size) / RATE
        tone = 0.3 * np.sin(2 * np.pi * 440 * t)
        samples = (
            tone.astype(np.float32) if sample_format == "fltp" else (tone * 32767).astype(np.int16)
        )
        frame = av.AudioFrame.from_ndarray(
            samples.reshape(1, -1), format=sample_format, layout="mono"
        )
        frame.sample_rate, frame.pts = RATE, i * size
        packets += context.encode(frame)
    packets += context.encode(None)
    assert context.extradata is not None
    return context.extradata, [bytes(p) for p in packets]


@pytest.fixture(scope="module", params=[True, False], ids=["extradata", "in-band"])
def encoded(request: pytest.FixtureRequest) -> Encoded:
    return encode(request.param)


def mux(encoded: Encoded, codec: AudioCodec) -> tuple[bytes, int]:
    """Write init + one fragment per picture, each with the audio frames that start during it.

    Return the file and how many audio frames it holds.
    """
    frames, size, config = (
        (encoded.aac, AAC_FRAME, encoded.asc) if codec is AudioCodec.AAC
        else (encoded.opus, OPUS_FRAME, encoded.opus_head)
    )  # fmt: skip
    video_track = VideoTrack(1, 320, 240, encoded.avcc)
    audio_track = AudioTrack(2, codec, RATE, 1, config)
    out = [fmp4.init_segment([video_track, audio_track])]
    sent = 0
    for number, (access_unit, pts, dts, key) in enumerate(encoded.video, 1):
        sample = Sample(h264.annexb_to_sample(access_unit), FRAME_TICKS, key, pts - dts)
        runs = [TrackRun(1, dts, [sample])]
        end = (dts + FRAME_TICKS) * RATE // 90000
        first = sent
        while sent < len(frames) and sent * size < end:
            sent += 1
        if sent > first:
            runs.append(TrackRun(2, first * size, [Sample(f, size) for f in frames[first:sent]]))
        out += [bytes(part) for part in fmp4.fragment(number, runs)]
    return b"".join(out), sent


@pytest.fixture
def ffmpeg_logs() -> Iterator[None]:
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.VERBOSE)
    yield
    av.logging.set_level(previous)


def decode(data: bytes) -> Decoded:
    """Demux and decode everything; collect decode exceptions and FFmpeg's warnings and errors."""
    result = Decoded()
    with av.logging.Capture() as logs, av.open(io.BytesIO(data), "r", format="mp4") as container:
        video = container.streams.video[0]
        assert video.time_base == Fraction(1, 90000)
        for packet in container.demux():
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                result.problems.append((-1, "exception", type(exc).__name__))
                continue
            if packet.stream is video:
                if packet.size:
                    assert packet.pts is not None
                    result.video_pts.append(packet.pts)
                result.video_frames += len(frames)
                continue
            for frame in frames:
                assert isinstance(frame, av.AudioFrame)
                assert frame.pts is not None
                result.audio_pts.append(frame.pts)
                result.audio_samples.append(frame.samples)
    result.problems += [entry for entry in logs if entry[0] <= av.logging.WARNING]
    return result


@pytest.mark.usefixtures("ffmpeg_logs")
@pytest.mark.parametrize("codec", [AudioCodec.AAC, AudioCodec.OPUS])
def test_ffmpeg_decodes_every_frame_at_the_written_times(
    encoded: Encoded, codec: AudioCodec
) -> None:
    data, audio_frames = mux(encoded, codec)
    result = decode(data)
    assert result.problems == []
    assert result.video_frames == FRAMES
    assert result.video_pts == [pts for _, pts, _, _ in encoded.video]
    assert result.video_pts == [i * FRAME_TICKS for i in range(FRAMES)]
    assert len(result.audio_pts) == audio_frames
    assert audio_frames * (AAC_FRAME if codec is AudioCodec.AAC else OPUS_FRAME) >= RATE * 5 // 3
    # Continuous: each frame starts where the previous one ended.
    starts = [
        pts + samples for pts, samples in zip(result.audio_pts, result.audio_samples, strict=True)
    ]
    assert result.audio_pts[1:] == starts[:-1]


@pytest.mark.usefixtures("ffmpeg_logs")
def test_a_corrupt_sample_is_noticed(encoded: Encoded) -> None:
    """The check above can fail: a sample with a wrong NAL length makes FFmpeg complain."""
    access_unit, _, _, _ = encoded.video[0]
    sample = bytearray(h264.annexb_to_sample(access_unit))
    sample[0:4] = (len(sample) * 2).to_bytes(4, "big")
    data = fmp4.init_segment([VideoTrack(1, 320, 240, encoded.avcc)]) + b"".join(
        bytes(part)
        for part in fmp4.fragment(1, [TrackRun(1, 0, [Sample(bytes(sample), FRAME_TICKS)])])
    )
    problems = decode(data).problems
    assert (-1, "exception", "InvalidDataError") in problems
    assert any(level <= av.logging.ERROR and name == "h264" for level, name, _ in problems)


def test_ffmpeg_cli_reads_the_file(encoded: Encoded, tmp_path: Path) -> None:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if ffmpeg is None or ffprobe is None:
        pytest.skip("ffmpeg/ffprobe CLI not installed; PyAV's libavformat checked the same bytes")
    path = tmp_path / "out.mp4"
    path.write_bytes(mux(encoded, AudioCodec.AAC)[0])
    run = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        check=False,
    )
    assert (run.returncode, run.stderr) == (0, b"")
    probe = subprocess.run(
        [ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames,codec_name", "-of", "csv=p=0", str(path)],
        capture_output=True, check=True,
    )  # fmt: skip
    assert probe.stdout.decode().strip() == f"h264,{FRAMES}"
