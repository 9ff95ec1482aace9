"""Sans-IO HTTP/1.x client side: request bytes, bounded response head, body framing.

The body decoders sit between the socket and an inner consumer (the multipart
demuxer) and pass ``get_buffer``/``buffer_updated`` straight through, so body bytes
land in the consumer's final buffer; only chunk-size lines and trailers go through a
small scratch buffer (RFC 9112 §7.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import LocalProtocolError, RemoteProtocolError

Data = bytes | bytearray | memoryview

# RFC 9110 §5.6.2 token characters.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d)[ \t]+(\d{3})(?:[ \t]+(.*))?")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
# The blank line that ends a head, with CRLF or bare LF line endings.
_HEAD_END = re.compile(rb"\n\r?\n")


class BodyConsumer(Protocol):
    """What a body decoder feeds: the multipart demuxer's buffer-protocol API."""

    def receive_data(self, data: Data) -> list[Any]:
        """Take bytes that were read elsewhere (copied once into the consumer)."""

    def get_buffer(self, sizehint: int) -> memoryview:
        """Return a writable buffer (len >= 1) for the next socket read."""

    def buffer_updated(self, nbytes: int) -> list[Any]:
        """Account for ``nbytes`` written into the last buffer."""

    def receive_eof(self) -> list[Any]:
        """Signal the end of the body."""


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A parsed response status line and header block."""

    #: ``(major, minor)``, e.g. ``(1, 0)``.
    http_version: tuple[int, int]
    #: Status code.
    status: int
    #: Reason phrase as sent (may be empty).
    reason: str
    #: ``(lower-case name, value)`` in the order received.
    headers: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of header ``name`` (lower case), or ``default``."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Return every value of header ``name`` (lower case)."""
        return [value for key, value in self.headers if key == name]

    @property
    def status_text(self) -> str:
        """Return e.g. ``"HTTP 503 Service Unavailable"``."""
        return f"HTTP {self.status} {self.reason}".rstrip()


def build_request(
    target: str, host: str, headers: list[tuple[str, str]] | None = None, *, method: str = "GET"
) -> bytes:
    """Return an HTTP/1.1 request head asking the server to close after the response."""
    for text in (method, target, host):
        if any(c in text for c in "\r\n ") or not text:
            raise LocalProtocolError(f"invalid request component {text!r}")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers or []:
        if "\r" in value or "\n" in value or not _TOKEN.fullmatch(name.encode("ascii", "replace")):
            raise LocalProtocolError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ResponseHeadParser:
    """Parse one response head; tolerant of HTTP/1.0, LF-only lines and any header case."""

    def __init__(
        self, *, max_line_size: int = 8192, max_headers: int = 64, max_head_size: int = 65536
    ) -> None:
        self._max_line_size = max_line_size
        self._max_headers = max_headers
        self._max_head_size = max_head_size
        self._buf = bytearray()
        self._scanned = 0
        self._line_start = 0
        self._used = 0  # bytes of the interim heads already parsed
        self.head: ResponseHead | None = None
        #: Bytes received after the head (the start of the body).
        self.trailing_data = b""

    def receive_data(self, data: Data) -> ResponseHead | None:
        """Feed bytes; return the head once complete (1xx interim responses skipped).

        Interim heads count against ``max_head_size`` with the final one, and no more
        bytes than could still belong to a head are ever copied or scanned: the rest of a
        large chunk waits, untouched, until the head is known (``trailing_data``).
        """
        if self.head is not None:
            raise LocalProtocolError("response head already complete")
        view = memoryview(data).cast("B")
        room = self._max_head_size + 1 - self._used - len(self._buf)
        taken = min(max(room, 0), len(view))
        self._buf += view[:taken]
        start = 0
        while (end := self._find_end(start)) is not None:
            self._used += end - start
            if self._used > self._max_head_size:
                raise RemoteProtocolError(
                    f"response head exceeds max_head_size ({self._max_head_size} bytes)"
                )
            head = self._parse(bytes(self._buf[start:end]))
            start = self._scanned = self._line_start = end
            if head is not None and not 100 <= head.status < 200:
                self.head = head
                self.trailing_data = bytes(self._buf[end:]) + bytes(view[taken:])
                self._buf.clear()
                return head
        del self._buf[:start]  # at most once per call: parsed interim heads
        self._scanned, self._line_start = self._scanned - start, self._line_start - start
        self._check_incomplete()
        return None

    def _find_end(self, start: int) -> int | None:
        """Return the offset just past the blank line ending the head; scan each byte once."""
        buf = self._buf
        search = max(self._scanned - 2, start)
        found = _HEAD_END.search(buf, search)
        if found is not None:
            return found.end()
        newline = buf.rfind(b"\n", search)
        if newline != -1:
            self._line_start = newline + 1
        self._scanned = len(buf)
        return None

    def _check_incomplete(self) -> None:
        if self._used + len(self._buf) > self._max_head_size:
            raise RemoteProtocolError(
                f"response head exceeds max_head_size ({self._max_head_size} bytes)"
            )
        if len(self._buf) - self._line_start > self._max_line_size:
            raise RemoteProtocolError(
                f"response header line exceeds max_line_size ({self._max_line_size} bytes)"
            )

    def _parse(self, block: bytes) -> ResponseHead | None:
        lines = [line.removesuffix(b"\r") for line in block.split(b"\n")]
        while lines and not lines[-1]:
            lines.pop()
        # Empty lines before the status line are ignored (RFC 9112 §2.2).
        while lines and not lines[0]:
            del lines[0]
        if any(len(line) > self._max_line_size for line in lines):
            raise RemoteProtocolError(
                f"response header line exceeds max_line_size ({self._max_line_size} bytes)"
            )
        if not lines:
            return None
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise RemoteProtocolError(f"malformed status line {_show(lines[0])}")
        major, minor, status = int(match[1]), int(match[2]), int(match[3])
        if major != 1:
            raise RemoteProtocolError(f"unsupported HTTP version {major}.{minor}")
        reason = (match[4] or b"").strip().decode("latin-1")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t") and headers:
                # Obsolete line folding (RFC 9112 §5.2): join with a space. The joined
                # value is one line: bounded like one before it is built.
                name, value = headers[-1]
                if len(value) + len(line) >= self._max_line_size:
                    raise RemoteProtocolError(
                        f"folded response header exceeds max_line_size ({self._max_line_size}"
                        " bytes)"
                    )
                headers[-1] = (name, f"{value} {line.strip().decode('latin-1')}".strip())
                continue
            name_b, sep, value_b = line.partition(b":")
            if not sep or not _TOKEN.fullmatch(name_b):
                raise RemoteProtocolError(f"malformed header line {_show(line)}")
            headers.append((name_b.decode("ascii").lower(), value_b.strip().decode("latin-1")))
            if len(headers) > self._max_headers:
                raise RemoteProtocolError(
                    f"response has more than max_headers ({self._max_headers}) headers"
                )
        return ResponseHead((major, minor), status, reason, tuple(headers))


