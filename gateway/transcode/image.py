"""One variant's JPEG pipeline: decode, scale, rotate, colour level, encode (PyAV).

Everything here is blocking codec work: a ``JpegPipeline`` is owned by exactly one
worker thread (STYLE §4) and is not thread-safe.
"""

from __future__ import annotations

from typing import Any, cast

import av
import numpy as np
import numpy.typing as npt

from gateway.demux.codec import jpeg_size
from gateway.errors import RemoteProtocolError
from gateway.media import VIDEO_TIME_BASE, Payload

from .params import FULL_COLOR, ImageParams

#: Compression used when a variant re-encodes but the client did not ask for one.
#: VAPIX leaves the mapping product dependent; 10 keeps transforms visually lossless.
DEFAULT_COMPRESSION = 10
#: Largest source picture decoded (8K UHD); a bigger SOF is refused before decoding.
DEFAULT_MAX_SOURCE_PIXELS = 7680 * 4320
#: Every variant encodes 4:2:0 full-range JPEG (what baseline decoders all accept).
PIX_FMT = "yuvj420p"
#: swscale's bicubic, FFmpeg's own default for scaling.
INTERPOLATION = "BICUBIC"
#: Chroma value of "no colour" in full-range YCbCr (ITU-T T.871).
NEUTRAL_CHROMA = 128

Plane = npt.NDArray[np.uint8]


def qscale_for(compression: int | None) -> int:
    """Map VAPIX compression 0..100 linearly onto the MJPEG quantiser 2 (best) .. 31."""
    value = DEFAULT_COMPRESSION if compression is None else compression
    return 2 + (value * 29 + 50) // 100


class JpegPipeline:
    """Turns source JPEGs into this variant's JPEGs; call ``process`` from one thread."""

    def __init__(
        self, params: ImageParams, *, max_source_pixels: int = DEFAULT_MAX_SOURCE_PIXELS
    ) -> None:
        """Prepare a pipeline for ``params``; refuse sources above ``max_source_pixels``."""
        self.params = params
        self._max_source_pixels = max_source_pixels
        self._qscale = qscale_for(params.compression)
        self._decoder: Any = None
        self._encoder: Any = None
        self._encoder_size: tuple[int, int] | None = None
        self._pts = 0

    def process(self, payload: Payload) -> bytes:
        """Return the variant's JPEG for one source JPEG.

        Raises RemoteProtocolError when the source is not a decodable JPEG.
        """
        size = jpeg_size(payload)
        if size is None:
            raise RemoteProtocolError("source frame is not a JPEG (no SOI/SOF)")
        if size[0] * size[1] > self._max_source_pixels:
            raise RemoteProtocolError(
                f"source JPEG {size[0]}x{size[1]} exceeds {self._max_source_pixels} pixels"
            )
        picture = self._decode(payload)
        return self._encode(self._transform(picture))

    def _decode(self, payload: Payload) -> Any:
        """Return the decoded picture."""
        if self._decoder is None:
            decoder = av.CodecContext.create("mjpeg", "r")
            # One thread per variant; frame threading would also delay output.
            decoder.thread_count = 1
            self._decoder = decoder
        try:
            # Packet takes any buffer (the stubs say bytes); it copies once either way.
            pictures = self._decoder.decode(av.Packet(cast(bytes, payload)))
        except av.FFmpegError as exc:
            self._decoder = None  # start clean: the next frame must not inherit state
            raise RemoteProtocolError(f"undecodable JPEG: {exc}") from exc
        if not pictures:
            raise RemoteProtocolError("JPEG decoded to no picture")
        return pictures[-1]

    def _transform(self, picture: Any) -> Any:
        """Return a yuvj420p picture with the variant's size, rotation and colour."""
        params = self.params
        out_w, out_h = params.output_size((picture.width, picture.height))
        # Scale before rotating (fewer pixels to move): to the pre-rotation shape.
        quarter_turn = params.rotation in (90, 270)
        pre_w, pre_h = (out_h, out_w) if quarter_turn else (out_w, out_h)
        scaled = picture.reformat(
            width=pre_w, height=pre_h, format=PIX_FMT, interpolation=INTERPOLATION
        )
        level = params.colorlevel
        recolour = level is not None and level != FULL_COLOR
        if not params.rotation and not recolour:
            return scaled
        target = av.VideoFrame(out_w, out_h, PIX_FMT)
        for index, (src, dst) in enumerate(zip(scaled.planes, target.planes, strict=True)):
            plane = _view(src)
            if params.rotation:
                # np.rot90 turns counter-clockwise for positive k; VAPIX turns clockwise.
                plane = np.rot90(plane, k=-params.rotation // 90)
            out = _view(dst)
            if index and recolour:
                assert level is not None
                _scale_chroma(plane, level, out)
            else:
                out[...] = plane
        return target

    def _encode(self, picture: Any) -> bytes:
        """Return the JPEG bytes of ``picture``."""
        size = (picture.width, picture.height)
        if self._encoder is None or self._encoder_size != size:
            # A new encoder when the output size changes (the camera changed resolution).
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height = size
            encoder.pix_fmt = PIX_FMT
            encoder.time_base = VIDEO_TIME_BASE
            encoder.thread_count = 1
            # qmin = qmax pins the quantiser: a fixed quality, no rate control.
            encoder.qmin = encoder.qmax = self._qscale
            self._encoder, self._encoder_size = encoder, size
        picture.pts = self._pts
        self._pts += 1
        return b"".join(bytes(packet) for packet in self._encoder.encode(picture))


def _view(plane: Any) -> Plane:
    """Return a writable (height, width) uint8 view of a picture plane (no copy)."""
    rows: Plane = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(
        plane.height, plane.line_size
    )
    return rows[:, : plane.width]


def _scale_chroma(plane: Plane, level: int, out: Plane) -> None:
    """Write ``plane`` with its distance from neutral chroma scaled by ``level``/100."""
    if level == 0:
        out.fill(NEUTRAL_CHROMA)
        return
    delta = plane.astype(np.int16) - NEUTRAL_CHROMA
    # |delta| <= 128 and level <= 100: fits int16; floor division keeps 0 exact.
    out[...] = (delta * level // 100 + NEUTRAL_CHROMA).astype(np.uint8)
