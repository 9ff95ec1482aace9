"""Cheap header scans: JPEG and MPEG-2 picture size and rate, codec names (no decoding)."""

from __future__ import annotations

from fractions import Fraction

Buffer = bytes | bytearray | memoryview

# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) are not SOFs
# (ITU-T T.81 Table B.1).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field (T.81 §B.1.1.3): TEM, RSTn, SOI.
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_MAX_SEGMENTS = 64

SEQUENCE_HEADER = b"\x00\x00\x01\xb3"
PACK_HEADER = b"\x00\x00\x01\xba"
EXTENSION_START = b"\x00\x00\x01\xb5"


def jpeg_size(data: Buffer) -> tuple[int, int] | None:
    """Return (width, height) from a JPEG's SOF segment, or None if not found early."""
    b = memoryview(data)
    if len(b) < 4 or b[0] != 0xFF or b[1] != 0xD8:
        return None
    i = 2
    for _ in range(_MAX_SEGMENTS):
        while i + 1 < len(b) and b[i] == 0xFF and b[i + 1] == 0xFF:
            i += 1  # fill bytes (T.81 §B.1.1.2)
        if i + 4 > len(b) or b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in _SOF:
            if i + 9 > len(b):
                return None
            height = b[i + 5] << 8 | b[i + 6]
            width = b[i + 7] << 8 | b[i + 8]
            return (width, height) if width and height else None
        if marker == 0xDA:  # start of scan before any SOF
            return None
        i += 2 + (b[i + 2] << 8 | b[i + 3])
    return None


#: MPEG transport stream packets: 188 bytes starting with the sync byte (ISO/IEC 13818-1 §2.4.3).
TS_PACKET = 188
TS_SYNC = 0x47


def mpeg_video_info(data: Buffer) -> tuple[str, tuple[int, int]] | None:
    """Return (codec, (width, height)) from a sequence header (ISO/IEC 13818-2 §6.2.2.1)."""
    raw = bytes(data[: 1 << 20])
    at = raw.find(SEQUENCE_HEADER)
    if at == -1 or at + 8 > len(raw):
        return None
    width = raw[at + 4] << 4 | raw[at + 5] >> 4
    height = (raw[at + 5] & 0x0F) << 8 | raw[at + 6]
    # A sequence extension (extension id 1) follows the header only in MPEG-2.
    ext = raw.find(EXTENSION_START, at + 12)
    is_mpeg2 = ext != -1 and ext + 4 < len(raw) and raw[ext + 4] >> 4 == 1
    codec = "MPEG-2 video" if is_mpeg2 else "MPEG-1 video"
    if PACK_HEADER in raw[: max(at, 4)]:
        container = "program stream"
    elif len(raw) > TS_PACKET and raw[0] == raw[TS_PACKET] == TS_SYNC:
        container = "transport stream"
    else:
        container = "elementary stream"
    return f"{codec} ({container})", (width, height)


#: frame_rate_value per frame_rate_code (ISO/IEC 13818-2 Table 6-4; 0 and 9-15 reserved).
FRAME_RATES = {
    1: Fraction(24000, 1001),
    2: Fraction(24),
    3: Fraction(25),
    4: Fraction(30000, 1001),
    5: Fraction(30),
    6: Fraction(50),
    7: Fraction(60000, 1001),
    8: Fraction(60),
}


def mpeg_frame_rate(data: Buffer) -> Fraction | None:
    """Return the frame rate of the first sequence header in data (§6.3.3), or None.

    frame_rate_value from the header's frame_rate_code, times
    (frame_rate_extension_n + 1) / (frame_rate_extension_d + 1) when a sequence
    extension follows (§6.3.5); reserved codes give None.
    """
    raw = bytes(data[:4096])
    at = raw.find(SEQUENCE_HEADER)
    if at == -1 or at + 8 > len(raw):
        return None
    rate = FRAME_RATES.get(raw[at + 7] & 0x0F)
    if rate is None:
        return None
    # The sequence extension (id 1) follows the header and its quantiser matrices; its
    # sixth byte is low_delay, frame_rate_extension_n (2 bits), frame_rate_extension_d (5).
    ext = raw.find(EXTENSION_START, at + 12)
    if ext != -1 and ext + 10 <= len(raw) and raw[ext + 4] >> 4 == 1:
        flags = raw[ext + 9]
        rate = rate * ((flags >> 5 & 3) + 1) / ((flags & 0x1F) + 1)
    return rate


#: Codec names for part/stream content types (VAPIX §5.5.2 for audio).
CODEC_NAMES = {
    "image/jpeg": "JPEG",
    "audio/32kadpcm": "G.726 32 kbit/s (audio/32KADPCM)",
    "audio/basic": "G.711 mu-law (audio/basic)",
    "video/mpeg": "MPEG video",
}


def codec_name(content_type: str) -> str:
    """Return a readable codec name for a content type."""
    key = content_type.split(";", 1)[0].strip().lower()
    return CODEC_NAMES.get(key, key or "unknown")
