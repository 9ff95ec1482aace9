"""Recognise how MPEG-2 video is carried: where a ``video/mpeg`` body's stream starts.

An elementary stream starts with a sequence header (``00 00 01 B3``, ISO/IEC 13818-2
§6.2.2.1), a program stream with a pack header (``00 00 01 BA``, ISO/IEC 13818-1
§2.5.3), a transport stream with sync bytes 0x47 every 188 bytes (§2.4.3.2). Junk in
front of the stream (a camera's leftover multipart preamble, say) is skipped, up to a
bound.
"""

from __future__ import annotations

import enum

from gateway.demux.mpeg2_scan import Buffer
from gateway.errors import RemoteProtocolError

#: Sync bytes that must line up before a transport stream is recognised.
TS_CHECK = 5
TS_PACKET = 188


class ContainerFormat(enum.Enum):
    """How the MPEG-2 video is carried."""

    ES = "es"
    PS = "ps"
    TS = "ts"


#: The start code value that opens each format whose first bytes are a start code.
_START_CODES = {0xB3: ContainerFormat.ES, 0xBA: ContainerFormat.PS}


class ContainerDetector:
    """Find the start and format of the stream in the first max_junk bytes (plus a margin)."""

    def __init__(self, *, max_junk: int) -> None:
        self._max_junk = max_junk
        self._window = bytearray()  # the input's first bytes
        self._pos = 0  # candidates before this offset are ruled out

    def feed(self, buf: Buffer, start: int, end: int) -> tuple[int, ContainerFormat] | None:
        """Look at buf[start:end]; return (offset, format) once the start is known."""
        window = self._window
        room = self._max_junk + TS_PACKET * TS_CHECK - len(window)
        window += buf[start : start + max(0, min(room, end - start))]
        return self._find_start(eof=False)

    def finish(self) -> tuple[int, ContainerFormat] | None:
        """At the end of the input: return (offset, format), or None if there is no stream."""
        return self._find_start(eof=True) if self._window else None

    def _find_start(self, *, eof: bool) -> tuple[int, ContainerFormat] | None:
        """Return (offset, format) of the stream start, or None while undecided."""
        d, p = self._window, self._pos
        while True:
            hits = [x for x in (d.find(b"\x00\x00\x01", p), d.find(b"\x47", p)) if x >= 0]
            p = min(hits) if hits else max(p, len(d) - 3)
            if p > self._max_junk:
                raise RemoteProtocolError(
                    f"no MPEG-2 sequence header, pack header or TS sync in {self._max_junk} bytes"
                )
            self._pos = p
            if not hits:
                return None
            if d[p] == 0x47:
                checks = [p + TS_PACKET * k for k in range(1, TS_CHECK)]
                if all(d[c] == 0x47 for c in checks if c < len(d)):
                    if checks[-1] < len(d) or (eof and checks[0] <= len(d)):
                        return p, ContainerFormat.TS
                    if not eof:
                        return None
            elif p + 4 > len(d):
                if not eof:
                    return None
            elif d[p + 3] in _START_CODES:
                return p, _START_CODES[d[p + 3]]
            p += 1
