"""Real H.264 and AAC frames as the shared encode publishes them, for the fMP4 tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from gateway.media import CutPoint, Frame
from gateway.mux import h264

HZ = 90_000
RATE = 48_000
AAC_FRAME = 1024
SIZE = (160, 120)
#: IDR interval of the test stream, in pictures.
GOP = 25


@dataclass
class Stream:
    """Encoded pictures (one IDR every GOP) and AAC packets of one clock."""

    video: list[Frame]
    audio: list[Frame]
    asc: bytes


def encode_video(pts: Sequence[int]) -> list[Frame]:
    """Encode a moving picture at ``pts`` with libx264 into frames as the encode makes them."""
    ctx = av.CodecContext.create("libx264", "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height = SIZE
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, HZ)
    ctx.framerate = Fraction(25)
    ctx.options = {
        "tune": "zerolatency",
        "bf": "0",
        "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:repeat-headers=1",
    }
    ctx.open()
    packets = []
    for i, stamp in enumerate(pts):
        pixels = np.full((SIZE[1], SIZE[0], 3), (i * 7) % 256, np.uint8)
        pixels[:, (i * 3) % SIZE[0]] = 255
        picture = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
        picture.pts = stamp
        packets += ctx.encode(picture)
    packets += ctx.encode(None)
    frames = []
    for seq, packet in enumerate(packets):
        data = bytes(packet)
        cut = None
        if packet.is_keyframe:
            units = h264.split_annexb(data)
            cut = CutPoint(config=h264.avcc_from_parameter_sets(*h264.parameter_sets(units)))
        assert packet.pts is not None
        frames.append(
            Frame(
                payload=data,
                content_type="video/h264",
                seq=seq,
                pts=packet.pts,
                cut=cut,
                received_ns=packet.pts * 100_000 // 9,  # the same instant in ns
                sample=h264.annexb_to_sample(data),
                dimensions=SIZE,
            )
        )
    assert [f.pts for f in frames] == list(pts)
    return frames


def encode_audio(start: int, count: int) -> tuple[bytes, list[Frame]]:
    """Encode ``count`` AAC frames of a 440 Hz tone whose first sample is at ``start``.

    A little noise makes every packet's bytes different (tests tell packets apart).
    """
    noise = np.random.default_rng(1)
    ctx = av.CodecContext.create("aac", "w")
    assert isinstance(ctx, av.AudioCodecContext)
    ctx.sample_rate, ctx.layout, ctx.format = RATE, "mono", "fltp"
    ctx.open()
    packets = []
    for i in range(count + 2):
        t = np.arange(i * AAC_FRAME, (i + 1) * AAC_FRAME) / RATE
        tone = (0.3 * np.sin(2 * np.pi * 440 * t) + noise.normal(0, 0.01, len(t))).astype(
            np.float32
        )
        samples = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="fltp", layout="mono")
        samples.sample_rate, samples.pts = RATE, i * AAC_FRAME
        packets += ctx.encode(samples)
    assert ctx.extradata is not None
    frames = [
        Frame(
            payload=bytes(packet),
            content_type="audio/aac",
            seq=i,
            pts=start + i * AAC_FRAME,
            time_base=Fraction(1, RATE),
            received_ns=(start + i * AAC_FRAME) * 1_000_000_000 // RATE,
            cut=CutPoint(config=ctx.extradata),
            duration=AAC_FRAME,
        )
        for i, packet in enumerate(packets[:count])
    ]
    return ctx.extradata, frames


def make_stream(pts: Sequence[int], *, audio_from: int | None = None) -> Stream:
    """Return video at ``pts`` and AAC from ``audio_from`` (90 kHz; default: the video's start)."""
    video = encode_video(pts)
    first = pts[0] if audio_from is None else audio_from
    seconds = (pts[-1] - first) / HZ + 0.2
    asc, audio = encode_audio(first * RATE // HZ, int(seconds * RATE / AAC_FRAME))
    return Stream(video, audio, asc)
