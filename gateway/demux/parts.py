"""Helpers for multipart parts: boundary and header parsing, JPEG completeness check."""

from __future__ import annotations

import enum
import re

from gateway.errors import RemoteProtocolError

#: JPEG start-of-image and end-of-image markers (ITU-T T.81 Table B.1).
SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
#: Part media types checked for SOI/EOI (``image/jpg`` and ``image/pjpeg`` are seen in the wild).
JPEG_TYPES = frozenset({"image/jpeg", "image/jpg", "image/pjpeg"})
#: Media type given to a part that has no Content-Type and does not start with SOI.
DEFAULT_TYPE = "application/octet-stream"

# RFC 9110 §5.6.2 token characters: what a header name may be made of.
_TOKEN = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
#: A line that starts like a header field (name, optional whitespace, colon).
HEADER_START = re.compile(rb"[%s]+[ \t]*:" % _TOKEN)
#: What a header line may start with before its colon arrives.
TOKEN_WS = re.compile(rb"[%s]*[ \t]*" % _TOKEN)
#: One or more header lines (possessive quantifiers keep matching linear).
HEADER_LINES = rb"(?:[%s]++[ \t]*+:[^\r\n]*+\r?\n)++" % _TOKEN
#: A whole header block: header lines, then a blank line.
HEADER_BLOCK = re.compile(HEADER_LINES + rb"\r?\n")
#: A run of line-break bytes (blank lines, CR-only or LF-only).
EOLS = re.compile(rb"[\r\n]*+")
#: Transport padding and the line break after a delimiter (RFC 2046 §5.1.1).
PAD_EOL = re.compile(rb"[ \t]*+\r?\n")
#: A prefix of PAD_EOL (to tell "need more bytes" from "not a delimiter").
PAD_PARTIAL = re.compile(rb"[ \t]*+\r?")
# RFC 2046 §5.1.1 bchars, and the last character may not be a space.
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]*[0-9A-Za-z'()+_,\-./:=?]")
_BOUNDARY_PARAM = re.compile(r";\s*boundary\s*=\s*", re.IGNORECASE)
_QUOTED_VALUE = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_TOKEN_VALUE = re.compile(r"[^;\s]*")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def span(pattern: re.Pattern[bytes], buf: bytes | bytearray, pos: int, end: int) -> int:
    """Return where a match of an always-matching ``pattern`` at ``pos`` ends."""
    match = pattern.match(buf, pos, end)
    return match.end() if match else pos


class DropReason(enum.StrEnum):
    """Why a part was dropped instead of delivered."""

    MISSING_SOI = "JPEG part does not start with SOI (FFD8)"
    MISSING_EOI = "JPEG part does not end with EOI (FFD9): torn frame"
    LENGTH_MISMATCH = "Content-Length does not match the next delimiter"
    TRUNCATED = "stream ended inside the part"


def declared_boundary(content_type: str | None, *, max_length: int) -> bytes | None:
    """Return the boundary parameter of a Content-Type (unquoted, leading ``--`` removed).

    Only a bounded window of the header is looked at: a value too long for ``max_length``
    (RFC 2046 §5.1.1: 70) is rejected before it is unescaped or copied, however long it is.
    """
    if not content_type:
        return None
    match = _BOUNDARY_PARAM.search(content_type)
    if match is None:
        return None
    # The longest acceptable value: the boundary and "--" (some servers declare the
    # delimiter), every character escaped, in quotes.
    room = 2 * (max_length + 2) + 2
    window = content_type[match.end() : match.end() + room + 1]
    token = _TOKEN_VALUE.match(window)
    value = token[0] if token else ""
    quoted = _QUOTED_VALUE.match(window) if value.startswith('"') else None
    unclosed = value.startswith('"') and quoted is None and len(window) > room
    if unclosed or (quoted is None and len(value) > room):
        raise RemoteProtocolError(f"boundary exceeds max_boundary_length ({max_length} bytes)")
    if quoted is not None:
        value = unquote(quoted[1])
    elif value.startswith('"'):  # unterminated: taken as it comes, like a quoted-string
        value = unquote(value[1:-1])
    # Some servers declare the delimiter (with its dashes) instead of the boundary.
    boundary = value.strip().encode("latin-1", "replace").removeprefix(b"--")
    if len(boundary) > max_length:
        raise RemoteProtocolError(f"boundary exceeds max_boundary_length ({max_length} bytes)")
    return boundary or None


def unquote(text: str) -> str:
    """Return the content of a quoted-string with its quoted-pairs undone (RFC 9110 §5.6.4)."""
    return _QUOTED_PAIR.sub(r"\1", text)


def boundary_of_line(line: bytes) -> bytes | None:
    """Return X if ``line`` (without line break) is a delimiter line ``--X``, else None."""
    if not line.startswith(b"--"):
        return None
    candidate = line[2:].rstrip(b" \t")
    return candidate if _BOUNDARY.fullmatch(candidate) else None


def parse_header_line(line: bytes) -> tuple[str, str]:
    """Split a header line (already known to start with ``name:``) into (lower name, value)."""
    name, _, value = line.partition(b":")
    return name.rstrip(b" \t").lower().decode("ascii"), value.strip(b" \t\r").decode("latin-1")


def parse_content_length(values: list[str], *, max_part_size: int) -> int | None:
    """Return the Content-Length of a part, rejecting anything but one decimal number."""
    if not values:
        return None
    lengths = set()
    for value in values:
        if not (value.isascii() and value.isdigit()):
            raise RemoteProtocolError(f"invalid part Content-Length {value[:40]!r}")
        digits = value.lstrip("0") or "0"
        # Compare the digit count first: never turn a huge string into an int.
        if len(digits) > len(str(max_part_size)) or int(digits) > max_part_size:
            raise RemoteProtocolError(
                f"part Content-Length {value[:40]} exceeds max_part_size ({max_part_size} bytes)"
            )
        lengths.add(int(digits))
    if len(lengths) > 1:
        raise RemoteProtocolError("part has conflicting Content-Length headers")
    return lengths.pop()


def length_and_type(
    headers: list[tuple[str, str]], *, max_part_size: int
) -> tuple[int, str | None] | None:
    """Return (Content-Length, first Content-Type) if the length is one plain valid number.

    None means no, several or an invalid Content-Length: parse_content_length decides.
    """
    length = content_type = None
    for name, value in headers:
        if name == "content-length":
            if length is not None:
                return None
            length = value
        elif name == "content-type" and content_type is None:
            content_type = value
    if length is None or len(length) > 12 or not (length.isascii() and length.isdigit()):
        return None
    number = int(length)
    return (number, content_type) if number <= max_part_size else None


def media_type(value: str | None, payload_start: bytes) -> str:
    """Return the media type of a part without parameters, sniffing JPEG when undeclared."""
    if value:
        return value.split(";", 1)[0].strip()
    return "image/jpeg" if payload_start == SOI else DEFAULT_TYPE


def is_jpeg(kind: str) -> bool:
    """Return True if a media type names JPEG (media types are case-insensitive)."""
    return kind.lower() in JPEG_TYPES


def jpeg_problem(payload: bytes | bytearray | memoryview) -> DropReason | None:
    """Return why ``payload`` is not a whole JPEG image (SOI ... EOI, CR/LF after), or None."""
    if payload[:2] != SOI:
        return DropReason.MISSING_SOI
    # Trailing line breaks are tolerated (some cameras count them in Content-Length).
    end = rstrip_breaks(payload, 0, len(payload))
    if end < 4 or payload[end - 2 : end] != EOI:
        return DropReason.MISSING_EOI
    return None


def whole_jpeg(payload: bytes | bytearray | memoryview) -> bool:
    """Return True if ``payload`` starts with SOI and ends with EOI (jpeg_problem's fast case)."""
    n = len(payload)
    return n >= 4 and payload[0] == 0xFF and payload[1] == 0xD8 and payload[n - 2 : n] == EOI


def eol_strip(payload_end: int, buf: bytes | bytearray, start: int, *, all_breaks: bool) -> int:
    """Return where a boundary-delimited body really ends, before the delimiter's line break."""
    end = payload_end
    if all_breaks:
        return rstrip_breaks(buf, start, end)
    if end > start and buf[end - 1] == 0x0A:
        end -= 1
        if end > start and buf[end - 1] == 0x0D:
            end -= 1
    return end


def rstrip_breaks(buf: bytes | bytearray | memoryview, start: int, end: int) -> int:
    """Return ``end`` moved back over CR/LF bytes, but not before ``start`` (C-speed steps)."""
    while end > start:
        tail = bytes(buf[max(start, end - 64) : end])
        kept = len(tail.rstrip(b"\r\n"))
        end -= len(tail) - kept
        if kept:
            break
    return end
