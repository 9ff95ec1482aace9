"""Generic ISO BMFF box building (ISO/IEC 14496-12 §4.2): headers, full boxes, integers.

A box is built bottom-up as ``bytes``: the payload parts are joined once and the size
is known before the header is written, so no box is ever patched after the fact.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from gateway.errors import LocalProtocolError

#: Largest size a compact (32-bit) box header can state; bigger boxes use ``largesize``.
MAX_COMPACT_SIZE = 0xFFFF_FFFF
#: Header bytes of a compact box (size, type) and of a full box (plus version, flags).
BOX_HEADER = 8
FULL_BOX_HEADER = 12
#: The unity matrix of mvhd/tkhd (§8.2.2.3): 16.16 fixed point except u, v, w in 2.30.
UNITY_MATRIX = struct.pack(">9I", 0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000)

_HEADER = struct.Struct(">I4s")
_LARGE_HEADER = struct.Struct(">I4sQ")
_VERSION_FLAGS = struct.Struct(">I")
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def box_header(box_type: bytes, payload_size: int) -> bytes:
    """Return the header of a box whose payload is ``payload_size`` bytes long."""
    _check_type(box_type)
    if payload_size < 0:
        raise LocalProtocolError(f"negative payload size {payload_size}")
    size = BOX_HEADER + payload_size
    if size <= MAX_COMPACT_SIZE:
        return _HEADER.pack(size, box_type)
    # size == 1 announces the 64-bit largesize field (§4.2.2).
    return _LARGE_HEADER.pack(1, box_type, size + 8)


def box(box_type: bytes, *parts: bytes) -> bytes:
    """Return a box of ``box_type`` whose payload is ``parts`` joined."""
    payload = b"".join(parts)
    return box_header(box_type, len(payload)) + payload


def full_box(box_type: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    """Return a full box (§4.2.2): version (8 bits) and flags (24 bits) before the payload."""
    if not 0 <= version <= 0xFF or not 0 <= flags <= 0xFF_FFFF:
        raise LocalProtocolError(f"full box version {version} or flags {flags:#x} out of range")
    return box(box_type, _VERSION_FLAGS.pack(version << 24 | flags), *parts)


def container(box_type: bytes, children: Iterable[bytes]) -> bytes:
    """Return a container box holding ``children`` (already built boxes) in order."""
    return box(box_type, *children)


def u8(value: int) -> bytes:
    """Return ``value`` as an unsigned 8-bit field."""
    return _pack(_U8, value)


def u16(value: int) -> bytes:
    """Return ``value`` as a big-endian unsigned 16-bit field."""
    return _pack(_U16, value)


def i16(value: int) -> bytes:
    """Return ``value`` as a big-endian signed 16-bit field."""
    return _pack(_I16, value)


def u32(value: int) -> bytes:
    """Return ``value`` as a big-endian unsigned 32-bit field."""
    return _pack(_U32, value)


def u64(value: int) -> bytes:
    """Return ``value`` as a big-endian unsigned 64-bit field."""
    return _pack(_U64, value)


def fixed16_16(value: int) -> bytes:
    """Return the integer ``value`` as an unsigned 16.16 fixed-point field (tkhd width)."""
    return u32(value << 16)


def language(code: str = "und") -> bytes:
    """Return an ISO 639-2/T code packed as mdhd's pad bit and three 5-bit letters."""
    if len(code) != 3 or not code.isascii() or not code.islower() or not code.isalpha():
        raise LocalProtocolError(f"language must be three lower-case letters, got {code!r}")
    packed = 0
    for letter in code:
        packed = packed << 5 | (ord(letter) - 0x60)  # §8.4.2.3: each letter as ord - 0x60
    return u16(packed)


def _pack(fmt: struct.Struct, value: int) -> bytes:
    try:
        return fmt.pack(value)
    except struct.error as exc:
        raise LocalProtocolError(f"{value} does not fit format {fmt.format}") from exc


def _check_type(box_type: bytes) -> None:
    if len(box_type) != 4:
        raise LocalProtocolError(f"box type must be 4 bytes, got {box_type!r}")
