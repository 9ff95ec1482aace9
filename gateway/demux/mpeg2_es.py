"""Sans-IO: an MPEG-2 stream's units in, whole coded pictures as elementary stream out.

The indexer (``gateway.demux.mpeg2``) cuts units on container packet boundaries and
keeps the container: that is what Axis clients are sent. A decoder (FFmpeg's
``mpeg2video``, for the H.264 encode) wants bare elementary stream (ISO/IEC 13818-2),
one coded picture per packet. ``PictureReader`` gets there from one stream's units, in
order, in the worker thread that decodes them:

- **Unwrapping** reuses the indexer's packet parsers (``mpeg2_packets``) with a sink
  that keeps the bytes: in a program stream the payload of the video stream's PES
  packets only (pack and system headers, other streams and padding dropped), in a
  transport stream the payload of the video PID's packets (PAT and PMT followed,
  adaptation fields and PES headers skipped). A unit holds whole packets, so a packet
  header that is not one (lost sync) is an error, and so is a unit that ends inside a
  packet: the indexer drops what lost sync.
- **Pictures** begin at the first sequence header, GOP header or picture start code
  after the previous picture's picture header (ISO/IEC 13818-2 §6.2.2, the indexer's
  rule), found by ``StartCodeScanner`` in one pass over each unit's elementary stream.
  When several pictures share a PES packet, the indexer puts that packet with the later
  picture: a unit may begin with the tail of the previous picture and hold several.
  Each picture is handed out once, whole: the last one of a unit waits for the next
  unit, unless the unit says it ends there (``UnitIndexed.continued`` false).

Bytes before the first header (the tail of a picture never read) are dropped. Memory is
bounded by ``max_picture_size`` plus one unit; every byte is scanned once and copied at
most three times (a read-only view into bytes, out of the container, into its picture).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from gateway.demux.mpeg2_events import PictureType
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
from gateway.demux.mpeg2_sync import ContainerFormat
from gateway.errors import LocalProtocolError, RemoteProtocolError

#: Start codes that begin a picture's bytes once the previous picture has its header.
_PICTURE_STARTS = (SEQUENCE_HEADER, GROUP, PICTURE)
#: Bytes kept while no header is found: a start code's prefix may end a unit.
_PREFIX_BYTES = 3


@dataclass(frozen=True, slots=True)
class Picture:
    """One coded picture as elementary stream, with the headers in front of it."""

    #: Sequence header and extensions, GOP header (when there are), picture header, slices.
    data: bytes
    #: picture_coding_type (§6.3.9); None when reserved.
    picture_type: PictureType | None
    #: temporal_reference: the picture's display position in its GOP (§6.3.9).
    temporal_reference: int
    #: A GOP header comes before it: the first picture of a GOP in decode order.
    gop: bool
    #: The unit it begins in (``feed`` calls before that one, from the reader's start).
    unit: int
    #: Its place among the pictures that begin in that unit, from 0.
    index: int


class _Collector:
    """An ``EsSink`` that appends the elementary-stream bytes it is fed to ``data``."""

    def __init__(self, data: bytearray) -> None:
        self.data = data
        self.es_bytes = 0

    def feed(self, buf: Buffer, start: int, end: int, at: int, where: Where | None) -> None:
        """Append buf[start:end]."""
        self.data += memoryview(buf)[start:end]
        self.es_bytes += end - start

    def reset(self) -> None:
        """Nothing to forget: lost sync ends the unit with an error."""


class PictureReader:
    """One MPEG-2 stream's units (ES, PS or TS) in, whole pictures as elementary stream out.

    ``max_picture_size`` bounds a picture's bytes (held or not). On bad input ``feed``
    raises ``RemoteProtocolError`` and the reader starts over, as new: it drops what it
    held, and in a transport stream waits for the next PAT and PMT.
    """

    def __init__(self, container: ContainerFormat, *, max_picture_size: int = 4 * 2**20) -> None:
        if max_picture_size < 1:
            raise LocalProtocolError("max_picture_size must be >= 1")
        #: The container of the units.
        self.container = container
        self._max = max_picture_size
        #: Units read; pictures handed out; bytes dropped before the first header.
        self.units = self.pictures = self.bytes_dropped = 0
        self._es = bytearray()  # the elementary stream from es offset _base on
        self._base = 0
        self._at = 0  # input offset of the next unit, for the parser
        self._unit = self._index = 0  # the unit being read, the pictures begun in it
        self._begin: int | None = None  # es offset where the picture being read begins
        self._gop = False  # a GOP header since it began
        self._header: tuple[int, int, bool, int, int] | None = None  # its picture header
        self._done: list[Picture] = []
        self._scanner = StartCodeScanner(self._on_code)
        self._parser: ProgramStreamParser | TransportStreamParser | None = None
        self._start_over()

    @property
    def frame_rate(self) -> Fraction | None:
        """Return the frame rate of the last sequence header (§6.3.3), None before one."""
        return self._scanner.frame_rate

    def feed(self, data: Buffer | memoryview, *, continued: bool = False) -> list[Picture]:
        """Read the next unit; return the pictures it completes, in decode order.

        ``continued``: the unit's last picture goes on in the next unit (held till then).
        """
        buf = data if isinstance(data, bytes | bytearray) else bytes(data)
        self._unit, self._index = self.units, 0
        self.units += 1
        es = self._es
        begin = len(es)
        try:
            if self._parser is None:
                es += buf
            else:
                self._parser.feed(buf, 0, len(buf), self._at)
                if not self._parser.between_packets:
                    raise RemoteProtocolError(f"{self._kind} stream unit ends inside a packet")
            self._at += len(buf)
            self._scanner.feed(es, begin, len(es), self._base + begin, None)
            if not continued and self._header is not None:
                self._emit(self._base + len(es))
            self._trim()
        except RemoteProtocolError:
            self._start_over()
            raise
        done, self._done = self._done, []
        self.pictures += len(done)
        return done

    def flush(self) -> list[Picture]:
        """Return the picture still held, as it is (the end of the stream); start over."""
        try:
            if self._header is not None:
                self._emit(self._base + len(self._es))
            done = self._done
        finally:
            self._start_over()
        self.pictures += len(done)
        return done

    # -- internals --------------------------------------------------------------------

    def _start_over(self) -> None:
        self._es, self._base, self._at = bytearray(), 0, 0
        self._begin, self._gop, self._header, self._done = None, False, None, []
        self._scanner = StartCodeScanner(self._on_code)
        sink, lost = _Collector(self._es), self._lost_sync
        self._parser = None
        if self.container is ContainerFormat.PS:
            self._parser = ProgramStreamParser(sink, 0, lost, max_resync=0)
        elif self.container is ContainerFormat.TS:
            self._parser = TransportStreamParser(sink, 0, lost, max_resync=0)

    @property
    def _kind(self) -> str:
        return "program" if self.container is ContainerFormat.PS else "transport"

    def _lost_sync(self, at: int) -> None:
        raise RemoteProtocolError(f"{self._kind} stream unit: no packet at byte {at}")

    def _on_code(self, sc: StartCode) -> None:
        if sc.code not in _PICTURE_STARTS:
            return
        if self._header is not None:  # the picture being read ends here
            self._emit(sc.es_at)
        if self._begin is None:  # the first header: what came before is no picture of ours
            self.bytes_dropped += sc.es_at - self._base
            self._begin = sc.es_at
        if sc.code == GROUP:
            self._gop = True
        elif sc.code == PICTURE:
            tr, kind = sc.header[0] << 2 | sc.header[1] >> 6, sc.header[1] >> 3 & 7
            self._header = (tr, kind, self._gop, self._unit, self._index)
            self._index += 1

    def _emit(self, end: int) -> None:
        """Hand out the picture being read, which ends at es offset end."""
        begin, header = self._begin or 0, self._header
        assert header is not None
        if end - begin > self._max:
            raise RemoteProtocolError(f"MPEG-2 picture longer than {self._max} bytes")
        tr, kind, gop, unit, index = header
        data = bytes(self._es[max(begin - self._base, 0) : end - self._base])
        picture_type = PictureType(kind) if kind in (1, 2, 3) else None
        self._done.append(Picture(data, picture_type, tr, gop, unit, index))
        self._begin, self._header, self._gop = end, None, False

    def _trim(self) -> None:
        """Let go of the bytes before the picture being read; enforce the bound."""
        begin = self._begin
        if begin is None:  # no header yet: keep what may be a start code's prefix
            begin = max(self._base, self._base + len(self._es) - _PREFIX_BYTES)
            self.bytes_dropped += begin - self._base
        cut = max(begin - self._base, 0)
        del self._es[:cut]  # O(1) at the front of a bytearray
        self._base += cut
        if len(self._es) > self._max:
            raise RemoteProtocolError(f"MPEG-2 picture longer than {self._max} bytes")
