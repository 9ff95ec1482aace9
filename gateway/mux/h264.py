"""H.264 NAL unit helpers: Annex-B and length-prefixed framing, SPS fields, the avcC record.

Encoders hand out Annex-B byte streams (ITU-T H.264 Annex B: units behind ``00 00 01``
start codes); MP4 samples carry the same units behind big-endian lengths, with the SPS
and PPS in the sample entry's AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3).
Every function here runs in time linear in its input, bounds the number of units it
returns, and raises only ``RemoteProtocolError`` on malformed input (``LocalProtocolError``
on a bad argument).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.errors import LocalProtocolError, RemoteProtocolError

Buffer = bytes | bytearray | memoryview

#: Default bound on the NAL units one access unit or record may hold.
MAX_UNITS = 1024
#: Profiles whose SPS carries chroma_format_idc and bit depths (H.264 §7.3.2.1.1).
HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
#: Profiles whose avcC record does NOT end with the chroma/bit-depth bytes: Baseline, Main
#: and Extended (14496-15:2022 §5.3.2.1.1; the 2010 edition listed 100/110/122/144 instead,
#: which agrees for the High profiles x264 writes).
AVCC_NO_EXT_PROFILES = frozenset({66, 77, 88})

_START_CODE = b"\x00\x00\x01"
_FOUR_BYTE_START = b"\x00\x00\x00\x01"
# The SPS fields the avcC record needs sit in its first few bytes; a bound keeps the
# bit reader's int small whatever the SPS length.
_SPS_PREFIX = 64
_MAX_UE_ZEROS = 31
_ZERO_STEPS = 4


class NalType(enum.IntEnum):
    """nal_unit_type values the gateway looks at (H.264 Table 7-1)."""

    SLICE = 1
    IDR = 5
    SEI = 6
    SPS = 7
    PPS = 8
    AUD = 9
    FILLER = 12


#: Units a sample does not need when the SPS/PPS travel in the avcC record.
OUT_OF_BAND = frozenset({NalType.SPS, NalType.PPS, NalType.AUD})


@dataclass(frozen=True, slots=True)
class SpsInfo:
    """The fields of a sequence parameter set that the avcC record and CODECS need."""

    #: profile_idc (66 Baseline, 77 Main, 100 High, ...).
    profile_idc: int
    #: The constraint_set flags byte, as coded (RFC 6381 "profile compatibility").
    constraint_flags: int
    #: level_idc (e.g. 31 for level 3.1).
    level_idc: int
    #: chroma_format_idc (1 = 4:2:0; implied 1 outside the high profiles).
    chroma_format_idc: int = 1
    #: bit_depth_luma_minus8 (0 for 8-bit video).
    bit_depth_luma_minus8: int = 0
    #: bit_depth_chroma_minus8 (0 for 8-bit video).
    bit_depth_chroma_minus8: int = 0


@dataclass(frozen=True, slots=True)
class AvcConfig:
    """A parsed AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1)."""

    #: AVCProfileIndication, profile_compatibility and AVCLevelIndication.
    profile_idc: int
    profile_compatibility: int
    level_idc: int
    #: Bytes per NAL unit length in the samples: 1, 2 or 4.
    length_size: int
    #: The sequence parameter set NAL units, header byte included.
    sps: tuple[bytes, ...]
    #: The picture parameter set NAL units, header byte included.
    pps: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """An encoder's access unit in the MP4 sample form, with what its keyframe record needs."""

    #: The MP4 sample: 4-byte big-endian length before each NAL unit kept, no start codes.
    sample: bytes
    #: True when it holds an IDR slice.
    idr: bool
    #: Its first sequence parameter set NAL unit, if any.
    sps: bytes | None
    #: Its first picture parameter set NAL unit, if any.
    pps: bytes | None


def nal_type(nal: Buffer) -> int:
    """Return the nal_unit_type of a NAL unit (the header's low five bits)."""
    return nal[0] & 0x1F


def split_annexb(data: Buffer, *, max_units: int = MAX_UNITS) -> list[memoryview]:
    """Return the NAL units of an Annex-B byte stream, without start codes or trailing zeros.

    A memoryview input is copied once (``bytes.find`` needs bytes); the units are views.
    """
    buf = bytes(data) if isinstance(data, memoryview) else data
    view = memoryview(buf)
    first = buf.find(_START_CODE)
    # Only zero bytes (leading_zero_8bits, B.1.2) may come before the first start code.
    if first < 0 or buf.count(0, 0, first) != first:
        raise RemoteProtocolError("H.264 Annex-B data does not start with a start code")
    units: list[memoryview] = []
    pos = first + len(_START_CODE)
    while True:
        nxt = buf.find(_START_CODE, pos)
        stop = len(buf) if nxt < 0 else nxt
        # trailing_zero_8bits and the zero_byte of a 4-byte start code belong to no unit;
        # a NAL unit never ends in 0x00 (H.264 §7.4.1).
        stop = _strip_zeros(buf, pos, stop)
        units.append(_checked_unit(view[pos:stop], len(units), max_units))
        if nxt < 0:
            return units
        pos = nxt + len(_START_CODE)


