"""Sans-IO demuxer for ``multipart/x-mixed-replace`` camera streams (VAPIX §5.2.7, §5.5.2).

Framing follows RFC 2046 §5.1.1, read tolerantly: the delimiter line is authoritative
(a wrong Content-Length costs only its own part), the boundary is learned from the
first delimiter line when the declared one is absent or differs, and a header block
ends at a blank line *or* at the first line that cannot be a header (VAPIX audio parts
may omit the blank line).

Zero copy: while a part of known Content-Length is being read, ``get_buffer`` returns
the unfilled tail of a buffer of exactly that length (``numpy.empty``, not zero-filled
as a bytearray would be), so ``recv_into`` lands the bytes in the frame's final buffer;
the payload is a read-only view of it. Everything else goes through a scratch buffer
that is consumed by offsets, and delimiter scans resume where they stopped, so every
input byte is examined a bounded number of times.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy

from gateway.demux import parts
from gateway.demux.delimiter import CLOSE, MORE, NO, OPEN, Delimiter
from gateway.demux.parts import DropReason
from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.media import Payload

Data = bytes | bytearray | memoryview

_READ_SIZE = 65536  # scratch read when the caller gives no size hint
_MAX_READ = 2**20  # a size hint never makes scratch grow by more than this per read
_HEAD_READ = 1024  # scratch read between Content-Length parts: few body bytes ride along
_MIN_SCRATCH = 2 * _READ_SIZE
_MAX_GAP = 1024  # line breaks tolerated between a Content-Length body and its delimiter
_MAX_KINDS = 64  # Content-Type values whose media type is remembered
_EMPTY = memoryview(b"")


@dataclass(frozen=True, slots=True)
class PartReceived:
    """A complete part: one JPEG frame, one audio block, or any other part."""

    #: The body: a read-only view of the buffer the bytes landed in, or bytes.
    payload: Payload
    #: Media type as sent, without parameters (sniffed as image/jpeg when undeclared).
    content_type: str
    #: All part headers as (lower-case name, value), in the order received.
    headers: tuple[tuple[str, str], ...]
    #: The declared Content-Length, or None when the part was delimited by its boundary.
    content_length: int | None


@dataclass(frozen=True, slots=True)
class PartDropped:
    """A part that was received but not delivered (torn JPEG, wrong length, truncated)."""

    #: Why it was dropped.
    reason: DropReason
    #: Body bytes the part occupied in the stream.
    size: int


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The close delimiter (``--boundary--``) or the end of the connection was reached."""


Event = PartReceived | PartDropped | StreamEnded


class _State(enum.Enum):
    PREAMBLE = "preamble"  # before the first delimiter line
    HEADERS = "headers"  # part header block
    FILL = "fill"  # Content-Length body landing in the part buffer
    AFTER_FILL = "after fill"  # expecting the delimiter after a Content-Length body
    SCAN = "scan"  # boundary-delimited body accumulating in scratch
    SKIP = "skip"  # discarding up to the next delimiter (resync)
    CLOSED = "closed"  # after the close delimiter: epilogue is ignored


