"""Producers: turn a tick (frame number, capture time) into encoded media with PyAV.

Each producer is called from a worker thread by its source, one call at a time, and
returns the chunks to publish. Nothing here touches the event loop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import av
import numpy as np

from gateway.sim.pattern import Pattern


@dataclass(frozen=True, slots=True)
class Encoded:
    """One unit a producer made: a JPEG, an MPEG-2 picture, an audio part."""

    #: The bytes clients receive.
    data: bytes
    #: True where a client may start (every JPEG; an MPEG-2 sequence header; every audio part).
    key: bool = True


class Producer(Protocol):
    """Makes the media for one tick; called from a worker thread, never concurrently."""

    def produce(self, frame: int, t_ns: int) -> list[Encoded]:
        """Return the chunks for tick frame captured at t_ns (unix ns)."""
        ...


def insert_comment(jpeg: bytes, text: str) -> bytes:
    """Return jpeg with a COM segment (ITU T.81 B.2.4.5) holding text right after SOI."""
    body = text.encode("ascii")
    return jpeg[:2] + b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def comment_text(frame: int, t_ns: int) -> str:
    """Return the measurement comment for a frame."""
    return f"sim frame={frame} t={t_ns}"


class JpegProducer:
    """Encodes the channel's pattern as baseline JPEG (yuvj420p) with the COM segment."""

    def __init__(self, channel: int, width: int, height: int, *, quality: int = 4) -> None:
        self._pattern = Pattern(channel, width, height)
        ctx = av.CodecContext.create("mjpeg", "w")
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuvj420p"
        ctx.time_base = Fraction(1, 90_000)
        # A fixed quantiser keeps the code and the digits crisp at any bit rate.
        ctx.qmin = ctx.qmax = quality
        self._ctx = ctx

    def produce(self, frame: int, t_ns: int) -> list[Encoded]:
        """Return one JPEG for this tick."""
        picture = av.VideoFrame.from_ndarray(
            self._pattern.render(frame, t_ns // 1000), format="yuvj420p"
        )
        picture.pts = frame
        data = b"".join(bytes(packet) for packet in self._ctx.encode(picture))
        return [Encoded(insert_comment(data, comment_text(frame, t_ns)))]


class AudioCodec(enum.Enum):
    """Audio encodings the simulator can send, by the name used in options and queries."""

    #: G.726 32 kbit/s, MSB-first packing (what Axis calls audio/32KADPCM).
    G726 = "g726"
    #: G.726 32 kbit/s, LSB-first packing (RFC 3551 AAL2 order); same content type.
    G726LE = "g726le"
    #: G.711 mu-law, 64 kbit/s (audio/basic).
    PCMU = "pcmu"

    @property
    def content_type(self) -> str:
        """Return the part content type."""
        return "audio/basic" if self is AudioCodec.PCMU else "audio/32KADPCM"

    @property
    def bits_per_sample(self) -> int:
        """Return coded bits per sample."""
        return 8 if self is AudioCodec.PCMU else 4


#: PyAV encoder names per codec.
_AUDIO_ENCODERS = {
    AudioCodec.G726: "g726",
    AudioCodec.G726LE: "g726le",
    AudioCodec.PCMU: "pcm_mulaw",
}

#: Audio sample rate (G.726 and G.711 are 8 kHz codecs).
AUDIO_RATE = 8000
#: Samples per multipart audio part (64 ms).
AUDIO_PART_SAMPLES = 512


class ToneProducer:
    """Encodes a continuous sine tone and cuts it into equal parts."""

    def __init__(self, codec: AudioCodec, frequency: float, *, level: float = 0.4) -> None:
        self.codec = codec
        ctx = av.CodecContext.create(_AUDIO_ENCODERS[codec], "w")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = AUDIO_RATE
        ctx.layout = "mono"
        ctx.format = "s16"
        ctx.bit_rate = AUDIO_RATE * codec.bits_per_sample
        ctx.open()
        self._ctx = ctx
        # G.726 in FFmpeg takes fixed frames (2048 samples); parts are cut from its output.
        self._block = ctx.frame_size or AUDIO_PART_SAMPLES
        self._part_bytes = AUDIO_PART_SAMPLES * codec.bits_per_sample // 8
        self._frequency = frequency
        self._level = level
        self._sample = 0
        self._pending = bytearray()

    def produce(self, frame: int, t_ns: int) -> list[Encoded]:
        """Return one part of AUDIO_PART_SAMPLES samples."""
        while len(self._pending) < self._part_bytes:
            n = np.arange(self._sample, self._sample + self._block)
            wave = np.sin(2 * np.pi * self._frequency * n / AUDIO_RATE) * (self._level * 32767)
            samples = av.AudioFrame.from_ndarray(
                wave.astype(np.int16).reshape(1, -1), format="s16", layout="mono"
            )
            samples.sample_rate = AUDIO_RATE
            samples.pts = self._sample
            self._sample += self._block
            for packet in self._ctx.encode(samples):
                self._pending += bytes(packet)
        part = bytes(self._pending[: self._part_bytes])
        del self._pending[: self._part_bytes]
        return [Encoded(part)]
