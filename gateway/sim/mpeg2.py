"""MPEG-2 video for the simulator: elementary stream, or packed into a program stream.

The program stream is packetised here rather than by FFmpeg's ``mpeg`` muxer so that
every GOP starts a pack of its own: clients then join exactly at a cut point
(pack header, sequence header, GOP header, I-picture; ISO/IEC 13818-1 §2.5.3).
"""

from __future__ import annotations

from fractions import Fraction

import av

from gateway.sim.encoders import Encoded
from gateway.sim.pattern import Pattern

#: Frame rates MPEG-2 can signal (ISO/IEC 13818-2 Table 6-4).
MPEG2_RATES = (
    Fraction(24000, 1001),
    Fraction(24),
    Fraction(25),
    Fraction(30000, 1001),
    Fraction(30),
    Fraction(50),
    Fraction(60000, 1001),
    Fraction(60),
)
#: Pictures per GOP: I, then P-pictures with two B-pictures between (closed GOPs).
GOP_SIZE = 16
#: Largest PES payload we put in one PES packet (the length field is 16 bits).
MAX_PES_PAYLOAD = 65_000
#: Delay of the first decode time, so DTS of the leading I-picture stays positive.
_START_90K = 45_000
#: program_mux_rate in units of 50 bytes/s (ISO/IEC 13818-1 §2.5.3.4): 10 Mbit/s.
_MUX_RATE = 25_000


def mpeg2_rate(fps: float) -> Fraction:
    """Return the MPEG-2 frame rate nearest to fps."""
    return min(MPEG2_RATES, key=lambda rate: abs(float(rate) - fps))


def _timestamp(prefix: int, ts: int) -> bytes:
    """Return a 5-byte PES PTS/DTS field (ISO/IEC 13818-1 §2.4.3.7)."""
    ts &= (1 << 33) - 1
    value = (
        (prefix << 36)
        | ((ts >> 30) & 0x7) << 33
        | 1 << 32
        | ((ts >> 15) & 0x7FFF) << 17
        | 1 << 16
        | (ts & 0x7FFF) << 1
        | 1
    )
    return value.to_bytes(5, "big")


def pack_header(scr: int) -> bytes:
    """Return an MPEG-2 pack header with system clock reference scr (90 kHz)."""
    scr &= (1 << 33) - 1
    value = (
        0b01 << 46
        | ((scr >> 30) & 0x7) << 43
        | 1 << 42
        | ((scr >> 15) & 0x7FFF) << 27
        | 1 << 26
        | (scr & 0x7FFF) << 11
        | 1 << 10
        | 1  # SCR extension 0, then the final marker bit
    )
    mux = (_MUX_RATE << 2 | 0b11).to_bytes(3, "big")
    return b"\x00\x00\x01\xba" + value.to_bytes(6, "big") + mux + b"\xf8"


def pes_packets(payload: bytes, pts: int, dts: int) -> bytes:
    """Return payload as video PES packets (stream 0xE0); the first carries PTS and DTS."""
    out = bytearray()
    for start in range(0, len(payload), MAX_PES_PAYLOAD):
        piece = payload[start : start + MAX_PES_PAYLOAD]
        if start == 0:
            header = b"\x84\xc0\x0a" + _timestamp(0b0011, pts) + _timestamp(0b0001, dts)
        else:
            header = b"\x80\x00\x00"
        out += b"\x00\x00\x01\xe0" + (len(header) + len(piece)).to_bytes(2, "big")
        out += header + piece
    return bytes(out)


class Mpeg2Producer:
    """Encodes the channel's pattern as MPEG-2 with closed GOPs and a sequence header each."""

    def __init__(
        self, channel: int, width: int, height: int, fps: float, *, program_stream: bool
    ) -> None:
        self._pattern = Pattern(channel, width, height)
        self.rate = mpeg2_rate(fps)
        ctx = av.CodecContext.create("mpeg2video", "w")
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.framerate = self.rate
        ctx.time_base = 1 / self.rate
        ctx.gop_size = GOP_SIZE
        ctx.max_b_frames = 2
        ctx.bit_rate = max(width * height * 6, 500_000)
        # Closed GOPs so a client starting at any GOP decodes every picture; FFmpeg
        # refuses closed GOPs while scene-change detection may insert I-pictures.
        ctx.options = {"flags": "+cgop", "sc_threshold": "1000000000"}
        ctx.open()
        self._ctx = ctx
        self._program_stream = program_stream
        self._ticks_90k = Fraction(90_000) / self.rate
        self._count = 0

    def produce(self, frame: int, t_ns: int) -> list[Encoded]:
        """Return the coded pictures the encoder releases for this tick (0, 1 or more)."""
        picture = av.VideoFrame.from_ndarray(
            self._pattern.render(frame, t_ns // 1000), format="yuv420p"
        )
        picture.pts = self._count
        self._count += 1
        out: list[Encoded] = []
        for packet in self._ctx.encode(picture):
            data = bytes(packet)
            key = data.startswith(b"\x00\x00\x01\xb3")
            if self._program_stream and packet.pts is not None and packet.dts is not None:
                pts = _START_90K + int(packet.pts * self._ticks_90k)
                dts = _START_90K + int(packet.dts * self._ticks_90k)
                data = pack_header(max(dts - 9000, 0)) + pes_packets(data, pts, dts)
            out.append(Encoded(data, key))
        return out
