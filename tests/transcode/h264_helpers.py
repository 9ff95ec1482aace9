"""Helpers for the H.264 encode tests: sources, stamps, and a strict H.264 decoder."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction

import av
import numpy as np

from gateway.mux.h264 import nal_type, split_annexb
from gateway.transcode.h264 import EncodedVideo, H264Pipeline

from .images import Image, detailed, encode_jpeg

#: Ticks per second of the 90 kHz video clock.
HZ = 90_000


def stamps(fps: float, count: int, *, start: int = 10_000) -> list[int]:
    """Return ``count`` pts of a steady ``fps`` source."""
    return [start + round(i * HZ / fps) for i in range(count)]


def jittered(fps: float, count: int, *, jitter: float = 0.2, seed: int = 3) -> list[int]:
    """Return pts whose intervals vary by up to ``jitter`` of the nominal one."""
    rng = np.random.default_rng(seed)
    nominal = HZ / fps
    steps = nominal * (1 + rng.uniform(-jitter, jitter, count))
    return [10_000 + round(t) for t in np.concatenate([[0.0], np.cumsum(steps[:-1])])]


def wobbly(fps: float, count: int, *, jitter: float = 0.2, seed: int = 5) -> list[int]:
    """Return pts of a steady clock, each off by up to ``jitter`` of an interval."""
    rng = np.random.default_rng(seed)
    nominal = HZ / fps
    offsets = rng.uniform(-jitter, jitter, count) * nominal
    return [10_000 + round(i * nominal + offsets[i]) for i in range(count)]


def moving_jpegs(count: int, size: tuple[int, int] = (160, 120)) -> list[bytes]:
    """Return ``count`` JPEGs of a textured picture panning sideways (never static)."""
    width, height = size
    base = detailed((width + count * 2, height))
    return [encode_jpeg(np.ascontiguousarray(base[:, 2 * i : 2 * i + width])) for i in range(count)]


def solid_jpeg(size: tuple[int, int] = (160, 120), value: int = 90) -> bytes:
    """Return a JPEG of one flat grey."""
    width, height = size
    rgb: Image = np.full((height, width, 3), value, np.uint8)
    return encode_jpeg(rgb)


def feed(
    pipeline: H264Pipeline,
    payloads: Sequence[bytes],
    pts: Sequence[int],
    *,
    force: Iterable[int] = (),
) -> list[EncodedVideo]:
    """Encode every payload at its pts (forcing an IDR at the indices in ``force``)."""
    forced = set(force)
    out: list[EncodedVideo] = []
    for index, (payload, stamp) in enumerate(zip(payloads, pts, strict=True)):
        out.extend(pipeline.encode(payload, stamp, force_keyframe=index in forced))
    return out + pipeline.flush()


def nal_types(annexb: bytes) -> list[int]:
    """Return the nal_unit_type of every NAL unit in an Annex B access unit."""
    return [nal_type(nal) for nal in split_annexb(annexb)]


def decode_h264(units: Iterable[EncodedVideo | bytes]) -> list[av.VideoFrame]:
    """Decode Annex B access units with FFmpeg's h264 decoder; any error raises."""
    ctx = av.CodecContext.create("h264", "r")
    # "explode": abort on the first bitstream error instead of concealing it.
    ctx.options = {"err_detect": "explode"}
    ctx.thread_count = 1
    frames: list[av.VideoFrame] = []
    for unit in units:
        data = unit if isinstance(unit, bytes) else unit.annexb
        frames.extend(ctx.decode(av.Packet(data)))
    frames.extend(ctx.decode(None))
    return frames


def mpeg2_pictures(
    count: int, *, size: tuple[int, int] = (160, 120), b_frames: int = 2
) -> list[tuple[bytes, int]]:
    """Return an MPEG-2 stream as (picture, PES PTS in 90 kHz) pairs, in decode order."""
    ctx = av.CodecContext.create("mpeg2video", "w")
    ctx.width, ctx.height = size
    ctx.pix_fmt = "yuv420p"
    ctx.framerate = Fraction(25)
    ctx.time_base = Fraction(1, 25)
    ctx.gop_size = 12
    ctx.max_b_frames = b_frames
    ctx.bit_rate = 800_000
    ctx.options = {"sc_threshold": "1000000000", "flags": "+cgop"}
    packets = []
    for index, rgb in enumerate(_panning(count, size)):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        packets += ctx.encode(frame)
    packets += ctx.encode(None)
    # The PES PTS a camera would send: display index at 25 fps, after a 0.5 s delay.
    return [(bytes(packet), 45_000 + (packet.pts or 0) * 3600) for packet in packets]


def _panning(count: int, size: tuple[int, int]) -> Iterable[Image]:
    """Yield ``count`` RGB pictures of a texture panning sideways."""
    width, height = size
    base = detailed((width + count * 2, height))
    for i in range(count):
        yield np.ascontiguousarray(base[:, 2 * i : 2 * i + width])
