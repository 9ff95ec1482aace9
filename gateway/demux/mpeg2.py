"""Sans-IO MPEG-2 indexer: a ``video/mpeg`` body in, one unit per coded picture out.

The container is recognised from the first bytes: elementary stream (sequence header,
ISO/IEC 13818-2 §6.2.2.1), program stream (pack header, ISO/IEC 13818-1 §2.5.3) or
transport stream (sync byte 0x47 every 188 bytes, §2.4.3.2). Units are contiguous runs
of the input exactly as received; their concatenation is the input after any junk.

A unit starts with the headers in front of its picture (sequence header and
extensions, GOP header). In a program or transport stream it starts at the container
packet (PES packet, TS packet) in which the first start code of those headers begins,
moved back over any non-video packets since the previous video packet (pack and system
headers, PAT, PMT, padding, audio). When a packet holds the end of one picture and the
start of the next, the tail of the earlier picture goes with the later unit: decoders
skip bytes before a start code, and the concatenation is unchanged. Two pictures that
start in the same packet share one unit (``units_merged``); a unit whose last picture
goes on in the next unit says so (``continued``).

When a program or transport stream loses sync (a packet header that is not one), the
unit being read is dropped (``UnitDropped``, reason LOST_SYNC) along with everything up
to the first unit that starts after packets line up again; later units and cut points
are unaffected. The search for sync is bounded by max_resync.

A unit whose picture is the I-picture beginning a GOP is a cut point (DESIGN §6):
``CutPoint.join`` prepends what the camera did not repeat and marks open GOPs
``broken_link`` (§6.3.8), so a client starting there decodes every picture it is sent
once it skips the ``leading`` B-pictures. A program stream unit whose PES packet holds
whole pictures of the previous GOP before the GOP's headers is a cut point too: its
join re-packs that PES packet from the headers on (``mpeg2_join``), and the unit's
picture_type and temporal_reference describe the I-picture. ``UnitIndexed.pictures``
counts every picture in a unit, for frame rates.

A PES header's PTS belongs to the first picture whose start code begins in that PES
packet (ISO/IEC 13818-1 §2.4.3.7): ``UnitIndexed.pts`` is set when a unit describes it.

Zero copy: socket reads land in large blocks (``get_buffer``, ``mpeg2_blocks``) that are
never rewritten; a unit inside one block is a read-only view of it, and a unit that spans
blocks or reads is joined once (``bytes_copied``). The container is recognised by
``mpeg2_sync``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.demux.mpeg2_blocks import BlockInput
from gateway.demux.mpeg2_events import (
    LOST_SYNC,
    TOO_LONG,
    Event,
    PictureType,
    UnitDropped,
    UnitIndexed,
)
from gateway.demux.mpeg2_join import GopStart, JoinParts, Repack, build_join
from gateway.demux.mpeg2_packets import ProgramStreamParser, TransportStreamParser
from gateway.demux.mpeg2_scan import (
    GROUP,
    PICTURE,
    SEQUENCE_HEADER,
    Buffer,
    StartCode,
    StartCodeScanner,
    Where,
)
from gateway.demux.mpeg2_sync import ContainerDetector, ContainerFormat, FormatDetected
from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.media import CutPoint

__all__ = [
    "LOST_SYNC",
    "TOO_LONG",
    "ContainerFormat",
    "Event",
    "FormatDetected",
    "Mpeg2Indexer",
    "PictureType",
    "UnitDropped",
    "UnitIndexed",
]

_UNIT_STARTS = (SEQUENCE_HEADER, GROUP, PICTURE)


class Mpeg2Indexer:
    """Split an MPEG-2 ES/PS/TS byte stream into picture units with cut points.

    max_unit_size bounds one unit (an over-long unit is dropped, and so is everything up
    to the next sequence header); max_junk bounds the bytes skipped before the stream
    starts; max_resync bounds the bytes searched for PS/TS sync after it is lost;
    block_size is the size of the blocks reads land in. Memory held is at most
    max_unit_size plus two blocks, 64 KiB of non-video packets and 400 bytes of search.
    """

    def __init__(
        self,
        *,
        max_unit_size: int = 4 * 2**20,
        max_junk: int = 65536,
        max_resync: int = 2**20,
        block_size: int = 512 * 1024,
    ) -> None:
        if min(max_unit_size - 1, max_junk, max_resync, block_size - 4096) < 0:
            raise LocalProtocolError(
                "max_unit_size >= 1, max_junk >= 0, max_resync >= 0, block_size >= 4096"
            )
        self._max_unit, self._max_resync = max_unit_size, max_resync
        #: The container, once recognised.
        self.format: ContainerFormat | None = None
        self._input = BlockInput(block_size=block_size)
        self._detect: ContainerDetector | None = ContainerDetector(max_junk=max_junk)
        self._scanner = StartCodeScanner(self._on_code)
        self._ps: ProgramStreamParser | None = None
        self._ts: TransportStreamParser | None = None
        self._events: list[Event] = []
        self._error: str | None = None
        self._eof = False
        self._unit = _Unit(0)
        self._dropping: int | None = None  # start of the bytes being dropped
        self._drop_reason = TOO_LONG
        self._lead_tr: int | None = None  # the open GOP's I-picture temporal_reference
        self._gop: GopStart | None = None  # GOP header awaiting its picture
        self._seq: tuple[int, Where | None] | None = None  # sequence header since a picture
        self._pts_pes: int | None = None  # the PES packet the last picture began in
        #: Units delivered, cut points among them, units dropped, pictures merged.
        self.units = self.cuts = self.units_dropped = self.units_merged = 0
        #: Bytes of the join copies made for cut points.
        self.join_bytes = 0

    @property
    def bytes_received(self) -> int:
        """Bytes received."""
        return self._input.end

    @property
    def bytes_copied(self) -> int:
        """Payload bytes copied (joins of units that span reads, copied-in reads)."""
        return self._input.bytes_copied

    # -- public API -------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        """Return a writable buffer (len >= 1) for the next read; call buffer_updated after."""
        return self._input.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> list[Event]:
        """Account for nbytes written into the buffer returned by get_buffer."""
        block, start, end = self._input.buffer_updated(nbytes)
        return self._receive(block, start, end) if nbytes else []

    def receive_data(self, data: Buffer | memoryview) -> list[Event]:
        """Feed bytes read elsewhere: bytes are kept as they are, anything else copied once."""
        self._check()
        if isinstance(data, bytes):
            return self._receive(data, 0, len(data)) if data else []
        view, events = memoryview(data).cast("B"), []
        done = 0
        while done < len(view):
            buf = self.get_buffer(len(view) - done)
            n = len(buf)
            buf[:] = view[done : done + n]
            self._input.bytes_copied += n
            events += self.buffer_updated(n)
            done += n
        return events

    def receive_eof(self) -> list[Event]:
        """End of the body: deliver the last unit."""
        self._check()
        if self._eof:
            return []
        self._eof = True
        return self._guard(self._finish)

    # -- input ------------------------------------------------------------------------

    def _check(self) -> None:
        if self._error is not None:
            raise RemoteProtocolError(self._error)

    def _guard(self, step: Callable[..., None], *args: object) -> list[Event]:
        self._events = []
        try:
            step(*args)
        except RemoteProtocolError as exc:
            self._error = str(exc)
            raise
        return self._events

    def _receive(self, buf: Buffer, start: int, end: int) -> list[Event]:
        self._check()
        if self._eof:
            raise LocalProtocolError("data after receive_eof")
        return self._guard(self._take_in, buf, start, end)

    def _take_in(self, buf: Buffer, start: int, end: int) -> None:
        at = self._input.append(buf, start, end)
        if self._detect is not None:
            found = self._detect.feed(buf, start, end)
            if found is not None:
                self._start(*found)
        else:
            self._parse(buf, start, end, at)
            self._bound()

    def _parse(self, buf: Buffer, start: int, end: int, at: int) -> None:
        if self._ps is not None:
            self._ps.feed(buf, start, end, at)
        elif self._ts is not None:
            self._ts.feed(buf, start, end, at)
        else:
            self._scanner.feed(buf, start, end, at, None)

    # -- detection --------------------------------------------------------------------

    def _start(self, offset: int, fmt: ContainerFormat) -> None:
        self._detect = None
        self.format = fmt
        args = (self._scanner, offset, self._lost_sync)
        if fmt is ContainerFormat.PS:
            self._ps = ProgramStreamParser(*args, max_resync=self._max_resync)
        elif fmt is ContainerFormat.TS:
            self._ts = TransportStreamParser(*args, max_resync=self._max_resync)
        self._events.append(FormatDetected(fmt, offset))
        self._input.release(offset)
        self._unit = _Unit(offset)
        for piece in self._input.pieces():
            self._parse(*piece)
        self._bound()

    # -- units ------------------------------------------------------------------------

    def _on_code(self, sc: StartCode) -> None:
        code = sc.code
        if code not in _UNIT_STARTS:
            return
        pts, where = None, sc.where
        if code == PICTURE and where is not None and where.pes != self._pts_pes:
            # The first picture start code in this PES packet takes its PTS (§2.4.3.7).
            self._pts_pes, pts = where.pes, where.pts
        unit = self._unit
        bound = sc.at if sc.where is None else sc.where.bpos
        if self._dropping is not None:
            # After lost sync any unit may follow; an over-long unit's GOP is dropped whole.
            if bound <= self._dropping or (
                code != SEQUENCE_HEADER and self._drop_reason == TOO_LONG
            ):
                return
            self._drop_end(bound)
            unit = self._unit
        elif unit.pictures and bound > unit.start:
            if sc.at - unit.start > self._max_unit:
                self._drop_begin()
                self._on_code(sc)  # drops a picture: its pts is not needed again
                return
            self._emit(bound, where is not None and sc.es_at > where.es)
            unit = self._unit = _Unit(bound)
        if unit.where is None:
            unit.where = sc.where
        if code == SEQUENCE_HEADER:
            unit.sequence |= not unit.pictures
            self._seq = (sc.at, sc.where)
        elif code == GROUP:
            self._gop = GopStart.read(sc, self._seq)
        else:
            self._picture(unit, sc, pts)

    def _picture(self, unit: _Unit, sc: StartCode, pts: int | None) -> None:
        tr, kind = sc.header[0] << 2 | sc.header[1] >> 6, sc.header[1] >> 3 & 7
        gop, self._gop, self._seq = self._gop, None, None
        if gop is not None:  # the first picture of a GOP (§6.2.2.6): an I-picture
            self._lead_tr = tr if kind == PictureType.I and not gop.closed else None
        lead = self._lead_tr
        leading = gop is None and kind == PictureType.B and lead is not None and tr < lead
        unit.pictures += 1
        first = unit.pictures == 1
        unit.leading = leading and (first or unit.leading)  # all its pictures are leading
        if first:
            unit.kind, unit.tr = (PictureType(kind) if kind in (1, 2, 3) else None), tr
            unit.timing = (pts, gop is not None)
        else:
            self.units_merged += 1
        if gop is not None and kind == PictureType.I and unit.gop is None:
            parts = self._join_parts(unit, gop, first)
            if parts is not None:  # the unit is a cut point: describe the GOP's I-picture
                unit.gop, unit.parts, unit.kind, unit.tr = gop, parts, PictureType.I, tr
                unit.timing = (pts, True)

    def _join_parts(self, unit: _Unit, gop: GopStart, first: bool) -> JoinParts | None:
        """Return what the join of a unit with a GOP's I-picture needs, or None if no cut."""
        seq, ps, ts = self._scanner.sequence_header, self._ps, self._ts
        if seq is None:
            return None
        patch = None if gop.closed or gop.broken else gop.flag_at - unit.start
        repack = None
        if first and gop.at >= unit.start:  # the GOP header opens the unit
            lead = b"" if unit.sequence else seq
        elif first:  # the GOP header ended the previous unit: the join carries a copy
            lead, patch = seq + gop.patched(), None
        else:  # the GOP starts in the unit's first PES packet, after whole pictures
            where = gop.where
            if ps is None or where is None or where.packet < unit.start or not where.end:
                return None  # TS: re-packing TS packets is not done
            lead = b"" if gop.repeated else seq
            repack = Repack.of(where, gop.start, unit.start)
        return JoinParts(
            self.format or ContainerFormat.ES,
            lead,
            unit.where,
            patch,
            repack,
            ps.last_pack if ps else None,
            ps.mpeg1 if ps else False,
            ps.video_id or 0xE0 if ps else 0xE0,
            ts.last_pat if ts else None,
            ts.last_pmt if ts else None,
            ts.video_pid if ts else None,
        )

    def _emit(self, end: int, continued: bool = False) -> None:
        unit = self._unit
        payload = self._input.take(unit.start, end)
        cut = None
        if unit.gop is not None and unit.parts is not None:
            join = build_join(unit.parts, payload)
            if join is not payload:
                self.join_bytes += len(join)
            cut = CutPoint(unit.gop.closed, unit.gop.broken, join)
            self.cuts += 1
        self.units += 1
        fmt = self.format or ContainerFormat.ES
        timing = (*unit.timing, self._scanner.frame_rate, fmt, continued)
        event = UnitIndexed(payload, unit.kind, unit.tr, cut, unit.leading, unit.pictures, *timing)
        self._events.append(event)

    def _drop_begin(self) -> None:
        self._dropping, self._drop_reason = self._unit.start, TOO_LONG
        self._lead_tr = self._gop = self._seq = None

    def _lost_sync(self, at: int) -> None:
        """The container parser lost sync at offset at: drop the unit being read."""
        if self._dropping is None:
            # The GOP header may be gone; the open GOP's leading pictures stay leading.
            self._dropping, self._drop_reason = self._unit.start, LOST_SYNC
            self._gop = self._seq = None

    def _drop_end(self, end: int) -> None:
        assert self._dropping is not None
        self._events.append(UnitDropped(self._drop_reason, end - self._dropping))
        self.units_dropped += 1
        self._input.release(end)
        self._dropping = None
        self._unit = _Unit(end)

    def _bound(self) -> None:
        """Enforce max_unit_size on the unit being read; while dropping, let bytes go."""
        floor = self._scanner.floor()
        floor = self._input.end if floor is None else floor
        if self._dropping is None and floor - self._unit.start > self._max_unit:
            self._drop_begin()
        if self._dropping is not None:
            keep = floor
            parser = self._ps or self._ts
            if parser is not None:
                keep = parser.gap_start
                bpos = self._scanner.floor_bpos()
                keep = keep if bpos is None else min(keep, bpos)
            self._input.release(max(keep, self._dropping))

    def _finish(self) -> None:
        if self._detect is not None:
            found = self._detect.finish()
            if found is None:
                if self.bytes_received:
                    raise RemoteProtocolError("the body is not an MPEG-2 ES, PS or TS stream")
                return
            self._start(*found)
        self._bound()
        end = self._input.end
        if self._dropping is not None:
            self._drop_end(end)
        elif end > self._unit.start:
            self._emit(end)


@dataclass(slots=True)
class _Unit:
    """The unit being read."""

    start: int
    where: Where | None = None
    pictures: int = 0
    sequence: bool = False  # a sequence header precedes the first picture
    kind: PictureType | None = None
    tr: int | None = None
    timing: tuple[int | None, bool] = (None, False)  # described picture: PTS, opens a GOP
    leading: bool = False
    gop: GopStart | None = None
    parts: JoinParts | None = None
