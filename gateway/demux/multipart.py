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

from collections.abc import Callable
from typing import Any, ClassVar

from gateway.demux import parts
from gateway.demux.core import EMPTY, READ_SIZE, Data, PartParser, State
from gateway.demux.delimiter import MORE, NO, OPEN
from gateway.demux.events import Event, PartDropped, PartReceived, StreamEnded
from gateway.demux.parts import DropReason
from gateway.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["Data", "Event", "MultipartDemuxer", "PartDropped", "PartReceived", "StreamEnded"]

_MAX_READ = 2**20  # a size hint never makes scratch grow by more than this per read
_HEAD_READ = 1024  # scratch read between Content-Length parts: few body bytes ride along
_MAX_GAP = 1024  # line breaks tolerated between a Content-Length body and its delimiter


class MultipartDemuxer(PartParser):
    """Split a multipart byte stream into parts; bytes in, events out."""

    # -- public API -------------------------------------------------------------------

    def receive_data(self, data: Data) -> list[Event]:
        """Feed bytes read elsewhere; each is copied at most once (parts inside bytes: never)."""
        view = memoryview(data).cast("B")
        # Parts wholly inside an immutable chunk are delivered as views of it: no copy.
        inline = view.readonly and isinstance(view.obj, bytes)
        events: list[Event] = []
        pos, size = 0, len(view)
        while pos < size:
            if self._start == self._end and self._state is State.FILL:
                # Straight into the frame's buffer, without a stop in scratch.
                self._check_usable()
                n = self._fill_from(view, pos, size, events)
                self.bytes_received += n
                pos += n
                continue
            if self._start == self._end and self._state is State.AFTER_FILL:
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
        if self._state is State.FILL and self._start == self._end:
            self._into_part = True
            return self._part[self._filled :]
        want = min(sizehint, _MAX_READ) if sizehint > 0 else READ_SIZE
        if self._last_had_length and self._state in (State.HEADERS, State.AFTER_FILL):
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
        if self._state is State.CLOSED:
            return []
        events: list[Event] = []
        while self._state is State.FILL:
            # The delimiter is authoritative: parts may hide in an overlong body.
            self._mismatch(DropReason.TRUNCATED)
            self._run(events)
        state, pending = self._state, self._end - self._start
        if state is State.AFTER_FILL and not self._emitted:
            self._deliver(events, self._part.toreadonly())
        elif state is State.SCAN:
            self._drop(events, DropReason.TRUNCATED, pending)
        elif state is State.SKIP and self._drop_reason is not None:
            self._drop(events, self._drop_reason, self._drop_size + pending)
        elif state is State.HEADERS and (self._headers or self._pending_text()):
            self._drop(events, DropReason.TRUNCATED, 0)
        events.append(StreamEnded())
        self._state = State.CLOSED
        return events

    # -- parsing ----------------------------------------------------------------------

    def _run(self, events: list[Event]) -> list[Event]:
        try:
            while self._HANDLERS[self._state](self, events):
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
            if self._state is State.FILL and not inline:
                pos += self._fill_from(view, pos, end, events)
            if self._state is not State.AFTER_FILL:
                break
        return pos - start

    # -- state handlers: each returns True when it made progress -----------------------

    def _handle_preamble(self, events: list[Event]) -> bool:
        buf, p, end = self._buf, self._start, self._end
        budget = self._max_preamble - self._preamble_bytes
        eol = buf.find(b"\n", p + self._no_eol, min(end, p + budget + 1))
        if eol < 0:
            if end - p > budget:
                raise RemoteProtocolError(
                    f"preamble exceeds max_preamble ({self._max_preamble} bytes)"
                )
            self._no_eol = end - p
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
            self._state = State.HEADERS
            return True
        if parts.HEADER_START.match(line):
            # No initial boundary: the first part opens with its headers (after a
            # preamble, too; at worst a header-like preamble line yields one empty part).
            self._state = State.HEADERS
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
        if self._no_eol and not self._line_ends(buf, p, end):
            return False  # the header line at p is still incomplete: only new bytes looked at
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
        self._check_line((end if eol < 0 else eol) - p)
        if eol < 0:
            self._no_eol = end - p  # a header line, incomplete: _line_ends takes it from here
            return False
        line = bytes(buf[p:eol])
        if len(line.removesuffix(b"\r")) > self._max_line:
            self._line_too_long()
        self._add_header(line)
        self._count_block(eol + 1 - p)
        self._consume(eol + 1 - p)
        return True

    def _line_ends(self, buf: bytearray, p: int, end: int) -> bool:
        """Return True if the incomplete header line at p now ends; else check its limits."""
        # The line starts like a header and its first _no_eol bytes hold no line break.
        eol = buf.find(b"\n", p + self._no_eol, min(end, p + self._max_line + 2))
        if eol >= 0:
            return True
        self._check_line(end - p)
        self._no_eol = end - p
        return False

    def _check_line(self, seen: int) -> None:
        """Raise what a reader fed byte by byte would have raised first, however it was fed."""
        line_limit = self._max_line + 2  # line bytes, CR included, that break max_line_size
        block_limit = self._max_block - self._block_bytes + 1
        if seen >= min(line_limit, block_limit):
            if line_limit <= block_limit:
                self._line_too_long()
            self._block_too_big()

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
        self._part = EMPTY
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

    _HANDLERS: ClassVar[dict[State, Callable[[MultipartDemuxer, list[Event]], bool]]] = {
        State.PREAMBLE: _handle_preamble,
        State.HEADERS: _handle_headers,
        State.FILL: _handle_fill,
        State.AFTER_FILL: _handle_after_fill,
        State.SCAN: _handle_scan,
        State.SKIP: _handle_skip,
        State.CLOSED: _handle_closed,
    }
