"""Join copies for MPEG-2 cut points: what a client starting at a GOP is sent first.

A client that starts at a cut point must receive, before the GOP's own bytes, every
header the camera did not repeat there: the sequence header with its extensions
(ISO/IEC 13818-2 §6.2.2.1), in a transport stream the PAT and PMT (ISO/IEC 13818-1
§2.4.4), in a program stream a pack header (§2.5.3). In an open GOP the copy of the
GOP header gets ``broken_link = 1`` (§6.3.8), so the decoder drops the B-pictures that
refer to the GOP the client never had.

Program streams with small pictures (FFmpeg's ``mpeg``/``vob`` muxers, 2 KiB packs) put
a GOP's headers and I-picture in a PES packet after whole pictures of the previous GOP.
Units keep the camera's packet boundaries, so that unit starts with those pictures; its
join re-packs the PES packet (``Repack``): a new PES packet of the same stream without
timestamps (the original PTS belongs to the first picture that began in it, which the
join leaves out) carries the payload from the GOP's headers to the packet's end, and the
rest of the unit follows unchanged. When the GOP header ends one unit and its I-picture
opens the next, the join of the latter carries a copy of the GOP header.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.demux.codec import PACK_HEADER
from gateway.demux.mpeg2_scan import StartCode, Where
from gateway.media import Payload

#: broken_link in the fourth byte after the GOP start code (§6.2.2.6).
BROKEN_LINK = 0x20


@dataclass(frozen=True, slots=True)
class GopStart:
    """A GOP header read, awaiting its I-picture."""

    #: closed_gop and broken_link as received (§6.3.8).
    closed: bool
    broken: bool
    #: Input offset of the GOP start code, and of the byte holding broken_link.
    at: int
    flag_at: int
    #: The GOP header: start code and the four bytes after it.
    header: bytes
    #: Input offset where the GOP's headers begin: a sequence header right before it
    #: (only extensions and user data in between), else the GOP header itself.
    start: int
    #: The container packet the byte at start is in; and whether it is a sequence header.
    where: Where | None
    repeated: bool

    @classmethod
    def read(cls, sc: StartCode, seq: tuple[int, Where | None] | None) -> GopStart:
        """Return the GOP header at sc; seq: (offset, packet) of a sequence header before it."""
        start, where = seq if seq is not None else (sc.at, sc.where)
        closed, broken = bool(sc.header[3] & 0x40), bool(sc.header[3] & 0x20)
        header = b"\x00\x00\x01\xb8" + sc.header
        return cls(closed, broken, sc.at, sc.last, header, start, where, seq is not None)

    def patched(self) -> bytes:
        """Return the header with broken_link set when the GOP is open."""
        if self.closed or self.broken:
            return self.header
        return self.header[:7] + bytes((self.header[7] | BROKEN_LINK,))


@dataclass(frozen=True, slots=True)
class Repack:
    """Offsets in a unit's payload of a PES packet to re-pack from the GOP's headers on."""

    #: Where the PES packet starts, where the GOP's headers start in it, where it ends.
    packet: int
    start: int
    end: int

    @classmethod
    def of(cls, where: Where, start: int, base: int) -> Repack:
        """Return the offsets in a payload starting at base of where's packet, from start on."""
        return cls(where.packet - base, start - base, where.end - base)


@dataclass(frozen=True, slots=True)
class JoinParts:
    """What the indexer knew when the cut point's I-picture arrived."""

    #: The container format (a ``ContainerFormat``).
    container: enum.Enum
    #: Elementary-stream bytes the unit lacks, sent in front of it in a packet of their
    #: own: the last sequence header with its extensions (and a copy of the GOP header
    #: when that is in the previous unit), or b"".
    lead: bytes
    #: The container packet the unit's first start code is in.
    where: Where | None
    #: Offset in the payload of the GOP header byte whose broken_link is to be set.
    patch: int | None = None
    #: Program stream: the PES packet to re-pack, if the GOP starts after other pictures.
    repack: Repack | None = None
    #: Program stream: the last pack header, whether it was MPEG-1 syntax, the video
    #: stream_id.
    pack: bytes | None = None
    mpeg1: bool = False
    stream_id: int = 0xE0
    #: Transport stream: the last PAT and PMT packets, and the video PID.
    pat: bytes | None = None
    pmt: bytes | None = None
    video_pid: int | None = None


def build_join(parts: JoinParts, payload: Payload) -> Payload:
    """Return the join for a cut unit: payload itself when nothing needs to change."""
    prefix: list[bytes | Payload] = []
    kind, lead, repack = parts.container.value, parts.lead, parts.repack
    body_from = 0
    if kind == "ts":
        where = parts.where
        if (where is None or not where.tables) and parts.pat and parts.pmt:
            prefix += [parts.pat, parts.pmt]
        if lead and parts.video_pid is not None:
            cc = where.cc if where is not None else 0
            prefix.append(ts_packets(parts.video_pid, pes(lead, mpeg1=False), cc))
    elif kind == "ps":
        starts_with_pack = bytes(payload[:4]) == PACK_HEADER
        if parts.pack is not None and not (starts_with_pack and (repack or not lead)):
            prefix.append(parts.pack)
        if repack is not None:
            prefix.append(payload[: repack.packet])  # pack, system header, other streams
        if lead:
            prefix.append(pes(lead, mpeg1=parts.mpeg1, stream_id=parts.stream_id))
        if repack is not None:
            size = min(repack.end, len(payload)) - repack.start
            prefix.append(pes_header(size, mpeg1=parts.mpeg1, stream_id=parts.stream_id))
            body_from = repack.start
    elif lead:
        prefix.append(lead)
    patch = parts.patch
    if not prefix and patch is None:
        return payload
    body: Payload | bytearray = payload[body_from:]
    if patch is not None:
        copy = bytearray(body)
        copy[patch - body_from] |= BROKEN_LINK
        body = copy
    return b"".join([*prefix, body])


def pes_header(size: int, *, mpeg1: bool, stream_id: int = 0xE0) -> bytes:
    """Return a PES header without timestamps for size payload bytes (§2.4.3.6)."""
    header = b"\x0f" if mpeg1 else b"\x80\x00\x00"
    length = len(header) + size
    return b"\x00\x00\x01" + bytes((stream_id,)) + length.to_bytes(2, "big") + header


def pes(data: bytes, *, mpeg1: bool, stream_id: int = 0xE0) -> bytes:
    """Return data in one video PES packet without timestamps (ISO/IEC 13818-1 §2.4.3.6)."""
    return pes_header(len(data), mpeg1=mpeg1, stream_id=stream_id) + data


def ts_packets(pid: int, data: bytes, next_cc: int) -> bytes:
    """Return data as TS packets of pid whose counters run up to just before next_cc."""
    pieces = [data[i : i + 184] for i in range(0, len(data), 184)] or [b""]
    out = bytearray()
    for k, piece in enumerate(pieces):
        cc = (next_cc - len(pieces) + k) & 0x0F
        short = 184 - len(piece)
        if short == 0:
            control, field = 0x10, b""
        elif short == 1:
            control, field = 0x30, b"\x00"
        else:
            control, field = 0x30, bytes([short - 1, 0x00]) + b"\xff" * (short - 2)
        start = 0x40 if k == 0 else 0
        out += bytes([0x47, start | pid >> 8, pid & 0xFF, control | cc]) + field + piece
    return bytes(out)
