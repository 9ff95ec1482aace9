"""ProgressiveMuxer.fits: a stream keeps one sample description."""

from __future__ import annotations

import av
import numpy as np

from gateway.media import CutPoint, Frame
from gateway.mux.h264 import avcc_from_extradata
from gateway.mux.progressive import ProgressiveMuxer


def avcc(width: int, height: int) -> bytes:
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.flags |= av.codec.context.Flags.global_header
    ctx.open()
    picture = av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")
    ctx.encode(picture.reformat(format="yuv420p"))
    return avcc_from_extradata(bytes(ctx.extradata or b""))


def keyframe(config: bytes, size: tuple[int, int]) -> Frame:
    return Frame(
        b"\x00\x00\x00\x01\x65",
        "video/h264",
        seq=0,
        pts=0,
        cut=CutPoint(config=config),
        dimensions=size,
        sample=b"\x00\x00\x00\x01\x65",
    )


def test_a_new_size_or_avcc_does_not_fit_the_init_segment() -> None:
    small, large = avcc(64, 48), avcc(128, 96)
    muxer = ProgressiveMuxer()
    muxer.start(keyframe(small, (64, 48)))
    assert muxer.fits(keyframe(small, (64, 48)))
    assert not muxer.fits(keyframe(small, (128, 96)))
    assert not muxer.fits(keyframe(large, (64, 48)))
    # Pictures between keyframes carry no configuration: they fit.
    plain = Frame(b"\x00\x00\x00\x01\x41", "video/h264", seq=1, pts=3600)
    assert muxer.fits(plain)
