"""Parser state, scratch buffer and part delivery shared by the multipart demuxer's paths.

MultipartDemuxer (multipart.py) adds the public API, the state handlers and the fast
path for Content-Length parts on top of this.
"""

from __future__ import annotations

import enum
from typing import NoReturn

import numpy

from gateway.demux import parts
from gateway.demux.delimiter import CLOSE, Delimiter
from gateway.demux.events import Event, PartDropped, PartReceived, StreamEnded
from gateway.demux.parts import DropReason
from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.media import Payload

Data = bytes | bytearray | memoryview

READ_SIZE = 65536  # scratch read when the caller gives no size hint
_MIN_SCRATCH = 2 * READ_SIZE
_MAX_KINDS = 64  # Content-Type values whose media type is remembered
EMPTY = memoryview(b"")


class State(enum.Enum):
    PREAMBLE = "preamble"  # before the first delimiter line
    HEADERS = "headers"  # part header block
    FILL = "fill"  # Content-Length body landing in the part buffer
    AFTER_FILL = "after fill"  # expecting the delimiter after a Content-Length body
    SCAN = "scan"  # boundary-delimited body accumulating in scratch
    SKIP = "skip"  # discarding up to the next delimiter (resync)
    CLOSED = "closed"  # after the close delimiter: epilogue is ignored


