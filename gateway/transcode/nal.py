"""H.264 NAL units: Annex B splitting, the MP4 sample form, and the RFC 6381 codec string.

An encoder writes the byte stream format of ITU-T H.264 Annex B (each NAL unit after a
``00 00 01`` or ``00 00 00 01`` start code). MP4 (ISO/IEC 14496-15 §5.3) stores the same
NAL units with a 4-byte big-endian length in front instead, and carries SPS and PPS in
the ``avcC`` box, not in the samples. Everything here is linear in the input length.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from gateway.errors import LocalProtocolError

#: Three-byte start code prefix (H.264 §B.1.1); a four-byte one is a zero byte before it.
START_CODE: Final = b"\x00\x00\x01"
#: Length field size of the MP4 sample form (``avcC`` lengthSizeMinusOne = 3).
LENGTH_SIZE: Final = 4


class NalType(enum.IntEnum):
    """``nal_unit_type`` values the gateway looks at (H.264 Table 7-1)."""

    SLICE = 1
    IDR = 5
    SEI = 6
    SPS = 7
    PPS = 8
    AUD = 9
    FILLER = 12


#: NAL units left out of MP4 samples. SPS and PPS live in ``avcC`` (ISO/IEC 14496-15
#: §5.3.3); an access unit delimiter adds nothing where samples delimit access units;
#: filler data is padding for a constant-rate channel. SEI: the only one x264 writes
#: here is its user-data-unregistered version banner (payload type 5) in the first
#: access unit, which no decoder needs, and dropping it leaves every sample made of
#: slices alone, the same before and after a join.
NOT_IN_SAMPLE: Final = frozenset(
    {NalType.SEI, NalType.SPS, NalType.PPS, NalType.AUD, NalType.FILLER}
)


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """One encoded picture split into NAL units."""

    #: The MP4 sample: 4-byte big-endian length before each NAL unit, no start codes.
    sample: bytes
    #: True when the access unit holds an IDR slice.
    idr: bool
    #: The sequence parameter set NAL unit in the access unit, if any.
    sps: bytes | None
    #: The picture parameter set NAL unit in the access unit, if any.
    pps: bytes | None


def nal_units(data: bytes) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of each NAL unit in an Annex B byte stream, start codes excluded.

    Zero bytes before a start code belong to the byte stream (``trailing_zero_8bits``,
    the first byte of a four-byte start code), not to the NAL unit before it.
    """
    begin = data.find(START_CODE)
    while begin >= 0:
        start = begin + len(START_CODE)
        begin = data.find(START_CODE, start)
        end = len(data) if begin < 0 else begin
        while end > start and data[end - 1] == 0:
            end -= 1
        if end > start:
            yield start, end


def split_access_unit(data: bytes) -> AccessUnit:
    """Return the MP4 sample form of one Annex B access unit, with its SPS, PPS and IDR flag."""
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    idr = False
    sps = pps = None
    for start, end in nal_units(data):
        kind = data[start] & 0x1F
        if kind == NalType.SPS:
            sps = data[start:end]
        elif kind == NalType.PPS:
            pps = data[start:end]
        elif kind == NalType.IDR:
            idr = True
        if kind not in NOT_IN_SAMPLE:
            parts.append((end - start).to_bytes(LENGTH_SIZE, "big"))
            parts.append(view[start:end])
    return AccessUnit(b"".join(parts), idr, sps, pps)


def annexb(*units: bytes) -> bytes:
    """Return NAL units as an Annex B byte stream (four-byte start codes)."""
    return b"".join(b"\x00" + START_CODE + unit for unit in units)


def codec_string(sps: bytes) -> str:
    """Return the RFC 6381 ``avc1.PPCCLL`` codec string of an SPS NAL unit.

    PP, CC and LL are profile_idc, the constraint flags byte and level_idc, the three
    bytes after the NAL header (H.264 §7.3.2.1.1; ISO/IEC 14496-15 §5.3.3's
    AVCProfileIndication, profile_compatibility, AVCLevelIndication). None of them can
    hold an emulation prevention byte (two zero bytes would need level_idc = 0).
    """
    if len(sps) < 4 or sps[0] & 0x1F != NalType.SPS:
        raise LocalProtocolError("not an SPS NAL unit")
    return "avc1." + sps[1:4].hex()
