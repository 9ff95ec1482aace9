"""MPEG-2 video for the simulator: elementary stream, program stream or transport stream.

The program and transport streams are packetised here rather than by FFmpeg's muxers
so that every GOP starts cleanly: a pack of its own (pack header, sequence header, GOP
header, I-picture; ISO/IEC 13818-1 §2.5.3), or in a transport stream a PAT and a PMT
followed by a PES packet that starts a TS packet (§2.4.3, §2.4.4).
"""

from __future__ import annotations

from fractions import Fraction

import av

from gateway.sim.encoders import Encoded
from gateway.sim.options import MPEG2_FORMATS
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
#: Transport stream packet size and the PIDs we use (ISO/IEC 13818-1 §2.4.3.2).
TS_PACKET = 188
PMT_PID = 0x1000
VIDEO_PID = 0x100


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


def crc32_mpeg(data: bytes) -> int:
    """Return the CRC_32 of PSI sections (ISO/IEC 13818-1 Annex A: poly 0x04C11DB7, MSB first)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
        crc &= 0xFFFFFFFF
    return crc


def _section(table_id: int, ext: int, body: bytes) -> bytes:
    """Return a PSI section: header, body, CRC (ISO/IEC 13818-1 §2.4.4.3, §2.4.4.8)."""
    length = 5 + len(body) + 4
    head = bytes([table_id, 0xB0 | length >> 8, length & 0xFF]) + ext.to_bytes(2, "big")
    data = head + b"\xc1\x00\x00" + body  # version 0, current_next 1, one section
    return data + crc32_mpeg(data).to_bytes(4, "big")


def psi_tables() -> tuple[bytes, bytes]:
    """Return the PAT and PMT sections of a one-program stream with MPEG-2 video."""
    pat = _section(0x00, 1, (1).to_bytes(2, "big") + (0xE000 | PMT_PID).to_bytes(2, "big"))
    video = bytes([0x02, 0xE0 | VIDEO_PID >> 8, VIDEO_PID & 0xFF, 0xF0, 0x00])
    pmt = _section(0x02, 1, (0xE000 | VIDEO_PID).to_bytes(2, "big") + b"\xf0\x00" + video)
    return pat, pmt


class TsPacketizer:
    """Splits PSI sections and PES packets into 188-byte TS packets with counters."""

    def __init__(self) -> None:
        self._cc: dict[int, int] = {}

    def packets(self, pid: int, data: bytes, *, pcr: int | None = None) -> bytes:
        """Return data as TS packets of pid; the first sets payload_unit_start_indicator.

        pcr is the 90 kHz program clock reference base put in the first packet.
        """
        out = bytearray()
        pos, first = 0, True
        while first or pos < len(data):
            field = b""  # adaptation field without its length byte (§2.4.3.4)
            if first and pcr is not None:
                field = b"\x10" + ((pcr & (1 << 33) - 1) << 15 | 0x3F << 9).to_bytes(6, "big")
            room = TS_PACKET - 4 - (len(field) + 1 if field else 0)
            piece = data[pos : pos + room]
            short = room - len(piece)
            if short and field:
                field += b"\xff" * short  # stuffing bytes (§2.4.3.5)
            elif short:
                field = b"\x00" + b"\xff" * (short - 2) if short > 1 else b""
            cc = (self._cc.get(pid, 15) + 1) & 15
            self._cc[pid] = cc
            adapt = field or short
            control = (0x30 if adapt else 0x10) | cc
            head = bytes([0x47, (0x40 if first else 0) | pid >> 8, pid & 0xFF, control])
            packet = head + (bytes([len(field)]) + field if adapt else b"") + piece
            assert len(packet) == TS_PACKET, len(packet)
            out += packet
            pos += len(piece)
            first = False
        return bytes(out)

    def psi(self, pid: int, section: bytes) -> bytes:
        """Return one section as TS packets (pointer_field 0)."""
        return self.packets(pid, b"\x00" + section)


class Mpeg2Producer:
    """Encodes the channel's pattern as MPEG-2 with a sequence header at every GOP."""

    def __init__(
        self,
        channel: int,
        width: int,
        height: int,
        fps: float,
        *,
        container: str = "es",
        open_gop: bool = False,
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
        # Open GOPs (B-pictures at a GOP start refer to the previous GOP) on request.
        ctx.options = {"sc_threshold": "1000000000"} | ({} if open_gop else {"flags": "+cgop"})
        ctx.open()
        self._ctx = ctx
        if container not in MPEG2_FORMATS:
            raise ValueError(f"container must be one of {', '.join(MPEG2_FORMATS)}")
        self._container = container
        self._ts = TsPacketizer()
        self._psi = psi_tables()
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
            if self._container != "es" and packet.pts is not None and packet.dts is not None:
                pts = _START_90K + int(packet.pts * self._ticks_90k)
                dts = _START_90K + int(packet.dts * self._ticks_90k)
                if self._container == "ps":
                    data = pack_header(max(dts - 9000, 0)) + pes_packets(data, pts, dts)
                else:
                    data = self._transport(data, pts, dts, key)
            out.append(Encoded(data, key))
        return out

    def _transport(self, data: bytes, pts: int, dts: int, key: bool) -> bytes:
        """Return one picture as TS packets, with PAT and PMT before a GOP."""
        head = b""
        if key:
            pat, pmt = self._psi
            head = self._ts.psi(0, pat) + self._ts.psi(PMT_PID, pmt)
        # One unbounded PES packet per picture (length 0 is allowed for video in TS).
        header = b"\x84\xc0\x0a" + _timestamp(0b0011, pts) + _timestamp(0b0001, dts)
        pes = b"\x00\x00\x01\xe0\x00\x00" + header + data
        return head + self._ts.packets(VIDEO_PID, pes, pcr=max(dts - 9000, 0) * 300)
