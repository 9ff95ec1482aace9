"""Find container sync: where a ``video/mpeg`` body's stream starts, and where it resumes.

An elementary stream starts with a sequence header (``00 00 01 B3``, ISO/IEC 13818-2
§6.2.2.1), a program stream with a pack header (``00 00 01 BA``, ISO/IEC 13818-1
§2.5.3), a transport stream with sync bytes 0x47 every 188 bytes (§2.4.3.2). Junk in
front of the stream (a camera's leftover multipart preamble, say) is skipped, up to a
bound.

When a program or transport stream loses sync in the middle (a packet that does not
start where the previous one said it would), ``SyncSearch`` looks for the next place
packets line up again: 0x47 at three consecutive 188-byte steps (TS), or a pack start
code or the PES start code of a stream already seen (PS). The product rule is that a
malformed camera stream drops at most the damaged picture, not the connection.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from gateway.demux.codec import TS_PACKET
from gateway.demux.mpeg2_scan import Buffer, EsSink
from gateway.errors import RemoteProtocolError

#: Sync bytes that must line up before a transport stream is recognised.
TS_CHECK = 5
#: Sync bytes that must line up before a transport stream resumes after lost sync.
TS_RESYNC_CHECK = 3
PACK = 0xBA

#: Input bytes buf[start:end], the first at input offset at.
Segment = tuple[Buffer, int, int, int]


class ContainerFormat(enum.Enum):
    """How the MPEG-2 video is carried."""

    ES = "es"
    PS = "ps"
    TS = "ts"


#: The media type of each container: ``video/mpeg`` (RFC 2046 §4.4, an elementary
#: stream), ``video/MP2P`` and ``video/MP2T`` (RFC 3555 §4.2.10, §4.2.11), lower-cased.
MEDIA_TYPES = {
    ContainerFormat.ES: "video/mpeg",
    ContainerFormat.PS: "video/mp2p",
    ContainerFormat.TS: "video/mp2t",
}


@dataclass(frozen=True, slots=True)
class FormatDetected:
    """The container was recognised; units follow."""

    #: The container format.
    format: ContainerFormat
    #: Junk bytes skipped before it.
    skipped: int


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
        # The next candidate of each kind, found again only once p has passed it: one
        # search per candidate rejected would read the window again each time (quadratic).
        code = sync = -2
        while True:
            if code != -1 and code < p:
                code = d.find(b"\x00\x00\x01", p)
            if sync != -1 and sync < p:
                sync = d.find(b"\x47", p)
            hits = [x for x in (code, sync) if x >= 0]
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


class SyncSearch:
    """Find where packets resume after lost sync, however the input is split.

    The input is seen as one run V: the few bytes kept from earlier segments (a
    candidate that could not be decided yet) followed by the new segment. Every byte is
    looked at a bounded number of times; ``bytes.find`` does the rest.
    """

    def __init__(self, ts: bool, lost: int, ids: frozenset[int], *, limit: int) -> None:
        self._ts, self._lost, self._ids, self._limit = ts, lost, ids, limit
        self._needle = b"\x47" if ts else b"\x00\x00\x01"
        # Bytes from a candidate's first to the last one the decision needs, inclusive.
        self._reach = TS_PACKET * (TS_RESYNC_CHECK - 1) + 1 if ts else 4
        self._carry = bytearray()  # V's bytes from earlier segments
        #: Input offset of the earliest byte where packets may still resume (carry[0]).
        self.floor = lost + 1

    def feed(self, buf: Buffer, start: int, end: int, at: int) -> list[Segment] | None:
        """Search buf[start:end] (at == floor + kept bytes); return the segments from sync on."""
        carry, n = self._carry, len(self._carry)
        total = n + end - start

        def get(q: int) -> int:
            return carry[q] if q < n else buf[start + q - n]

        p = 0
        while True:
            p = self._next(get, buf, start, end, p)
            if p + self._reach > total:
                break
            if self._accept(get, p):
                self._check(self.floor + p)
                return self._resume(buf, start, end, at, p)
            p += 1
        keep = min(p, max(0, total - len(self._needle) + 1))
        self._check(self.floor + keep)
        if keep < n:
            del carry[:keep]
            carry += buf[start:end]
        else:
            self._carry = bytearray(buf[start + keep - n : end])
        self.floor += keep
        return None

    def _next(self, get: Callable[[int], int], buf: Buffer, start: int, end: int, p: int) -> int:
        """Return the first offset >= p in V where the needle is, or len(V)."""
        n = len(self._carry)
        size, total = len(self._needle), n + end - start
        while p < n:  # a needle that starts in the carried bytes
            if p + size > total:
                return total
            if all(get(p + k) == self._needle[k] for k in range(size)):
                return p
            p += 1
        j = buf.find(self._needle, start + p - n, end)
        return total if j < 0 else j - start + n

    def _accept(self, get: Callable[[int], int], p: int) -> bool:
        if self._ts:
            steps = range(1, TS_RESYNC_CHECK)
            return all(get(p + TS_PACKET * k) == 0x47 for k in steps)
        return get(p + 3) in self._ids

    def _check(self, resume: int) -> None:
        if resume - self._lost > self._limit:
            kind = "transport stream: no sync" if self._ts else "program stream: no start code"
            raise RemoteProtocolError(
                f"{kind} in {self._limit} bytes after lost sync at byte {self._lost}"
            )

    def _resume(self, buf: Buffer, start: int, end: int, at: int, p: int) -> list[Segment]:
        carry, n = self._carry, len(self._carry)
        segments: list[Segment] = []
        if p < n:
            segments.append((bytes(carry[p:]), 0, n - p, self.floor + p))
        j = start + max(0, p - n)
        if j < end:
            segments.append((buf, j, end, at + j - start))
        self.floor += p
        self._carry = bytearray()
        return segments


class ResyncingParser:
    """Base of the PS and TS parsers: walk packets; after lost sync, search and resume there."""

    #: True for transport streams.
    TS = False

    def __init__(
        self,
        scanner: EsSink,
        start: int,
        on_lost: Callable[[int], None],
        *,
        max_resync: int,
    ) -> None:
        self._scanner = scanner
        self._on_lost = on_lost
        self._max_resync = max_resync
        self._search: SyncSearch | None = None
        self._held: Segment | None = None  # bytes of the packet that lost sync, after its first
        #: End of the last video packet (where a following unit may start).
        self.gap_start = start

    def feed(self, buf: Buffer, start: int, end: int, at: int) -> None:
        """Parse buf[start:end], whose first byte is at input offset ``at``."""
        work: list[Segment] = [(buf, start, end, at)]
        while work:
            b, s, e, a = work.pop()
            search = self._search
            if search is None:
                i = self._walk(b, s, e, a)
                if self._search is not None:  # lost: search the rest of the packet, then on
                    if i < e:
                        work.append((b, i, e, a + i - s))
                    if self._held is not None:
                        work.append(self._held)
                        self._held = None
                continue
            found = search.feed(b, s, e, a)
            self.gap_start = search.floor
            if found is not None:
                self._search = None
                work += reversed(found)

    def _walk(self, buf: Buffer, start: int, end: int, at: int) -> int:
        """Parse packets in buf[start:end] until the end or lost sync; return where it stopped."""
        raise NotImplementedError

    def _lose(self, packet: int, rest: bytes, ids: frozenset[int]) -> None:
        """Note lost sync at the packet at offset packet; rest: the bytes read after its first."""
        self._scanner.reset()  # a start code cut off here is no start code
        self._search = SyncSearch(self.TS, packet, ids, limit=self._max_resync)
        self._held = (rest, 0, len(rest), packet + 1) if rest else None
        self.gap_start = packet
        self._on_lost(packet)