def _show(line: bytes) -> str:
    return repr(bytes(line[:60]))


def content_length(head: ResponseHead) -> int | None:
    """Return the declared Content-Length, rejecting malformed or conflicting values."""
    values = {v.strip() for raw in head.get_all("content-length") for v in raw.split(",")}
    if not values:
        return None
    if len(values) > 1:
        raise RemoteProtocolError("conflicting Content-Length values")
    value = values.pop()
    # The length first: a long value is refused before it is looked at (or converted).
    if len(value) > 18 or not value.isascii() or not value.isdigit():
        raise RemoteProtocolError(f"invalid Content-Length {value[:20]!r}")
    return int(value)


def is_chunked(head: ResponseHead) -> bool:
    """Return True if the body uses chunked transfer coding; reject other codings."""
    codings = [
        c.strip().lower() for raw in head.get_all("transfer-encoding") for c in raw.split(",")
    ]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return False
    if codings != ["chunked"]:
        raise RemoteProtocolError(f"unsupported transfer coding {', '.join(codings)!r}")
    return True


def body_decoder(
    head: ResponseHead, consumer: BodyConsumer, **limits: int
) -> IdentityDecoder | ChunkedDecoder:
    """Return the body decoder for ``head`` (RFC 9112 §6.3: Transfer-Encoding wins)."""
    if is_chunked(head):
        return ChunkedDecoder(consumer, **limits)
    return IdentityDecoder(consumer, content_length(head))


class IdentityDecoder:
    """Pass a close-delimited or Content-Length body straight to the consumer."""

    def __init__(self, consumer: BodyConsumer, length: int | None) -> None:
        self._consumer = consumer
        self._remaining = length
        #: True once the whole body has been received.
        self.complete = False
        #: Bytes copied out of scratch buffers (always 0 here: no scratch).
        self.copied = 0

    def receive_data(self, data: Data) -> list[Any]:
        """Feed body bytes read elsewhere; bytes after the declared length are ignored."""
        if self._remaining is not None:
            data = memoryview(data)[: self._remaining]
            self._remaining -= len(data)
        events = self._consumer.receive_data(data) if len(data) else []
        return events + self._maybe_finish()

    def get_buffer(self, sizehint: int) -> memoryview:
        """Return the consumer's buffer, cut to what is left of the body."""
        if self._remaining is not None and self._remaining <= 0:
            return memoryview(bytearray(1))  # past the body: read into a throwaway byte
        buf = self._consumer.get_buffer(sizehint)
        if self._remaining is not None and self._remaining < len(buf):
            return buf[: self._remaining]
        return buf

    def buffer_updated(self, nbytes: int) -> list[Any]:
        """Account for a socket read into the consumer's buffer."""
        if self._remaining is not None:
            if self._remaining <= 0:
                return []
            self._remaining -= nbytes
        return self._consumer.buffer_updated(nbytes) + self._maybe_finish()

    def receive_eof(self) -> list[Any]:
        """End the body at connection close."""
        if self.complete:
            return []
        self.complete = True
        return self._consumer.receive_eof()

    def _maybe_finish(self) -> list[Any]:
        if self._remaining is not None and self._remaining <= 0 and not self.complete:
            self.complete = True
            return self._consumer.receive_eof()
        return []