def split_length_prefixed(
    data: Buffer, *, length_size: int = 4, max_units: int = MAX_UNITS
) -> list[memoryview]:
    """Return the NAL units of an MP4 sample: each behind a big-endian ``length_size`` length."""
    if length_size not in (1, 2, 4):
        raise LocalProtocolError(f"NAL length size must be 1, 2 or 4, got {length_size}")
    view = memoryview(data)
    units: list[memoryview] = []
    pos = 0
    while pos < len(view) or not units:
        if pos + length_size > len(view):
            raise RemoteProtocolError("truncated NAL unit length")
        size = int.from_bytes(view[pos : pos + length_size], "big")
        pos += length_size
        if pos + size > len(view):
            raise RemoteProtocolError(f"NAL unit of {size} bytes overruns the sample")
        units.append(_checked_unit(view[pos : pos + size], len(units), max_units))
        pos += size
    return units


def to_length_prefixed(nals: Iterable[Buffer]) -> bytes:
    """Return ``nals`` joined as an MP4 sample, each behind a 4-byte big-endian length."""
    parts: list[Buffer] = []
    for nal in nals:
        parts.append(len(nal).to_bytes(4, "big"))
        parts.append(nal)
    return b"".join(parts)


def to_annexb(nals: Iterable[Buffer]) -> bytes:
    """Return ``nals`` joined as an Annex-B byte stream with 4-byte start codes."""
    parts: list[Buffer] = []
    for nal in nals:
        parts.append(_FOUR_BYTE_START)
        parts.append(nal)
    return b"".join(parts)


def split_access_unit(
    data: Buffer, *, drop: frozenset[int] = OUT_OF_BAND, max_units: int = MAX_UNITS
) -> AccessUnit:
    """Return an encoder's Annex-B access unit split once: sample (no ``drop`` types), SPS, PPS."""
    sps = pps = None
    idr = False
    kept: list[Buffer] = []
    for nal in split_annexb(data, max_units=max_units):
        kind = nal_type(nal)
        if kind == NalType.SPS and sps is None:
            sps = bytes(nal)
        elif kind == NalType.PPS and pps is None:
            pps = bytes(nal)
        idr |= kind == NalType.IDR
        if kind not in drop:
            kept.append(nal)
    if not kept:
        raise RemoteProtocolError("H.264 access unit holds no picture data")
    return AccessUnit(to_length_prefixed(kept), idr, sps, pps)


def annexb_to_sample(
    data: Buffer, *, drop: frozenset[int] = OUT_OF_BAND, max_units: int = MAX_UNITS
) -> bytes:
    """Return an encoder's Annex-B access unit as an MP4 sample, without ``drop`` unit types."""
    return split_access_unit(data, drop=drop, max_units=max_units).sample


def sample_to_annexb(data: Buffer, *, length_size: int = 4, max_units: int = MAX_UNITS) -> bytes:
    """Return an MP4 sample's NAL units as an Annex-B byte stream."""
    return to_annexb(split_length_prefixed(data, length_size=length_size, max_units=max_units))


def parameter_sets(nals: Iterable[Buffer]) -> tuple[bytes, bytes]:
    """Return the first SPS and the first PPS among ``nals``."""
    sps = pps = None
    for nal in nals:
        kind = nal_type(nal)
        if kind == NalType.SPS and sps is None:
            sps = bytes(nal)
        elif kind == NalType.PPS and pps is None:
            pps = bytes(nal)
    if sps is None or pps is None:
        raise RemoteProtocolError("H.264 stream has no SPS and PPS")
    return sps, pps


def parse_sps(sps: Buffer) -> SpsInfo:
    """Return the profile, level, chroma format and bit depths of an SPS NAL unit."""
    if len(sps) < 4 or nal_type(sps) != NalType.SPS:
        raise RemoteProtocolError("not an H.264 sequence parameter set")
    profile, flags, level = sps[1], sps[2], sps[3]
    if profile not in HIGH_PROFILES:
        return SpsInfo(profile, flags, level)
    bits = _BitReader(bytes(sps[4:_SPS_PREFIX]))
    bits.ue()  # seq_parameter_set_id
    chroma = bits.ue()
    if chroma > 3:
        raise RemoteProtocolError(f"SPS chroma_format_idc {chroma} is out of range")
    if chroma == 3:
        bits.bit()  # separate_colour_plane_flag
    luma, chroma_depth = bits.ue(), bits.ue()
    if luma > 6 or chroma_depth > 6:  # bit depths 8..14 (§7.4.2.1.1)
        raise RemoteProtocolError("SPS bit depth is out of range")
    return SpsInfo(profile, flags, level, chroma, luma, chroma_depth)


def codec_string_from_sps(sps: Buffer) -> str:
    """Return the RFC 6381 ``avc1.PPCCLL`` string (HLS CODECS, MSE) for an SPS NAL unit."""
    info = parse_sps(sps)
    return f"avc1.{info.profile_idc:02x}{info.constraint_flags:02x}{info.level_idc:02x}"


