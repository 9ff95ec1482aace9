"""Test pattern, block code and COM segment, in memory."""

from __future__ import annotations

import io
import re
from fractions import Fraction

import av
import numpy as np
import pytest

from gateway.sim.encoders import JpegProducer, comment_text, insert_comment
from gateway.sim.pattern import Pattern, read_block_code

T_NS = 1_700_000_123_456_789_000


def decode_jpeg(data: bytes) -> av.VideoFrame:
    with av.open(io.BytesIO(data), "r", format="mjpeg") as container:
        return next(container.decode(video=0))


def reencode(frame: av.VideoFrame, codec: str, width: int, height: int) -> av.VideoFrame:
    """Scale and re-encode through a lossy codec, then decode again."""
    small = frame.reformat(width=width, height=height, format="yuv420p")
    ctx = av.CodecContext.create(codec, "w")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = (
        width,
        height,
        "yuvj420p" if codec == "mjpeg" else "yuv420p",
    )
    ctx.time_base = Fraction(1, 25)
    if codec == "mjpeg":
        ctx.qmin = ctx.qmax = 20  # heavy quantisation: visibly blocky
        small = small.reformat(format="yuvj420p")
    else:
        ctx.bit_rate = 150_000
    small.pts = 0
    packets = list(ctx.encode(small)) + list(ctx.encode(None))
    decoder = av.CodecContext.create(codec, "r")
    assert isinstance(decoder, av.VideoCodecContext)
    frames = [f for p in packets for f in decoder.decode(p)] + list(decoder.decode(None))
    return frames[0]


def test_block_code_round_trip_in_raw_pixels() -> None:
    pattern = Pattern(1, 640, 480)
    yuv = pattern.render(123456, T_NS // 1000)
    assert read_block_code(yuv[:480]) == (123456, T_NS)


@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720), (320, 240)])
def test_block_code_survives_jpeg(width: int, height: int) -> None:
    data = JpegProducer(2, width, height).produce(77, T_NS)[0].data
    frame = decode_jpeg(data)
    assert (frame.width, frame.height) == (width, height)
    assert read_block_code(frame.to_ndarray(format="gray")) == (77, T_NS)


@pytest.mark.parametrize("codec", ["mjpeg", "mpeg2video"])
def test_block_code_survives_scaling_and_lossy_reencode(codec: str) -> None:
    frame = decode_jpeg(JpegProducer(3, 640, 480).produce(4_000_000_001, T_NS)[0].data)
    small = reencode(frame, codec, 320, 240)
    gray = small.to_ndarray(format="gray")
    assert gray.shape == (240, 320)
    assert read_block_code(gray) == (4_000_000_001, T_NS)


def test_block_code_absent_or_damaged_reads_none() -> None:
    assert read_block_code(np.full((240, 320), 128, dtype=np.uint8)) is None
    assert read_block_code(np.zeros((10, 10), dtype=np.uint8)) is None
    assert read_block_code(np.zeros((240, 320, 3), dtype=np.uint8)) is None
    yuv = Pattern(1, 320, 240).render(5, 6)
    luma = yuv[:240].copy()
    # Flip one data cell of the first row: the CRC must reject it.
    luma[200:205, 20:25] = 255 - luma[200:205, 20:25]
    assert read_block_code(luma) in (None, (5, 6000))
    luma[196:210, 10:19] = 255 - luma[196:210, 10:19]
    assert read_block_code(luma) is None


def test_com_segment_follows_soi_and_parses() -> None:
    data = JpegProducer(1, 320, 240).produce(9, T_NS)[0].data
    assert data[:4] == b"\xff\xd8\xff\xfe"
    length = int.from_bytes(data[4:6], "big")
    text = data[6 : 4 + length].decode("ascii")
    match = re.fullmatch(r"sim frame=(\d+) t=(\d+)", text)
    assert match is not None
    assert (int(match[1]), int(match[2])) == (9, T_NS)
    assert data.endswith(b"\xff\xd9")
    assert decode_jpeg(data).width == 320  # the segment keeps the JPEG valid


def test_insert_comment_layout() -> None:
    assert insert_comment(b"\xff\xd8rest", "ab") == b"\xff\xd8\xff\xfe\x00\x04abrest"
    assert comment_text(1, 2) == "sim frame=1 t=2"


def test_channels_differ_in_colour() -> None:
    chroma = [Pattern(c, 64, 48).render(0, 0)[48:].mean() for c in (1, 2, 3, 4)]
    assert len({round(v) for v in chroma}) == 4


def test_frame_counter_and_bar_move() -> None:
    pattern = Pattern(1, 320, 240)
    a, b = pattern.render(1, 0)[:180], pattern.render(2, 0)[:180]
    assert not np.array_equal(a, b)