class ChunkedDecoder:
    """Decode ``Transfer-Encoding: chunked`` (RFC 9112 §7.1) around a buffer-protocol consumer."""

    def __init__(
        self,
        consumer: BodyConsumer,
        *,
        max_chunk_line: int = 1024,
        max_trailer_size: int = 8192,
        scratch_size: int = 16,
    ) -> None:
        self._consumer = consumer
        self._max_chunk_line = max_chunk_line
        self._max_trailer_size = max_trailer_size
        # Chunk-size lines are read into a small scratch buffer so few payload bytes
        # ride along with them (those few are copied once into the consumer).
        self._scratch = bytearray(scratch_size)
        self._line = bytearray()
        self._remaining = 0  # data bytes left in the current chunk
        self._state = self._handle_size_line
        self._trailer_size = 0
        self._in_scratch = False
        #: True once the last chunk and trailers have been received.
        self.complete = False
        #: Payload bytes copied out of the scratch buffer (for the copy budget).
        self.copied = 0

    def receive_data(self, data: Data) -> list[Any]:
        """Feed body bytes read elsewhere."""
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        events: list[Any] = []
        while len(view) and not self.complete:
            used, produced = self._state(view)
            events += produced
            view = view[used:]
        return events

    def get_buffer(self, sizehint: int) -> memoryview:
        """Return the consumer's buffer inside chunk data, else the scratch buffer."""
        if self._remaining > 0 and self._state == self._handle_data:
            self._in_scratch = False
            buf = self._consumer.get_buffer(min(sizehint, self._remaining) if sizehint > 0 else -1)
            return buf[: self._remaining]
        self._in_scratch = True
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> list[Any]:
        """Account for a socket read into the buffer last returned by ``get_buffer``."""
        if self._in_scratch:
            return self.receive_data(memoryview(self._scratch)[:nbytes])
        self._remaining -= nbytes
        events = self._consumer.buffer_updated(nbytes)
        if self._remaining == 0:
            self._state = self._handle_data_end
        return events

    def receive_eof(self) -> list[Any]:
        """End the body at connection close (a truncated body still ends the consumer)."""
        if self.complete:
            return []
        self.complete = True
        return self._consumer.receive_eof()

    def _take_line(self, view: memoryview, limit: int, error: str) -> tuple[int, bytes | None]:
        """Accumulate one line; return (bytes used, the line without EOL, or None)."""
        window = bytes(view[: limit + 2 - len(self._line)])
        nl = window.find(b"\n")
        if nl == -1:
            self._line += window
            if len(self._line) > limit + 1:
                raise RemoteProtocolError(error)
            return len(window), None
        self._line += window[:nl]
        line = bytes(self._line).removesuffix(b"\r")
        self._line.clear()
        if len(line) > limit:
            raise RemoteProtocolError(error)
        return nl + 1, line

    def _handle_size_line(self, view: memoryview) -> tuple[int, list[Any]]:
        error = f"chunk-size line exceeds max_chunk_line ({self._max_chunk_line} bytes)"
        used, line = self._take_line(view, self._max_chunk_line, error)
        if line is None:
            return used, []
        size_text = line.split(b";", 1)[0].strip(b" \t")
        if len(size_text) > 15 or not _HEX.fullmatch(size_text):
            raise RemoteProtocolError(f"malformed chunk size {_show(line)}")
        self._remaining = int(size_text, 16)
        self._state = self._handle_trailer if self._remaining == 0 else self._handle_data
        return used, []

    def _handle_data(self, view: memoryview) -> tuple[int, list[Any]]:
        piece = view[: self._remaining]
        self._remaining -= len(piece)
        self.copied += len(piece)
        if self._remaining == 0:
            self._state = self._handle_data_end
        return len(piece), self._consumer.receive_data(piece)

    def _handle_data_end(self, view: memoryview) -> tuple[int, list[Any]]:
        used, line = self._take_line(view, 0, "chunk data not followed by CRLF")
        if line is None:
            return used, []
        self._state = self._handle_size_line
        return used, []

    def _handle_trailer(self, view: memoryview) -> tuple[int, list[Any]]:
        error = f"chunked trailer exceeds max_trailer_size ({self._max_trailer_size} bytes)"
        used, line = self._take_line(view, self._max_trailer_size, error)
        self._trailer_size += used
        if self._trailer_size > self._max_trailer_size:
            raise RemoteProtocolError(error)
        if line is None or line:
            return used, []
        self.complete = True
        return used, self._consumer.receive_eof()
