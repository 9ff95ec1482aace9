"""Find MPEG video start codes in elementary-stream bytes that arrive in pieces.

The elementary stream reaches the scanner as segments: the caller's reads of an
elementary stream, or the payloads of PES packets cut out of a program or transport
stream. A start code (``00 00 01 xx``, ISO/IEC 13818-2 §5.3, Table 6-1) and the few
header bytes read after it may straddle segments; a tiny per-byte state machine handles
the seams and ``bytes.find`` the rest, so each byte is looked at a bounded number of
times whatever the split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from gateway.demux.codec import mpeg_frame_rate

#: Start code values (ISO/IEC 13818-2 Table 6-1).
PICTURE = 0x00
USER_DATA = 0xB2
SEQUENCE_HEADER = 0xB3
EXTENSION = 0xB5
SEQUENCE_END = 0xB7
GROUP = 0xB8

#: Header bytes read after the start code value: picture_coding_type sits in the second
#: byte of a picture header (§6.2.3), closed_gop/broken_link in the fourth of a GOP
#: header (§6.2.2.6).
HEADER_BYTES = {PICTURE: 2, GROUP: 4}
#: Longest sequence header kept for joins: header, quantiser matrices (§6.2.2.1),
#: extensions and user data.
MAX_SEQUENCE_HEADER = 4096

Buffer = bytes | bytearray

_PREFIX = b"\x00\x00\x01"


@dataclass(frozen=True, slots=True)
class Where:
    """Where a container packet carrying elementary-stream bytes sits in the input."""

    #: Earliest input offset a unit whose first start code begins in this packet may
    #: start at: the end of the previous video packet (non-video packets in between go
    #: with the following unit).
    bpos: int
    #: Offset of the packet itself.
    packet: int
    #: TS continuity_counter of the packet (0 elsewhere).
    cc: int = 0
    #: True when a PAT and a PMT (TS) or a pack header (PS) lie in [bpos, packet).
    tables: bool = False
    #: PS: offset just past the PES packet (0 elsewhere).
    end: int = 0
    #: Offset of the packet the PES packet begins in (PS: ``packet``; TS: the packet with
    #: payload_unit_start_indicator set); -1 when unknown (a TS joined mid-PES).
    pes: int = -1
    #: The PTS in that PES packet's header (33 bits, 90 kHz; ISO/IEC 13818-1 §2.4.3.7),
    #: or None when it has none or a malformed one.
    pts: int | None = None
    #: Elementary-stream offset of the first payload byte of the packet fed to the sink.
    es: int = 0


class EsSink(Protocol):
    """What a container parser hands the video's elementary-stream bytes to."""

    #: Elementary-stream bytes fed so far.
    es_bytes: int

    def feed(self, buf: Buffer, start: int, end: int, at: int, where: Where | None) -> None:
        """Take buf[start:end], whose first byte is at input offset ``at``, from packet where."""

    def reset(self) -> None:
        """Forget a start code cut off by lost container sync."""


@dataclass(slots=True)
class StartCode:
    """A start code found in the stream, with the header bytes that follow it."""

    #: The start code value (the byte after ``00 00 01``).
    code: int
    #: Input offset of the code's first ``00`` byte.
    at: int
    #: Elementary-stream offset of the same byte.
    es_at: int
    #: The container packet the first byte is in (None in an elementary stream).
    where: Where | None
    #: The HEADER_BYTES[code] bytes that follow the value.
    header: bytes
    #: Input offset of the last header byte (of the value when there are none).
    last: int


