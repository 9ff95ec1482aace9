"""A zero-copy body consumer for unframed streams (MPEG-2 ``video/mpeg``, raw audio)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import LocalProtocolError
from gateway.media import Payload

#: MPEG video picture start code (ISO/IEC 13818-2 §6.2.3): one per coded picture.
PICTURE_START = b"\x00\x00\x01\x00"


@dataclass(frozen=True, slots=True)
class RawReceived:
    """Bytes read from an unframed stream."""

    #: A read-only view of the bytes as read (never rewritten afterwards).
    payload: Payload
    #: The response's content type.
    content_type: str
    #: Occurrences of the consumer's marker (e.g. picture start codes) ending in these bytes.
    markers: int = 0


class RawConsumer:
    """Hand out slices of a large block so each read is one event and no byte is copied.

    A block is never rewritten: once full, a new one is allocated, so views handed out
    earlier stay valid for as long as anyone holds them. If ``marker`` is given, each
    event counts the markers that end in it (found in place, without copying).
    """

    def __init__(
        self, content_type: str, *, marker: bytes | None = None, block_size: int = 256 * 1024
    ) -> None:
        self._content_type = content_type
        self._marker = marker
        self._block_size = block_size
        self._block = bytearray(block_size)
        self._pos = 0
        self._tail = b""  # the last len(marker) - 1 bytes, for markers split across reads
        #: Bytes received.
        self.bytes_received = 0
        #: Bytes copied (only those fed through ``receive_data``).
        self.bytes_copied = 0

    def get_buffer(self, sizehint: int) -> memoryview:
        """Return the free tail of the current block (a new block when it is full)."""
        if self._pos >= len(self._block) - 188:  # keep reads at least a TS packet long
            self._block = bytearray(self._block_size)
            self._pos = 0
        end = len(self._block) if sizehint <= 0 else min(len(self._block), self._pos + sizehint)
        return memoryview(self._block)[self._pos : max(end, self._pos + 1)]

    def buffer_updated(self, nbytes: int) -> list[RawReceived]:
        """Emit the bytes just read."""
        start = self._pos
        if nbytes <= 0 or start + nbytes > len(self._block):
            raise LocalProtocolError("buffer_updated beyond the buffer handed out")
        self._pos += nbytes
        self.bytes_received += nbytes
        view = memoryview(self._block)[start : self._pos].toreadonly()
        return [RawReceived(view, self._content_type, self._count(self._block, start, self._pos))]

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[RawReceived]:
        """Emit bytes read elsewhere (copied once)."""
        if not len(data):
            return []
        payload = bytes(data)
        self.bytes_received += len(payload)
        self.bytes_copied += len(payload)
        return [RawReceived(payload, self._content_type, self._count(payload, 0, len(payload)))]

    def receive_eof(self) -> list[RawReceived]:
        """Nothing is pending at the end of an unframed stream."""
        return []

    def _count(self, buf: bytes | bytearray, start: int, end: int) -> int:
        marker = self._marker
        if marker is None:
            return 0
        keep = len(marker) - 1
        # Markers wholly inside the new bytes are counted in place; one straddling the
        # previous read is found in the few saved tail bytes joined to the new head.
        count = buf.count(marker, start, end)
        if self._tail:
            count += (self._tail + buf[start : start + keep]).count(marker)
        self._tail = bytes(buf[max(start, end - keep) : end])
        return count
