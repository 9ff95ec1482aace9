"""Colours survive the H.264 encode: full-range JPEG in, limited-range BT.601 H.264 out."""

from __future__ import annotations

from fractions import Fraction
from typing import cast

import av
import numpy as np
import pytest
from av.video.reformatter import ColorRange

from gateway.transcode.h264 import H264Pipeline
from gateway.transcode.h264_params import H264Settings

from .h264_helpers import decode_h264
from .images import Image, encode_jpeg

#: Patch side in pixels (four 16x16 macroblocks, so no patch shares a block).
SIDE = 64
#: Largest error allowed per channel, in 8-bit RGB steps.
TOLERANCE = 6
#: Test patches: saturated primaries, mid grey, and the ends of the range, which a
#: missing full-to-limited conversion would crush (near-black, near-white).
PATCHES = {
    "red": (200, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 200),
    "grey": (128, 128, 128),
    "near-black": (8, 8, 8),
    "near-white": (248, 248, 248),
}


def patch_picture() -> Image:
    """Return the patches in a 3x2 grid, 64x64 each."""
    rgb = np.zeros((2 * SIDE, 3 * SIDE, 3), np.uint8)
    for index, colour in enumerate(PATCHES.values()):
        row, col = divmod(index, 3)
        rgb[row * SIDE : (row + 1) * SIDE, col * SIDE : (col + 1) * SIDE] = colour
    return rgb


def patch_means(rgb: Image) -> dict[str, tuple[float, ...]]:
    """Return the mean colour of each patch's inner half (away from chroma edges)."""
    means = {}
    quarter = SIDE // 4
    for index, name in enumerate(PATCHES):
        row, col = divmod(index, 3)
        y, x = row * SIDE + quarter, col * SIDE + quarter
        inner = rgb[y : y + SIDE // 2, x : x + SIDE // 2].reshape(-1, 3)
        means[name] = tuple(float(v) for v in inner.mean(axis=0))
    return means


def jpeg_of(rgb: Image, pix_fmt: str) -> bytes:
    """Return ``rgb`` as a JPEG with chroma format ``pix_fmt`` (cameras send 4:2:0 or 4:2:2)."""
    height, width = rgb.shape[:2]
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, 90_000)
    ctx.qmin = ctx.qmax = 2
    picture = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
    return b"".join(bytes(packet) for packet in ctx.encode(picture))


@pytest.mark.parametrize(
    ("pix_fmt", "bitrate_kbps"), [("yuvj420p", 0), ("yuvj420p", 300), ("yuvj422p", 0)]
)
def test_colour_patches_survive_the_encode(pix_fmt: str, bitrate_kbps: int) -> None:
    jpeg = jpeg_of(patch_picture(), pix_fmt)
    encode = H264Pipeline(H264Settings(bitrate_kbps=bitrate_kbps))
    units = encode.encode(jpeg, 0) + encode.encode(jpeg, 3600) + encode.flush()
    frames = decode_h264(units)
    assert len(frames) == 2
    for frame in frames:
        # The VUI says limited range, BT.601 (SMPTE 170M) matrix; the decoder reads it.
        assert frame.color_range == ColorRange.MPEG
        assert frame.colorspace == 6  # AVCOL_SPC_SMPTE170M
        assert frame.color_primaries == frame.color_trc == 6  # SMPTE 170M too
        got = patch_means(cast(Image, frame.to_ndarray(format="rgb24")))
        for name, colour in PATCHES.items():
            assert np.allclose(got[name], colour, atol=TOLERANCE), (name, got[name], colour)


def test_output_is_limited_range_luma() -> None:
    black, white = (np.full((64, 64, 3), v, np.uint8) for v in (0, 255))
    encode = H264Pipeline(H264Settings())
    units = encode.encode(encode_jpeg(black), 0) + encode.encode(encode_jpeg(white), 3600)
    lumas = []
    for frame in decode_h264(units):
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, -1)
        lumas.append(float(rows[:, : plane.width].mean()))
    # Full-range 0 and 255 land on limited-range 16 and 235 (BT.601 §2.5.3).
    assert lumas == pytest.approx([16, 235], abs=2)
