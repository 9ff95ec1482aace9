"""RTP payloads of the shared encode, made once per frame for every WebRTC session.

Each session's aiortc sender would split and packetize every access unit again; the
payloads of a frame are the same for every viewer (only the RTP header differs), so
they are made once, on the first session's demand, and held for the frames still in
the ring. H.264 follows RFC 6184 in packetization-mode 1 (single NAL units, STAP-A
aggregates of the small ones, FU-A fragments of the large ones); Opus is one packet
per RTP payload (RFC 7587).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

from gateway.media import Frame
from gateway.mux.h264 import Buffer, split_annexb

#: The largest RTP payload made: 1200 bytes leaves room for the RTP header and its
#: extensions, SRTP's tag, and a TURN or VPN wrapping within a 1280-byte IPv6 MTU.
MAX_PAYLOAD = 1200
#: RFC 6184 §5.4 NAL unit types of the aggregation and fragmentation units.
STAP_A = 24
FU_A = 28
#: Frames whose payloads are held: a little more than any reader is behind live
#: before its cursor is cut (the oldest are made again if a reader asks).
HELD_FRAMES = 128


@dataclass(frozen=True, slots=True)
class Prepared:
    """A frame ready for any session's sender: its RTP payloads and timestamp."""

    #: The RTP payloads, in order; the last one carries the marker bit.
    payloads: list[bytes]
    #: The RTP timestamp in the codec's clock (before the session's random origin).
    timestamp: int
    #: True if the frame is a keyframe (an IDR with its parameter sets).
    keyframe: bool
    #: Payload bytes in all.
    size: int


def _aggregate(nals: list[memoryview]) -> bytes:
    """Return one STAP-A payload of ``nals`` (RFC 6184 §5.7.1), or the single NAL unit."""
    if len(nals) == 1:
        return bytes(nals[0])
    forbidden = 0
    nri = 0
    parts: list[Buffer] = [b""]
    for nal in nals:
        forbidden |= nal[0] & 0x80
        nri = max(nri, nal[0] & 0x60)
        parts.append(len(nal).to_bytes(2, "big"))
        parts.append(nal)
    parts[0] = bytes([forbidden | nri | STAP_A])
    return b"".join(parts)


def _fragment(nal: memoryview, max_payload: int) -> list[bytes]:
    """Return the FU-A payloads of one NAL unit too large for a packet (RFC 6184 §5.8)."""
    indicator = (nal[0] & 0xE0) | FU_A
    kind = nal[0] & 0x1F
    body = nal[1:]
    room = max_payload - 2
    count = -(-len(body) // room)
    # Equal shares rather than full packets and a runt: no packet much smaller than
    # the rest, which pacers and receivers' jitter estimates prefer.
    share, extra = divmod(len(body), count)
    out = []
    pos = 0
    for i in range(count):
        size = share + (1 if i < extra else 0)
        header = kind | (0x80 if i == 0 else 0) | (0x40 if i == count - 1 else 0)
        out.append(bytes((indicator, header)) + body[pos : pos + size])
        pos += size
    return out


def h264_payloads(access_unit: Buffer, *, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """Return the RTP payloads of one Annex B access unit, packetization-mode 1."""
    out: list[bytes] = []
    pending: list[memoryview] = []
    size = 1  # the STAP-A header
    for nal in split_annexb(access_unit):
        if not len(nal):
            continue
        if len(nal) > max_payload:
            if pending:
                out.append(_aggregate(pending))
                pending, size = [], 1
            out += _fragment(nal, max_payload)
            continue
        if pending and size + 2 + len(nal) > max_payload:
            out.append(_aggregate(pending))
            pending, size = [], 1
        pending.append(nal)
        size += 2 + len(nal)
    if pending:
        out.append(_aggregate(pending))
    return out


def opus_payloads(packet: Buffer) -> list[bytes]:
    """Return the RTP payload of one Opus packet: the packet itself (RFC 7587 §4.2)."""
    return [bytes(packet)]


class PreparedFrames:
    """The prepared form of a ring's frames, made once for all of its WebRTC readers."""

    def __init__(self, *, clock_rate: int, video: bool, held: int = HELD_FRAMES) -> None:
        """Prepare frames for an RTP clock of ``clock_rate`` Hz (H.264 if ``video``)."""
        self.clock_rate = clock_rate
        self.video = video
        self._held = held
        self._frames: OrderedDict[int, tuple[Frame, Prepared]] = OrderedDict()
        #: Frames prepared (each once, unless it was evicted and asked for again).
        self.made = 0

    def get(self, frame: Frame) -> Prepared:
        """Return ``frame``'s payloads, making them on first use."""
        key = id(frame)
        held = self._frames.get(key)
        if held is not None and held[0] is frame:
            return held[1]
        payload = frame.payload
        payloads = h264_payloads(payload) if self.video else opus_payloads(payload)
        prepared = Prepared(
            payloads=payloads,
            timestamp=_rtp_time(frame.pts, frame.time_base, self.clock_rate),
            keyframe=frame.keyframe,
            size=sum(len(p) for p in payloads),
        )
        self.made += 1
        self._frames[key] = (frame, prepared)
        if len(self._frames) > self._held:
            self._frames.popitem(last=False)
        return prepared


def _rtp_time(pts: int, time_base: Fraction, clock_rate: int) -> int:
    """Return ``pts`` in an RTP clock of ``clock_rate`` Hz, modulo 2**32."""
    return int(pts * time_base * clock_rate) & 0xFFFFFFFF