class StartCodeScanner:
    """Report each start code once, with its header bytes, however the input is split."""

    def __init__(self, on_code: Callable[[StartCode], None]) -> None:
        self._on_code = on_code
        # The last (at most two) zero bytes seen: (input offset, es offset, where).
        self._zeros: list[tuple[int, int, Where | None]] = []
        self._pending: StartCode | None = None  # prefix seen, value or header bytes missing
        self._need = -1  # header bytes still missing; -1 while the value is missing
        self.es_bytes = 0  # elementary-stream bytes scanned so far
        # The sequence header being captured (§6.2.2.1), from its value byte on.
        self._capture: bytearray | None = None
        self._capture_es = 0  # es offset of capture[0]
        self._segment: tuple[Buffer, int, int, int] = (b"", 0, 0, 0)  # being scanned
        #: The last complete sequence header with its extensions, from its start code.
        self.sequence_header: bytes | None = None
        #: Its frame rate (ISO/IEC 13818-2 §6.3.3), None if reserved or before one.
        self.frame_rate: Fraction | None = None

    def floor(self) -> int | None:
        """Return the input offset of the earliest start code still being read, if any."""
        if self._pending is not None:
            return self._pending.at
        return self._zeros[0][0] if self._zeros else None

    def floor_bpos(self) -> int | None:
        """Return the least ``Where.bpos`` of a start code still being read, if any."""
        where = self._pending.where if self._pending is not None else None
        if self._zeros and self._pending is None:
            where = self._zeros[0][2]
        return where.bpos if where is not None else None

    def reset(self) -> None:
        """Forget a start code or sequence header cut off by lost container sync."""
        self._zeros, self._pending, self._capture = [], None, None

    def feed(self, buf: Buffer, start: int, end: int, at: int, where: Where | None) -> None:
        """Scan buf[start:end], whose first byte is at input offset ``at``."""
        es0, base = self.es_bytes, at - start
        self.es_bytes += end - start
        self._segment = (buf, start, end, es0)
        i = start
        while i < end:
            if self._pending is not None or self._zeros:
                self._step(buf[i], base + i, es0 + i - start, where)
                i += 1
                continue
            j = buf.find(_PREFIX, i, end)
            if j < 0:
                k = end
                while k > max(i, end - 2) and buf[k - 1] == 0:
                    k -= 1
                self._zeros = [(base + q, es0 + q - start, where) for q in range(k, end)]
                break
            value = j + 3
            need = HEADER_BYTES.get(buf[value], 0) if value < end else -1
            if need < 0 or value + need >= end:
                self._pending = StartCode(-1, base + j, es0 + j - start, where, b"", -1)
                self._need = -1
                i = value
                continue
            header = bytes(buf[value + 1 : value + 1 + need])
            last = base + value + need
            self._found(StartCode(buf[value], base + j, es0 + j - start, where, header, last))
            i = value + 1 + need
        if self._capture is not None:
            self._grow_capture(es0 + end - start)
        self._segment = (b"", 0, 0, 0)

    def _step(self, byte: int, at: int, es_at: int, where: Where | None) -> None:
        pending = self._pending
        if pending is not None:
            if self._need < 0:
                pending.code = byte
                self._need = HEADER_BYTES.get(byte, 0)
            else:
                pending.header += bytes((byte,))
                self._need -= 1
            if self._need == 0:
                self._pending = None
                pending.last = at
                self._found(pending)
            return
        if byte == 0:
            self._zeros = [*self._zeros[-1:], (at, es_at, where)]
        elif byte == 1 and len(self._zeros) == 2:
            first_at, first_es, first_where = self._zeros[0]
            self._pending = StartCode(-1, first_at, first_es, first_where, b"", -1)
            self._need = -1
            self._zeros = []
        else:
            self._zeros = []

    def _found(self, code: StartCode) -> None:
        if self._capture is not None and code.code not in (EXTENSION, USER_DATA):
            # The sequence header ends where the next header that is not one of its
            # extensions or user data begins (§6.2.2, sequence_header() loop).
            self._grow_capture(code.es_at)
            capture, self._capture = self._capture, None
            length = code.es_at - self._capture_es
            if capture is not None and 0 < length <= len(capture):
                self.sequence_header = b"\x00\x00\x01" + bytes(capture[:length])
                self.frame_rate = mpeg_frame_rate(self.sequence_header)
        if code.code == SEQUENCE_HEADER:
            self._capture = bytearray()
            self._capture_es = code.es_at + 3
        self._on_code(code)

    def _grow_capture(self, upto_es: int) -> None:
        """Append the current segment's bytes up to es offset upto_es to the capture."""
        capture = self._capture
        buf, start, end, es0 = self._segment
        if capture is None:
            return
        have = self._capture_es + len(capture)  # es offset of the next byte wanted
        first = max(start, start + have - es0)
        last = min(end, start + upto_es - es0)
        if first < last:
            capture += buf[first:last]
        if len(capture) > MAX_SEQUENCE_HEADER:
            self._capture = None  # implausibly long: keep the previous header