class PartParser:
    """Scratch buffer, parser state and part delivery of a multipart demuxer."""

    def __init__(
        self,
        content_type: str | None,
        *,
        max_line_size: int = 8192,
        max_headers: int = 32,
        max_header_block: int = 16384,
        max_part_size: int = 16 * 2**20,
        max_preamble: int = 65536,
        max_boundary_length: int = 70,
        check_jpeg: bool = True,
    ) -> None:
        """Create a demuxer for a body of the given Content-Type.

        :param content_type: the response Content-Type (its ``boundary`` is a hint; None
            means learn the boundary from the body).
        :param max_line_size: longest part header line, in bytes.
        :param max_headers: most header fields in one part.
        :param max_header_block: largest part header block (with blank lines), in bytes.
        :param max_part_size: largest part body, in bytes.
        :param max_preamble: most bytes before the first delimiter line.
        :param max_boundary_length: longest boundary (RFC 2046 §5.1.1 says 70).
        :param check_jpeg: drop ``image/jpeg`` parts that lack SOI or EOI.
        """
        self._max_line = max_line_size
        self._max_headers = max_headers
        self._max_block = max_header_block
        self._max_part = max_part_size
        self._max_preamble = max_preamble
        self._max_boundary = max_boundary_length
        self._check_jpeg = check_jpeg
        declared = parts.declared_boundary(content_type, max_length=max_boundary_length)
        self._delim = Delimiter(
            declared, max_length=max_boundary_length, max_header_block=max_header_block
        )
        #: Parts delivered as PartReceived.
        self.parts_received = 0
        #: Parts reported as PartDropped.
        self.parts_dropped = 0
        #: Bytes fed in, through either API.
        self.bytes_received = 0
        #: Body bytes the demuxer copied (receive_data copies all; get_buffer few or none).
        self.bytes_copied = 0
        self._buf = bytearray(_MIN_SCRATCH)
        self._start = 0  # first unconsumed byte of scratch
        self._end = 0  # end of received bytes in scratch
        self._state = State.PREAMBLE
        self._preamble_bytes = 0
        self._headers: list[tuple[str, str]] = []
        self._block_bytes = 0
        self._content_type: str | None = None
        self._length: int | None = None
        self._part = EMPTY
        self._kinds: dict[str, tuple[str, bool]] = {}  # Content-Type: (media type, JPEG)
        self._filled = 0
        self._inlined = 0  # body bytes _begin_body took as a view of the caller's chunk
        self._emitted = False  # the current part was delivered before its delimiter
        self._scan = 0  # SCAN/SKIP: resume offset from _start; never rescans
        # PREAMBLE/HEADERS: bytes from _start known to hold no line break, so a line
        # that arrives byte by byte is searched once, not once per byte.
        self._no_eol = 0
        self._rescued = 0  # bytes at the front of scratch re-read after a length mismatch
        self._drop_reason: DropReason | None = None
        self._drop_size = 0
        self._last_had_length = False
        self._into_part = False  # the last get_buffer returned the part buffer
        self._offered = 0
        self._eof = False
        self._error: str | None = None

    @property
    def boundary(self) -> bytes | None:
        """The boundary, declared or learned, without the leading ``--``."""
        return self._delim.boundary

    # -- scratch buffer ---------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._error is not None:
            raise RemoteProtocolError(self._error)
        if self._eof:
            raise LocalProtocolError("data after receive_eof()")

    def _reserve(self, want: int) -> None:
        """Make room for ``want`` bytes after _end; moves are paid for by consumed bytes."""
        free = len(self._buf) - self._end
        if free >= want:
            return
        live = self._end - self._start
        need = live + want
        size = len(self._buf)
        view = memoryview(self._buf)
        shrink = size > 4 * _MIN_SCRATCH and need <= _MIN_SCRATCH  # after one huge part
        if self._start >= live and need <= size and not shrink:
            # In place: the bytes moved are fewer than those consumed since the last move.
            view[:live] = view[self._start : self._end]
        else:
            new = bytearray(max(_MIN_SCRATCH, 2 * need) if shrink else max(need, 2 * size))
            new[:live] = view[self._start : self._end]
            self._buf = new
        self._start, self._end = 0, live

    def _consume(self, n: int) -> None:
        self._start += n
        self._no_eol = 0
        self._rescued = max(0, self._rescued - n)

    def _prepend(self, data: memoryview) -> None:
        """Put bytes back in front of scratch, to be parsed again (length-mismatch resync)."""
        live = self._end - self._start
        new = bytearray(max(_MIN_SCRATCH, len(data) + live))
        new[: len(data)] = data
        new[len(data) : len(data) + live] = memoryview(self._buf)[self._start : self._end]
        self._buf, self._start, self._end = new, 0, len(data) + live
        self._rescued += len(data)

    def _fill_from(self, view: memoryview, pos: int, end: int, events: list[Event]) -> int:
        """Copy body bytes from ``view[pos:end]`` into the part buffer; return how many."""
        n = min(end - pos, len(self._part) - self._filled)
        self._part[self._filled : self._filled + n] = view[pos : pos + n]
        self.bytes_copied += n
        self._filled += n
        if self._filled == len(self._part):
            self._fill_done(events)
        return n

    def _kind(self, value: str | None, payload: Data) -> tuple[str, bool]:
        """Return a part's media type and whether it is JPEG (cached per Content-Type)."""
        known = self._kinds.get(value) if value else None
        if known is None:
            kind = parts.media_type(value, bytes(payload[:2]))
            known = (kind, parts.is_jpeg(kind))
            if value:
                if len(self._kinds) >= _MAX_KINDS:
                    self._kinds.clear()
                self._kinds[value] = known
        return known

    def _pending_text(self) -> bool:
        pending = self._end - self._start
        return parts.span(parts.EOLS, self._buf, self._start, self._end) - self._start < pending

    # -- parts ------------------------------------------------------------------------

    def _take_block(self, block: bytes) -> bool:
        """Add a complete header block; False leaves it to the line-by-line path."""
        lines = block.splitlines()[:-1]
        if len(self._headers) + len(lines) > self._max_headers:
            return False
        if any(len(line) > self._max_line for line in lines):
            return False
        self._headers += [parts.parse_header_line(line) for line in lines]
        self._block_bytes += len(block)
        return True

    def _add_header(self, line: bytes) -> None:
        if len(self._headers) >= self._max_headers:
            raise RemoteProtocolError(f"part has more than max_headers ({self._max_headers})")
        self._headers.append(parts.parse_header_line(line))

    def _count_block(self, n: int) -> None:
        self._block_bytes += n
        if self._block_bytes > self._max_block:
            self._block_too_big()

    def _begin_body(self, events: list[Event], inline: memoryview | None = None) -> bool:
        headers = self._headers
        self._content_type = next((v for k, v in headers if k == "content-type"), None)
        lengths = [v for k, v in headers if k == "content-length"]
        self._length = parts.parse_content_length(lengths, max_part_size=self._max_part)
        return self._open_body(events, inline)

    def _open_body(self, events: list[Event], inline: memoryview | None = None) -> bool:
        """Start the body of a part whose _content_type and _length are known."""
        self._last_had_length = self._length is not None
        self._emitted = False
        self._block_bytes = 0
        self._scan = 0
        if self._length is None or self._rescued:
            # Inside bytes re-read after a mismatch the delimiter decides (never refill).
            self._state = State.SCAN
            return True
        if inline is not None and len(inline) >= self._length:
            self._part = inline[: self._length]  # read-only: a view of the caller's bytes
            self._filled = self._inlined = self._length
            self._fill_done(events)
            return True
        # Validated against max_part_size above; numpy.empty does not zero-fill as bytearray.
        self._part = numpy.empty(self._length, numpy.uint8).data
        self._filled = 0
        self._state = State.FILL
        if self._length == 0:
            self._fill_done(events)
        return True

    def _fill_done(self, events: list[Event]) -> None:
        self._state = State.AFTER_FILL
        payload = self._part.toreadonly()
        kind, jpeg = self._kind(self._content_type, payload)
        whole = jpeg and (parts.whole_jpeg(payload) or parts.jpeg_problem(payload) is None)
        if whole and self._check_jpeg:
            # A whole JPEG is delivered now, not when the next part's delimiter arrives.
            self._emit(events, payload, kind)
            self._emitted = True

    def _finish_scanned(self, events: list[Event], start: int, at: int) -> None:
        buf = self._buf
        if self._length is not None:
            stop = start + self._length
            if stop <= at and parts.span(parts.EOLS, buf, stop, at) == at:
                self._deliver(events, bytes(buf[start:stop]))
            else:
                self._drop(events, DropReason.LENGTH_MISMATCH, at - start)
            return
        _, jpeg = self._kind(self._content_type, buf[start : min(at, start + 2)])
        end = parts.eol_strip(at, buf, start, all_breaks=jpeg)
        if end == start and not self._headers:
            self._headers = []
            return  # an empty, header-less part (e.g. two delimiters in a row)
        self.bytes_copied += end - start
        self._deliver(events, bytes(buf[start:end]))

    def _deliver(self, events: list[Event], payload: Payload) -> None:
        kind, jpeg = self._kind(self._content_type, payload)
        headers, self._headers = tuple(self._headers), []
        if jpeg and self._check_jpeg:
            problem = None if parts.whole_jpeg(payload) else parts.jpeg_problem(payload)
            if problem is not None:
                self._drop(events, problem, len(payload))
                return
        self._emit(events, payload, kind, headers)

    def _emit(
        self,
        events: list[Event],
        payload: Payload,
        kind: str,
        headers: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        if headers is None:
            headers, self._headers = tuple(self._headers), []
        self.parts_received += 1
        events.append(PartReceived(payload, kind, headers, self._length))

    def _drop(self, events: list[Event], reason: DropReason, size: int) -> None:
        self._headers = []
        self.parts_dropped += 1
        events.append(PartDropped(reason, size))

    def _mismatch(self, unfound: DropReason = DropReason.LENGTH_MISMATCH) -> bool:
        """Resync after a wrong Content-Length: the next real delimiter ends this part."""
        self._state = State.SKIP
        self._scan = 0
        if self._emitted:
            self._drop_reason, self._drop_size = None, 0
            return True
        part = self._part[: self._filled]
        needle = self._delim.needle or b"\n--"
        body = bytes(part)
        at = body.find(needle, 0, self._filled)
        reason = DropReason.LENGTH_MISMATCH
        if at < 0:
            at, reason = max(0, self._filled - len(needle) + 1), unfound
        # Bytes read as body may hold the delimiter and the parts after it: re-read them.
        self._prepend(part[at:])
        self._part = EMPTY
        self._drop_reason, self._drop_size = reason, at
        return True

    def _after_delimiter(self, events: list[Event], kind: int) -> bool:
        if kind == CLOSE:
            return self._close(events)
        self._state = State.HEADERS
        return True

    def _close(self, events: list[Event]) -> bool:
        events.append(StreamEnded(by_delimiter=True))
        self._state = State.CLOSED
        return True

    # -- limits -----------------------------------------------------------------------

    def _line_too_long(self) -> NoReturn:
        raise RemoteProtocolError(f"header line exceeds max_line_size ({self._max_line} bytes)")

    def _block_too_big(self) -> NoReturn:
        raise RemoteProtocolError(
            f"header block exceeds max_header_block ({self._max_block} bytes)"
        )

    def _part_too_big(self) -> NoReturn:
        raise RemoteProtocolError(f"part exceeds max_part_size ({self._max_part} bytes)")
