"""Program and transport stream depacketisers: container bytes in, video PES payload out.

Both hand the payload of the video PES packets to an ``EsSink`` (the indexer's
``StartCodeScanner``, or ``mpeg2_es``'s collector) in place (no copy), as segments
tagged with a ``Where``: the container packet the bytes are in and the earliest offset
a unit beginning in that packet may start at. Headers that straddle reads are
assembled in a small scratch buffer; that copy is parsing state, never payload (units
are cut from the caller's buffers).

A malformed packet header means lost sync: the parser reports it, searches for the
next packet (``mpeg2_sync.SyncSearch``) and carries on from there. A malformed PTS in a
well-formed PES header (marker bits 0, PTS_DTS_flags without room for the field) is no
reason to lose sync: that packet just has no PTS (``Where.pts`` is None).
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.demux.codec import TS_PACKET
from gateway.demux.mpeg2_scan import Buffer, EsSink, Where
from gateway.demux.mpeg2_sync import PACK, ResyncingParser
from gateway.errors import RemoteProtocolError

#: Non-video packets tolerated in front of a unit (program stream map, padding, audio,
#: PSI): beyond this the unit starts at the packet carrying its first start code.
MAX_GAP = 65536
#: stream_type values of MPEG-1 and MPEG-2 video (ISO/IEC 13818-1 Table 2-34).
VIDEO_STREAM_TYPES = frozenset({0x01, 0x02})
#: Video stream_id values of PES packets (ISO/IEC 13818-1 Table 2-22).
VIDEO_IDS = range(0xE0, 0xF0)
_END = 0xB9


def read_timestamp(head: Buffer, i: int) -> int | None:
    """Return the 33-bit PTS/DTS in head[i:i+5] (ISO/IEC 13818-1 §2.4.3.7), or None.

    The field is ``001x`` (4 bits), ts[32..30], marker, ts[29..15], marker, ts[14..0],
    marker: a field that is short, has another prefix or a marker bit 0 is no timestamp.
    """
    if i + 5 > len(head):
        return None
    b0, b1, b2, b3, b4 = head[i : i + 5]
    if b0 >> 5 != 0b001 or not b0 & b2 & b4 & 1:
        return None
    return (b0 >> 1 & 7) << 30 | b1 << 22 | (b2 >> 1) << 15 | b3 << 7 | b4 >> 1


def pes_pts(head: Buffer) -> int | None:
    """Return the PTS of an MPEG-2 PES header (its first 9 bytes and the fields after)."""
    # PTS_DTS_flags '10' or '11' (§2.4.3.6); '01' is forbidden. The field must fit in
    # PES_header_data_length.
    flags = head[7] >> 6
    if not flags & 2 or head[8] < (10 if flags == 3 else 5):
        return None
    return read_timestamp(head, 9)


class ProgramStreamParser(ResyncingParser):
    """Walk packs and PES packets (ISO/IEC 13818-1 §2.5.3; MPEG-1 system packs too)."""

    def __init__(
        self,
        scanner: EsSink,
        start: int,
        on_lost: Callable[[int], None],
        *,
        max_resync: int,
    ) -> None:
        super().__init__(scanner, start, on_lost, max_resync=max_resync)
        self._head = bytearray()  # the packet header being assembled
        self._want = 4  # header bytes needed before the next decision
        self._payload = 0  # video payload bytes left in the current PES packet
        self._skip = 0  # bytes left of a packet we do not look into
        self._packet = start  # offset of the current packet
        self._where = Where(start, start)
        self._pack_in_gap = False
        self._ids = {PACK}  # start code values seen: where parsing may resume after lost sync
        #: The last pack header, for joins; and whether it was MPEG-1 (ISO/IEC 11172-1).
        self.last_pack: bytes | None = None
        self.mpeg1 = False
        #: The video stream_id followed (the first one seen).
        self.video_id: int | None = None

    @property
    def between_packets(self) -> bool:
        """Return True when the input so far ends where a packet does."""
        return not (self._head or self._payload or self._skip)

    def _walk(self, buf: Buffer, start: int, end: int, at: int) -> int:
        i = start
        while i < end:
            if self._payload:
                n = min(self._payload, end - i)
                self._scanner.feed(buf, i, i + n, at + i - start, self._where)
                self._payload -= n
                i += n
                if not self._payload:
                    self._video_done(at + i - start)
            elif self._skip:
                n = min(self._skip, end - i)
                self._skip -= n
                i += n
            else:
                if not self._head:
                    self._packet = at + i - start
                n = min(self._want - len(self._head), end - i)
                self._head += buf[i : i + n]
                i += n
                if len(self._head) == self._want:
                    try:
                        self._parse_head()
                    except RemoteProtocolError:
                        self._lost()
                        return i
        return i

    def _lost(self) -> None:
        head, self._head = bytes(self._head), bytearray()
        self._want, self._payload, self._skip, self._pack_in_gap = 4, 0, 0, False
        self._lose(self._packet, head[1:], frozenset(self._ids))

    def _video_done(self, end: int) -> None:
        self.gap_start, self._pack_in_gap = end, False

    def _other(self, skip: int, *, pack: bool = False) -> None:
        """Account for a packet that carries no video: it joins the gap before the next."""
        if self._packet - self.gap_start > MAX_GAP:
            self.gap_start, self._pack_in_gap = self._packet, False
        self._pack_in_gap |= pack
        self._skip = skip
        self._head.clear()
        self._want = 4

    def _parse_head(self) -> None:
        head = self._head
        if head[:3] != b"\x00\x00\x01" or head[3] < _END:
            raise RemoteProtocolError(f"program stream: no start code at byte {self._packet}")
        code = head[3]
        if code == PACK:
            self._parse_pack()
        elif code == _END:
            self._other(0)
        elif len(head) == 4:
            self._want = 6
        else:
            length = head[4] << 8 | head[5]
            self._ids.add(code)
            if code in VIDEO_IDS and self.video_id in (None, code):
                self._parse_video(length)
            else:
                self._other(length)

    def _parse_pack(self) -> None:
        head = self._head
        if len(head) < 12:
            self._want = 12
        elif head[4] >> 6 == 0b01:  # MPEG-2 pack header (§2.5.3.3)
            want = 14 + (head[13] & 7) if len(head) >= 14 else 14
            if len(head) < want:
                self._want = want
                return
            self.last_pack, self.mpeg1 = bytes(head), False
            self._other(0, pack=True)
        elif head[4] >> 4 == 0b0010:  # MPEG-1 pack header (ISO/IEC 11172-1 §2.4.3.2)
            self.last_pack, self.mpeg1 = bytes(head), True
            self._other(0, pack=True)
        else:
            raise RemoteProtocolError(f"program stream: bad pack header at byte {self._packet}")

    def _parse_video(self, length: int) -> None:
        head = self._head
        if length == 0:
            raise RemoteProtocolError(f"program stream: video PES of length 0 at {self._packet}")
        if len(head) == 6:
            self._want = 7  # the next byte tells MPEG-2 from MPEG-1 syntax
            return
        if head[6] >> 6 == 0b10:  # MPEG-2 PES header (§2.4.3.6)
            if length < 3:
                raise RemoteProtocolError(f"program stream: short PES packet at {self._packet}")
            if len(head) < 9:
                self._want = 9
                return
            size = 9 + head[8]
            if size > 6 + length:
                raise RemoteProtocolError(f"program stream: PES header overruns at {self._packet}")
            if len(head) < size:
                self._want = size
                return
            pts = pes_pts(head)
        else:  # MPEG-1 packet header (ISO/IEC 11172-1 §2.4.3.3): stuffing, STD, PTS/DTS
            want = 6 + min(length, 28)
            if len(head) < want:
                self._want = want
                return
            size, pts_at = _mpeg1_header_size(head, self._packet)
            pts = read_timestamp(head, pts_at) if pts_at else None
        self.video_id = head[3]
        end = self._packet + 6 + length
        packet = self._packet
        es = self._scanner.es_bytes
        self._where = Where(self.gap_start, packet, 0, self._pack_in_gap, end, packet, pts, es)
        extra = len(head) - size  # payload bytes read along with the header
        self._payload = 6 + length - len(head)
        self._head = bytearray()
        self._want = 4
        if extra:
            self._scanner.feed(head, size, len(head), self._packet + size, self._where)
        if not self._payload:
            self._video_done(self._packet + 6 + length)


def _mpeg1_header_size(head: bytearray, packet: int) -> tuple[int, int]:
    """Return the length of an MPEG-1 packet header (start code included), and where its
    PTS field is (0: none)."""
    i, end, pts_at = 6, len(head), 0
    while i < end and head[i] == 0xFF and i < 6 + 16:
        i += 1
    if i < end and head[i] >> 6 == 0b01:  # STD_buffer_scale and size
        i += 2
    if i < end:
        flags = head[i] >> 4
        if flags in (0b0010, 0b0011):  # PTS, or PTS and DTS: same field layout as MPEG-2
            pts_at = i
            i += 5 if flags == 0b0010 else 10
        elif head[i] == 0x0F:
            i += 1
        else:
            i = end + 1
    if i > end:
        raise RemoteProtocolError(f"program stream: bad MPEG-1 packet header at byte {packet}")
    return i, pts_at


class TransportStreamParser(ResyncingParser):
    """Walk 188-byte TS packets, follow PAT and PMT to the video PID (ISO/IEC 13818-1 §2.4)."""

    TS = True

    def __init__(
        self,
        scanner: EsSink,
        start: int,
        on_lost: Callable[[int], None],
        *,
        max_resync: int,
    ) -> None:
        super().__init__(scanner, start, on_lost, max_resync=max_resync)
        self._scratch = bytearray()  # a packet split across reads
        self._scratch_at = start
        self._pmt_pids: set[int] = set()
        #: The PID of the first MPEG-1/2 video stream in the PMT.
        self.video_pid: int | None = None
        #: The last PAT and PMT packets, for joins.
        self.last_pat: bytes | None = None
        self.last_pmt: bytes | None = None
        self._tables = 0  # 1: PAT, 2: PMT seen since gap_start
        self._pes_head = bytearray()  # PES header bytes read: the first 9, then a PTS
        self._pes_want = 9  # header bytes to read before the rest is skipped
        self._pes_skip = 0  # PES header bytes left to skip; -1 while reading the head
        self._pes_at = -1  # offset of the packet the current PES packet began in
        self._pes_pts: int | None = None  # its PTS

    @property
    def between_packets(self) -> bool:
        """Return True when the input so far ends where a packet does."""
        return not self._scratch

    def _walk(self, buf: Buffer, start: int, end: int, at: int) -> int:
        i = start
        while i < end and self._search is None:
            if self._scratch or end - i < TS_PACKET:
                if not self._scratch:
                    self._scratch_at = at + i - start
                n = min(TS_PACKET - len(self._scratch), end - i)
                self._scratch += buf[i : i + n]
                i += n
                if len(self._scratch) == TS_PACKET:
                    packet, self._scratch = self._scratch, bytearray()
                    self._checked(packet, 0, self._scratch_at)
            else:
                self._checked(buf, i, at + i - start)
                i += TS_PACKET
        return i

    def _checked(self, buf: Buffer, o: int, at: int) -> None:
        try:
            self._packet(buf, o, at)
        except RemoteProtocolError:
            self._pes_head.clear()
            self._pes_skip, self._tables = 0, 0  # payload after resync is scanned as it is
            self._pes_pts = None  # ... and its PES packet's PTS is unknown
            self._lose(at, bytes(buf[o + 1 : o + TS_PACKET]), frozenset())

    def _packet(self, buf: Buffer, o: int, at: int) -> None:
        if buf[o] != 0x47:
            raise RemoteProtocolError(f"transport stream: lost sync at byte {at}")
        pid = (buf[o + 1] & 0x1F) << 8 | buf[o + 2]
        pusi, control, cc = buf[o + 1] & 0x40, buf[o + 3] >> 4 & 3, buf[o + 3] & 0x0F
        pay, end = o + 4, o + TS_PACKET
        if control & 2:  # adaptation field (§2.4.3.4)
            pay += 1 + buf[o + 4]
        if not control & 1 or pay > end or buf[o + 1] & 0x80:
            pay = end  # no payload, an overlong adaptation field, or transport_error
        if pid == self.video_pid:
            self._video(buf, pay if not pusi else -pay, end, at, cc)
            self.gap_start, self._tables = at + TS_PACKET, 0
            return
        if at - self.gap_start > MAX_GAP:
            self.gap_start, self._tables = at, 0
        if pid == 0 and pusi and pay < end:
            self.last_pat = bytes(buf[o:end])
            self._tables |= 1
            self._parse_pat(bytes(buf[pay:end]))
        elif pid in self._pmt_pids and pusi and pay < end:
            self.last_pmt = bytes(buf[o:end])
            self._tables |= 2
            self._parse_pmt(bytes(buf[pay:end]))

    def _video(self, buf: Buffer, pay: int, end: int, at: int, cc: int) -> None:
        """Scan a video packet's payload from pay (negated: a PES packet starts there)."""
        base = at - (end - TS_PACKET)
        head = self._pes_head
        if pay < 0:
            pay = -pay
            head.clear()
            self._pes_want, self._pes_skip, self._pes_at, self._pes_pts = 9, -1, at, None
        while self._pes_skip < 0 and pay < end:  # PES header (§2.4.3.6): 9 bytes + its length
            n = min(self._pes_want - len(head), end - pay)
            head += buf[pay : pay + n]
            pay += n
            if len(head) < self._pes_want:
                break
            if len(head) == 9:
                mpeg2 = head[6] >> 6 == 0b10
                if head[:3] != b"\x00\x00\x01" or not mpeg2:
                    raise RemoteProtocolError(f"transport stream: bad video PES header at {at}")
                self._pes_want = 9 + (min(head[8], 5) if head[7] >> 7 else 0)  # room for a PTS
                if self._pes_want > 9:
                    continue
            self._pes_pts = pes_pts(head)
            self._pes_skip = head[8] - (len(head) - 9)
        tables, es = self._tables == 3, self._scanner.es_bytes
        where = Where(self.gap_start, at, cc, tables, 0, self._pes_at, self._pes_pts, es)
        if self._pes_skip > 0 and pay < end:
            n = min(self._pes_skip, end - pay)
            self._pes_skip -= n
            pay += n
        if self._pes_skip == 0 and pay < end:
            self._scanner.feed(buf, pay, end, base + pay, where)

    def _parse_pat(self, payload: bytes) -> None:
        """Learn the PMT PIDs from a PAT section in one packet (§2.4.4.3)."""
        section = _section(payload, 0x00)
        for k in range(8, len(section) - 4 - 3, 4):
            program = section[k] << 8 | section[k + 1]
            if program:  # program 0 points at the network information table
                self._pmt_pids.add((section[k + 2] & 0x1F) << 8 | section[k + 3])

    def _parse_pmt(self, payload: bytes) -> None:
        """Find the first MPEG-1/2 video stream in a PMT section in one packet (§2.4.4.8)."""
        section = _section(payload, 0x02)
        if len(section) < 12 or self.video_pid is not None:
            return
        k = 12 + ((section[10] & 0x0F) << 8 | section[11])
        while k + 5 <= len(section) - 4:
            stream_type, pid = section[k], (section[k + 1] & 0x1F) << 8 | section[k + 2]
            if stream_type in VIDEO_STREAM_TYPES:
                self.video_pid = pid
                return
            k += 5 + ((section[k + 3] & 0x0F) << 8 | section[k + 4])


def _section(payload: bytes, table_id: int) -> bytes:
    """Return the section after the pointer_field, cut to its length, or b"" if it is not whole."""
    if not payload:
        return b""
    start = 1 + payload[0]
    if start + 3 > len(payload) or payload[start] != table_id:
        return b""
    length = (payload[start + 1] & 0x0F) << 8 | payload[start + 2]
    if start + 3 + length > len(payload):
        return b""
    return payload[start : start + 3 + length]
