"""Join copies for MPEG-2 cut points: what a client starting at a GOP is sent first.

A client that starts at a cut point must receive, before the GOP's own bytes, every
header the camera did not repeat there: the sequence header with its extensions
(ISO/IEC 13818-2 §6.2.2.1), in a transport stream the PAT and PMT (ISO/IEC 13818-1
§2.4.4), in a program stream a pack header (§2.5.3). In an open GOP the copy of the
GOP header gets ``broken_link = 1`` (§6.3.8), so the decoder drops the B-pictures that
refer to the GOP the client never had.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.demux.mpeg2_scan import Where
from gateway.media import Payload

TS_PACKET = 188
#: broken_link in the fourth byte after the GOP start code (§6.2.2.6).
BROKEN_LINK = 0x20


@dataclass(frozen=True, slots=True)
class JoinParts:
    """What the indexer knew when the cut point's I-picture arrived."""

    #: The container format (a ``ContainerFormat``).
    container: enum.Enum
    #: The last sequence header with its extensions.
    sequence_header: bytes
    #: The container packet the unit's first start code is in.
    where: Where | None
    #: Program stream: the last pack header, and whether it was MPEG-1 syntax.
    pack: bytes | None
    mpeg1: bool
    #: Transport stream: the last PAT and PMT packets, and the video PID.
    pat: bytes | None
    pmt: bytes | None
    video_pid: int | None


def build_join(parts: JoinParts, payload: Payload, repeated: bool, patch: int | None) -> Payload:
    """Return the join for a cut unit: payload itself when nothing needs to change.

    repeated says the unit carries its own sequence header; patch is the offset of the
    GOP header byte whose broken_link bit is to be set, or None.
    """
    prefix: list[bytes] = []
    kind = parts.container.value
    seq = parts.sequence_header
    if kind == "ts":
        where = parts.where
        if (where is None or not where.tables) and parts.pat and parts.pmt:
            prefix += [parts.pat, parts.pmt]
        if not repeated and parts.video_pid is not None:
            cc = where.cc if where is not None else 0
            prefix.append(ts_packets(parts.video_pid, pes(seq, mpeg1=False), cc))
    elif kind == "ps":
        starts_with_pack = bytes(payload[:4]) == b"\x00\x00\x01\xba"
        if parts.pack is not None and (not repeated or not starts_with_pack):
            prefix.append(parts.pack)
        if not repeated:
            prefix.append(pes(seq, mpeg1=parts.mpeg1))
    elif not repeated:
        prefix.append(seq)
    if not prefix and patch is None:
        return payload
    body: Payload | bytearray = payload
    if patch is not None:
        copy = bytearray(payload)
        copy[patch] |= BROKEN_LINK
        body = copy
    return b"".join([*prefix, body])


def pes(data: bytes, *, mpeg1: bool) -> bytes:
    """Return data in one video PES packet without timestamps (ISO/IEC 13818-1 §2.4.3.6)."""
    header = b"\x0f" if mpeg1 else b"\x80\x00\x00"
    length = len(header) + len(data)
    return b"\x00\x00\x01\xe0" + length.to_bytes(2, "big") + header + data


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