def avcc_from_parameter_sets(sps: Buffer, pps: Buffer) -> bytes:
    """Return the AVCDecoderConfigurationRecord for one SPS and one PPS (4-byte lengths)."""
    info = parse_sps(sps)
    if not pps or nal_type(pps) != NalType.PPS:
        raise RemoteProtocolError("not an H.264 picture parameter set")
    if len(sps) > 0xFFFF or len(pps) > 0xFFFF:
        raise RemoteProtocolError("parameter set longer than 65535 bytes")
    parts = [
        bytes((1, info.profile_idc, info.constraint_flags, info.level_idc)),
        b"\xff",  # reserved '111111' + lengthSizeMinusOne = 3
        b"\xe1",  # reserved '111' + numOfSequenceParameterSets = 1
        len(sps).to_bytes(2, "big"),
        bytes(sps),
        b"\x01",  # numOfPictureParameterSets
        len(pps).to_bytes(2, "big"),
        bytes(pps),
    ]
    if info.profile_idc not in AVCC_NO_EXT_PROFILES:
        parts.append(
            bytes(
                (
                    0xFC | info.chroma_format_idc,
                    0xF8 | info.bit_depth_luma_minus8,
                    0xF8 | info.bit_depth_chroma_minus8,
                    0,  # numOfSequenceParameterSetExt
                )
            )
        )
    return b"".join(parts)


def parse_avcc(record: Buffer) -> AvcConfig:
    """Return the fields and parameter sets of an AVCDecoderConfigurationRecord."""
    view = memoryview(record)
    if len(view) < 7 or view[0] != 1:
        raise RemoteProtocolError("not an AVCDecoderConfigurationRecord (version 1)")
    length_size = (view[4] & 0x03) + 1
    if length_size == 3:
        raise RemoteProtocolError("avcC lengthSizeMinusOne of 2 is not allowed")
    sps, pos = _read_sets(view, 6, view[5] & 0x1F)
    if pos >= len(view):
        raise RemoteProtocolError("avcC record ends before its PPS count")
    pps, _ = _read_sets(view, pos + 1, view[pos])
    if not sps or not pps:
        raise RemoteProtocolError("avcC record lacks an SPS or a PPS")
    return AvcConfig(view[1], view[2], view[3], length_size, sps, pps)


def avcc_from_extradata(extradata: Buffer) -> bytes:
    """Return an avcC record from an encoder's extradata, given as avcC or as Annex-B."""
    if extradata[:1] == b"\x01":
        parse_avcc(extradata)
        return bytes(extradata)
    sps, pps = parameter_sets(split_annexb(extradata))
    return avcc_from_parameter_sets(sps, pps)


def _read_sets(view: memoryview, pos: int, count: int) -> tuple[tuple[bytes, ...], int]:
    sets = []
    for _ in range(count):
        if pos + 2 > len(view):
            raise RemoteProtocolError("avcC record truncated in a parameter set length")
        size = int.from_bytes(view[pos : pos + 2], "big")
        pos += 2
        if size == 0 or pos + size > len(view):
            raise RemoteProtocolError("avcC parameter set is empty or truncated")
        sets.append(bytes(view[pos : pos + size]))
        pos += size
    return tuple(sets), pos


def _strip_zeros(buf: bytes | bytearray, start: int, stop: int) -> int:
    for _ in range(_ZERO_STEPS):  # the usual case: none, or one zero_byte
        if stop == start or buf[stop - 1] != 0:
            return stop
        stop -= 1
    # A long zero run: strip it at C speed (one copy of this unit, still linear).
    return start + len(buf[start:stop].rstrip(b"\x00"))


def _checked_unit(nal: memoryview, count: int, max_units: int) -> memoryview:
    if not nal:
        raise RemoteProtocolError("empty H.264 NAL unit")
    if nal[0] & 0x80:
        raise RemoteProtocolError("H.264 NAL unit has forbidden_zero_bit set")
    if count >= max_units:
        raise RemoteProtocolError(f"more than {max_units} NAL units")
    return nal


class _BitReader:
    """Read bits and Exp-Golomb codes (H.264 §9.1) from an RBSP prefix."""

    def __init__(self, ebsp: bytes) -> None:
        # Drop emulation_prevention_three_byte (§7.4.1): 00 00 03 -> 00 00.
        rbsp = ebsp.replace(b"\x00\x00\x03", b"\x00\x00")
        self._value = int.from_bytes(rbsp, "big")
        self._left = len(rbsp) * 8

    def bit(self) -> int:
        if self._left <= 0:
            raise RemoteProtocolError("SPS ends inside a field")
        self._left -= 1
        return self._value >> self._left & 1

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > _MAX_UE_ZEROS:
                raise RemoteProtocolError("SPS Exp-Golomb code is too long")
        value = 0
        for _ in range(zeros):
            value = value << 1 | self.bit()
        return (1 << zeros) - 1 + value