class MultipartDemuxer:
    """Split a multipart byte stream into parts; bytes in, events out."""

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
        self._state = _State.PREAMBLE
        self._handlers: dict[_State, Callable[[list[Event]], bool]] = {
            _State.PREAMBLE: self._handle_preamble,
            _State.HEADERS: self._handle_headers,
            _State.FILL: self._handle_fill,
            _State.AFTER_FILL: self._handle_after_fill,
            _State.SCAN: self._handle_scan,
            _State.SKIP: self._handle_skip,
            _State.CLOSED: self._handle_closed,
        }
        self._preamble_bytes = 0
        self._headers: list[tuple[str, str]] = []
        self._block_bytes = 0
        self._content_type: str | None = None
        self._length: int | None = None
        self._part = _EMPTY
        self._kinds: dict[str, tuple[str, bool]] = {}  # Content-Type: (media type, JPEG)
        self._filled = 0
        self._inlined = 0  # body bytes _begin_body took as a view of the caller's chunk
        self._emitted = False  # the current part was delivered before its delimiter
        self._scan = 0  # SCAN/SKIP: resume offset from _start; never rescans
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

    # -- public API -------------------------------------------------------------------

    def receive_data(self, data: Data) -> list[Event]:
        """Feed bytes read elsewhere; each is copied at most once (parts inside bytes: never)."""
        view = memoryview(data).cast("B")
        # Parts wholly inside an immutable chunk are delivered as views of it: no copy.
        inline = view.readonly and isinstance(view.obj, bytes)
        events: list[Event] = []
        pos, size = 0, len(view)
        while pos < size:
            if self._start == self._end and self._state is _State.FILL:
                # Straight into the frame's buffer, without a stop in scratch.
                self._check_usable()
                n = self._fill_from(view, pos, size, events)
                self.bytes_received += n
                pos += n
                continue
            if self._start == self._end and self._state is _State.AFTER_FILL:
                used = self._guard(self._fast_next, view, pos, size, events, inline)
                if used:
                    self.bytes_received += used
                    pos += used
                    continue
            buf = self.get_buffer(size - pos)
            n = min(len(buf), size - pos)
            buf[:n] = view[pos : pos + n]
            events += self.buffer_updated(n)
            pos += n
        return events

    def get_buffer(self, sizehint: int) -> memoryview:
        """Return a writable buffer (len >= 1) for the next read; call buffer_updated after."""
        if self._state is _State.FILL and self._start == self._end:
            self._into_part = True
            return self._part[self._filled :]
        want = min(sizehint, _MAX_READ) if sizehint > 0 else _READ_SIZE
        if self._last_had_length and self._state in (_State.HEADERS, _State.AFTER_FILL):
            want = min(want, _HEAD_READ)
        self._reserve(want)
        self._into_part = False
        self._offered = want
        return memoryview(self._buf)[self._end : self._end + want]

    def buffer_updated(self, nbytes: int) -> list[Event]:
        """Account for ``nbytes`` written into the buffer returned by get_buffer."""
        self._check_usable()
        limit = len(self._part) - self._filled if self._into_part else self._offered
        if not 0 <= nbytes <= limit:
            raise LocalProtocolError(f"buffer_updated({nbytes}) outside 0..{limit}")
        self.bytes_received += nbytes
        events: list[Event] = []
        if self._into_part:
            self._filled += nbytes
            if self._filled == len(self._part):
                self._fill_done(events)  # scratch is empty: nothing else to parse yet
            return events
        self._end += nbytes
        self._offered -= nbytes
        return self._run(events)

    def receive_eof(self) -> list[Event]:
        """End of the connection: drop a part in progress, then report StreamEnded."""
        if self._eof:
            return []
        self._check_usable()
        self._eof = True
        if self._state is _State.CLOSED:
            return []
        events: list[Event] = []
        while self._state is _State.FILL:
            # The delimiter is authoritative: parts may hide in an overlong body.
            self._mismatch(DropReason.TRUNCATED)
            self._run(events)
        state, pending = self._state, self._end - self._start
        if state is _State.AFTER_FILL and not self._emitted:
            self._deliver(events, self._part.toreadonly())
        elif state is _State.SCAN:
            self._drop(events, DropReason.TRUNCATED, pending)
        elif state is _State.SKIP and self._drop_reason is not None:
            self._drop(events, self._drop_reason, self._drop_size + pending)
        elif state is _State.HEADERS and (self._headers or self._pending_text()):
            self._drop(events, DropReason.TRUNCATED, 0)
        events.append(StreamEnded())
        self._state = _State.CLOSED
        return events

    # -- buffer management ------------------------------------------------------------

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
        self._rescued = max(0, self._rescued - n)

    def _prepend(self, data: memoryview) -> None:
        """Put bytes back in front of scratch, to be parsed again (length-mismatch resync)."""
        live = self._end - self._start
        new = bytearray(max(_MIN_SCRATCH, len(data) + live))
        new[: len(data)] = data
        new[len(data) : len(data) + live] = memoryview(self._buf)[self._start : self._end]
        self._buf, self._start, self._end = new, 0, len(data) + live
        self._rescued += len(data)

    def _run(self, events: list[Event]) -> list[Event]:
        try:
            while self._handlers[self._state](events):
                pass
        except RemoteProtocolError as exc:
            self._error = str(exc)
            raise
        return events

    def _guard(self, step: Callable[..., int], *args: Any) -> int:
        try:
            return step(*args)
        except RemoteProtocolError as exc:
            self._error = str(exc)
            raise

    def _fast_next(
        self, src: Data, pos: int, end: int, events: list[Event], inline: bool = False
    ) -> int:
        """Take delimiter line, header block and body of Content-Length parts in one loop.

        The common case of the general path, one regex match per part; returns bytes
        used, or 0 to leave anything unusual (split reads, padding, limits, bad lengths)
        to the state handlers, which then raise or tolerate exactly as they always do.
        """
        fast = self._delim.fast
        if fast is None:
            return 0
        span, view, start = self._delim.fast_span, memoryview(src), pos
        while match := fast.match(src, pos, min(end, pos + span)):
            block, body = match.group(1), match.end()
            lines = block.splitlines()
            # A block shorter than max_line_size cannot hold a line longer than that.
            if body - match.start(1) > self._max_block or len(lines) > self._max_headers:
                break
            if len(block) > self._max_line and max(map(len, lines)) > self._max_line:
                break
            headers = [
                (name.rstrip(b" \t").lower().decode("ascii"), value.strip(b" \t").decode("latin-1"))
                for name, _, value in [line.partition(b":") for line in lines]
            ]  # parts.parse_header_line, inlined (splitlines took the CR)
            fields = parts.length_and_type(headers, max_part_size=self._max_part)
            if fields is None:
                break  # no, several or invalid lengths: _begin_body decides (and raises)
            if not self._emitted:
                self._deliver(events, self._part.toreadonly())
            length, content_type = fields
            if inline and body + length <= end:
                payload = view[body : body + length]  # read-only: the caller's bytes
                kind, jpeg = self._kind(content_type, payload)
                if jpeg and self._check_jpeg and parts.whole_jpeg(payload):
                    # What _open_body and _fill_done would do, inline.
                    self.parts_received += 1
                    events.append(PartReceived(payload, kind, tuple(headers), length))
                    self._part, self._filled, self._length = payload, length, length
                    self._emitted = True
                    pos = body + length
                    continue
            self._headers, self._length, self._content_type = headers, length, content_type
            self._open_body(events, view[body:end] if inline else None)
            pos, self._inlined = body + self._inlined, 0
            if self._state is _State.FILL and not inline:
                pos += self._fill_from(view, pos, end, events)
            if self._state is not _State.AFTER_FILL:
                break
        return pos - start

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

    # -- state handlers: each returns True when it made progress -----------------------

    def _handle_preamble(self, events: list[Event]) -> bool:
        buf, p, end = self._buf, self._start, self._end
        budget = self._max_preamble - self._preamble_bytes
        eol = buf.find(b"\n", p, end)
        if eol < 0:
            if end - p > budget:
                raise RemoteProtocolError(
                    f"preamble exceeds max_preamble ({self._max_preamble} bytes)"
                )
            return False
        if eol - p > budget:  # checked first: whatever the line is, as if read bytewise
            raise RemoteProtocolError(f"preamble exceeds max_preamble ({self._max_preamble} bytes)")
        line = bytes(buf[p:eol]).rstrip(b"\r")
        found = parts.boundary_of_line(line)
        if found is not None:
            if found.endswith(b"--") and self.boundary == found[:-2]:
                self._consume(eol + 1 - p)
                return self._close(events)
            if len(found) > self._max_boundary:
                raise RemoteProtocolError(
                    f"boundary exceeds max_boundary_length ({self._max_boundary} bytes)"
                )
            self._delim.learn(found)
            self._consume(eol + 1 - p)
            self._state = _State.HEADERS
            return True
        if parts.HEADER_START.match(line):
            # No initial boundary: the first part opens with its headers (after a
            # preamble, too; at worst a header-like preamble line yields one empty part).
            self._state = _State.HEADERS
            return True
        if eol + 1 - p > budget:
            raise RemoteProtocolError(f"preamble exceeds max_preamble ({self._max_preamble} bytes)")
        self._preamble_bytes += eol + 1 - p
        self._consume(eol + 1 - p)
        return True

    def _handle_headers(self, events: list[Event]) -> bool:
        buf, p, end = self._buf, self._start, self._end
        if p == end:
            return False
        if not self._headers:
            run = parts.span(parts.EOLS, buf, p, end) - p
            if run:  # blank lines before the headers: padding between parts
                self._count_block(run)
                self._consume(run)
                return True
        room = self._max_block - self._block_bytes
        block = parts.HEADER_BLOCK.match(buf, p, min(end, p + room))
        if block is not None and self._take_block(bytes(buf[p : block.end()])):
            self._consume(block.end() - p)
            return self._begin_body(events)
        first = buf[p]
        if first == 0x0A:
            self._count_block(1)
            self._consume(1)
            return self._begin_body(events)
        if first == 0x0D:
            if end - p < 2:
                return False
            if buf[p + 1] == 0x0A:
                self._count_block(2)
                self._consume(2)
            return self._begin_body(events)
        window = min(end, p + self._max_line)
        if not parts.HEADER_START.match(buf, p, window):
            if parts.span(parts.TOKEN_WS, buf, p, window) == end and end - p < self._max_line:
                return False  # could still become a header line
            return self._begin_body(events)  # cannot be a header: the body starts here
        eol = buf.find(b"\n", p, min(end, p + self._max_line + 2))
        # Raise what a reader fed byte by byte would have raised first, however it was fed.
        seen = (end if eol < 0 else eol) - p
        line_limit = self._max_line + 2  # line bytes, CR included, that break max_line_size
        block_limit = self._max_block - self._block_bytes + 1
        if seen >= min(line_limit, block_limit):
            if line_limit <= block_limit:
                self._line_too_long()
            self._block_too_big()
        if eol < 0:
            return False
        line = bytes(buf[p:eol])
        if len(line.removesuffix(b"\r")) > self._max_line:
            self._line_too_long()
        self._add_header(line)
        self._count_block(eol + 1 - p)
        self._consume(eol + 1 - p)
        return True

    def _handle_fill(self, events: list[Event]) -> bool:
        if self._start == self._end:
            return False
        self._consume(self._fill_from(memoryview(self._buf), self._start, self._end, events))
        return True

    def _handle_after_fill(self, events: list[Event]) -> bool:
        buf, end = self._buf, self._end
        if self._start == end:
            return False
        if self._delim.fast is not None:
            used = self._fast_next(buf, self._start, end, events)
            if used:
                self._consume(used)
                return True
        gap = parts.span(parts.EOLS, buf, self._start, min(end, self._start + _MAX_GAP + 1))
        if gap - self._start > _MAX_GAP:
            return self._mismatch()
        p = gap
        if p == end:
            return False
        if self._delim.needle is None:
            found = self._delim.learn_at(buf, p, end)
            if found is None:
                return False
            if found == NO:
                return self._mismatch()
            kind, stop = OPEN, found
        else:
            needle = self._delim.needle
            if end - p < len(needle):
                return False if needle.startswith(bytes(buf[p:end])) else self._mismatch()
            if not buf.startswith(needle, p):
                return self._mismatch()
            kind, stop = self._delim.tail(buf, p + len(needle), end)
            if kind == MORE:
                return False
            if kind == NO:
                return self._mismatch()
        if not self._emitted:
            self._deliver(events, self._part.toreadonly())
        self._part = _EMPTY
        self._consume(stop - self._start)
        return self._after_delimiter(events, kind)

    def _handle_scan(self, events: list[Event]) -> bool:
        p = self._start
        kind, at, stop = self._delim.find(self._buf, p + self._scan, self._end)
        if kind == MORE:
            self._scan = at - p
            if self._scan > self._max_part + 2:
                self._part_too_big()
            return False
        if at - p > self._max_part + 2:
            self._part_too_big()
        self._finish_scanned(events, p, at)
        self._consume(stop - p)
        return self._after_delimiter(events, kind)

    def _handle_skip(self, events: list[Event]) -> bool:
        p = self._start
        kind, at, stop = self._delim.find(self._buf, p + self._scan, self._end)
        self._drop_size += at - p
        if self._drop_size > self._max_part + 2:
            self._part_too_big()
        if kind == MORE:
            self._consume(at - p)  # discarded; memory stays bounded
            self._scan = 0
            return False
        if self._drop_reason is not None:
            self._drop(events, self._drop_reason, self._drop_size)
        self._consume(stop - p)
        return self._after_delimiter(events, kind)

    def _handle_closed(self, events: list[Event]) -> bool:
        self._consume(self._end - self._start)  # epilogue (RFC 2046 §5.1.1): ignored
        return False

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
            self._state = _State.SCAN
            return True
        if inline is not None and len(inline) >= self._length:
            self._part = inline[: self._length]  # read-only: a view of the caller's bytes
            self._filled = self._inlined = self._length
            self._fill_done(events)
            return True
        # Validated against max_part_size above; numpy.empty does not zero-fill as bytearray.
        self._part = numpy.empty(self._length, numpy.uint8).data
        self._filled = 0
        self._state = _State.FILL
        if self._length == 0:
            self._fill_done(events)
        return True

    def _fill_done(self, events: list[Event]) -> None:
        self._state = _State.AFTER_FILL
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
        self._state = _State.SKIP
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
        self._part = _EMPTY
        self._drop_reason, self._drop_size = reason, at
        return True

    def _after_delimiter(self, events: list[Event], kind: int) -> bool:
        if kind == CLOSE:
            return self._close(events)
        self._state = _State.HEADERS
        return True

    def _close(self, events: list[Event]) -> bool:
        events.append(StreamEnded())
        self._state = _State.CLOSED
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
