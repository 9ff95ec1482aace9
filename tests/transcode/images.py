"""Test pictures: encode numpy patterns as JPEG and decode results back to planes."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

from gateway.media import Frame

Image = npt.NDArray[np.uint8]

#: Source size of most tests (width, height).
SIZE = (320, 240)


def encode_jpeg(rgb: Image, *, qscale: int = 3) -> bytes:
    """Return ``rgb`` (height, width, 3) as a yuvj420p JPEG."""
    height, width = rgb.shape[:2]
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuvj420p"
    ctx.time_base = Fraction(1, 90_000)
    ctx.qmin = ctx.qmax = qscale
    picture = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(packet) for packet in ctx.encode(picture))


def decode_planes(data: bytes) -> list[Image]:
    """Return the Y, Cb, Cr planes of a JPEG, as decoded (no conversion)."""
    ctx = av.CodecContext.create("mjpeg", "r")
    (picture,) = ctx.decode(av.Packet(data))
    planes = []
    for plane in picture.planes:
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8)
        planes.append(rows.reshape(plane.height, plane.line_size)[:, : plane.width].copy())
    return planes


def marked(size: tuple[int, int] = SIZE) -> Image:
    """Return a dark picture with a white block in its top-left corner."""
    width, height = size
    rgb = np.full((height, width, 3), 16, np.uint8)
    rgb[: height // 4, : width // 4] = 255
    return rgb


def colourful(size: tuple[int, int] = SIZE) -> Image:
    """Return a saturated picture: red, green and blue bands."""
    width, height = size
    rgb = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    rgb[:, :third, 0] = 220
    rgb[:, third : 2 * third, 1] = 220
    rgb[:, 2 * third :, 2] = 220
    return rgb


def detailed(size: tuple[int, int] = SIZE, seed: int = 7) -> Image:
    """Return a picture with gradients and noise (compresses measurably)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) % 64 * 4], axis=-1)
    noise = np.random.default_rng(seed).integers(0, 40, rgb.shape)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def corner_means(luma: Image) -> dict[str, float]:
    """Return the mean luma of each corner quarter-block (tl, tr, bl, br)."""
    height, width = luma.shape
    h, w = height // 5, width // 5
    return {
        "tl": float(luma[:h, :w].mean()),
        "tr": float(luma[:h, -w:].mean()),
        "bl": float(luma[-h:, :w].mean()),
        "br": float(luma[-h:, -w:].mean()),
    }


def frame(payload: bytes, seq: int = 0) -> Frame:
    """Return a source frame as the ingest would publish it."""
    return Frame(
        payload=payload,
        content_type="image/jpeg",
        seq=seq,
        pts=seq * 3600,
        received_ns=1_000_000 + seq,
        headers=(("x-test", str(seq)),),
    )
