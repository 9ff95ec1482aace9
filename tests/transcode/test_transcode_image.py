"""Each transform checked on real JPEGs: size, rotation, colour level, compression."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from gateway.demux.codec import jpeg_size
from gateway.errors import RemoteProtocolError
from gateway.transcode import ImageParams, JpegPipeline, qscale_for
from tests.transcode.images import (
    SIZE,
    Image,
    colourful,
    corner_means,
    decode_planes,
    detailed,
    encode_jpeg,
    marked,
)


def run(params: ImageParams, rgb: Image) -> bytes:
    return JpegPipeline(params).process(encode_jpeg(rgb))


@pytest.mark.parametrize(
    ("params", "size"),
    [
        (ImageParams(compression=10), SIZE),
        (ImageParams(resolution=(160, 120)), (160, 120)),
        (ImageParams(resolution=(161, 121)), (161, 121)),
        (ImageParams(resolution=(1, 1)), (1, 1)),
        (ImageParams(resolution=(320, 100)), (320, 100)),
        (ImageParams(rotation=90), (240, 320)),
        (ImageParams(rotation=180), (320, 240)),
        (ImageParams(rotation=270), (240, 320)),
        (ImageParams(resolution=(120, 160), rotation=90), (120, 160)),
        (ImageParams(resolution=(61, 81), rotation=270), (61, 81)),
    ],
)
def test_output_size(params: ImageParams, size: tuple[int, int]) -> None:
    out = run(params, detailed())
    assert jpeg_size(out) == size
    luma = decode_planes(out)[0]
    assert luma.shape == (size[1], size[0])


@pytest.mark.parametrize(
    ("rotation", "corner"),
    [(0, "tl"), (90, "tr"), (180, "br"), (270, "bl")],
)
@pytest.mark.parametrize("resolution", [None, (96, 96)])
def test_rotation_is_clockwise(
    rotation: int, corner: str, resolution: tuple[int, int] | None
) -> None:
    params = ImageParams(resolution=resolution, rotation=rotation, compression=0)
    means = corner_means(decode_planes(run(params, marked()))[0])
    assert means[corner] > 200, means
    assert all(value < 60 for name, value in means.items() if name != corner), means


def test_colorlevel_zero_is_grayscale() -> None:
    _, cb, cr = decode_planes(run(ImageParams(colorlevel=0), colourful()))
    assert np.abs(cb.astype(int) - 128).max() <= 1
    assert np.abs(cr.astype(int) - 128).max() <= 1


def test_colorlevel_scales_chroma_toward_neutral() -> None:
    def saturation(params: ImageParams) -> float:
        _, cb, cr = decode_planes(run(params, colourful()))
        return float(np.abs(cb.astype(int) - 128).mean() + np.abs(cr.astype(int) - 128).mean())

    full = saturation(ImageParams(compression=0))
    half = saturation(ImageParams(colorlevel=50, compression=0))
    assert full > 50
    assert half == pytest.approx(full / 2, rel=0.1)


def test_colorlevel_keeps_luma() -> None:
    source = decode_planes(run(ImageParams(compression=0), colourful()))[0]
    gray = decode_planes(run(ImageParams(colorlevel=0, compression=0), colourful()))[0]
    assert np.abs(source.astype(int) - gray.astype(int)).mean() < 2


def test_higher_compression_gives_smaller_files() -> None:
    rgb = detailed()
    sizes = [len(run(ImageParams(compression=c), rgb)) for c in (0, 25, 50, 75, 100)]
    assert sizes == sorted(sizes, reverse=True)
    assert len(set(sizes)) == len(sizes)
    assert sizes[0] > 3 * sizes[-1]


@pytest.mark.parametrize(
    ("compression", "qscale"), [(0, 2), (None, 5), (10, 5), (50, 17), (100, 31)]
)
def test_compression_maps_onto_qscale(compression: int | None, qscale: int) -> None:
    assert qscale_for(compression) == qscale


@pytest.mark.parametrize("pix_fmt", ["yuvj422p", "yuvj444p"])
def test_accepts_other_chroma_subsampling(pix_fmt: str) -> None:
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height = 64, 48
    ctx.pix_fmt = pix_fmt
    ctx.time_base = Fraction(1, 90_000)
    picture = av.VideoFrame.from_ndarray(colourful((64, 48)), format="rgb24")
    data = b"".join(bytes(p) for p in ctx.encode(picture.reformat(format=pix_fmt)))
    out = JpegPipeline(ImageParams(rotation=90)).process(data)
    assert jpeg_size(out) == (48, 64)


def test_follows_a_source_size_change() -> None:
    pipeline = JpegPipeline(ImageParams(rotation=180))
    assert jpeg_size(pipeline.process(encode_jpeg(detailed((64, 48))))) == (64, 48)
    assert jpeg_size(pipeline.process(encode_jpeg(detailed((32, 16))))) == (32, 16)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "not a JPEG"),
        (b"GIF89a" + bytes(100), "not a JPEG"),
        (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x30\x00\x40" + b"garbage" * 10, "undecodable JPEG"),
    ],
)
def test_corrupt_input_raises_remote_error_and_pipeline_recovers(
    payload: bytes, reason: str
) -> None:
    pipeline = JpegPipeline(ImageParams(rotation=90))
    with pytest.raises(RemoteProtocolError, match=reason):
        pipeline.process(payload)
    assert jpeg_size(pipeline.process(encode_jpeg(detailed()))) == (240, 320)


def test_oversized_source_is_refused_before_decoding() -> None:
    pipeline = JpegPipeline(ImageParams(rotation=90), max_source_pixels=100 * 100)
    with pytest.raises(RemoteProtocolError, match="exceeds 10000 pixels"):
        pipeline.process(encode_jpeg(detailed()))


def test_memoryview_payload() -> None:
    out = JpegPipeline(ImageParams(resolution=(80, 60))).process(
        memoryview(encode_jpeg(detailed()))
    )
    assert jpeg_size(out) == (80, 60)
