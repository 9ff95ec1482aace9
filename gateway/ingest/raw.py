"""A zero-copy body consumer for unframed streams (raw audio; anything ``probe`` watches)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import LocalProtocolError
from gateway.media import Payload


@dataclass(frozen=True, slots=True)
class RawReceived:
    """Bytes read from an unframed stream."""

    #: A read-only view of the bytes as read (never rewritten afterwards).
    payload: Payload
    #: The response's content type.
    content_type: str


class RawConsumer:
    """Hand out slices of a large block so each read is one event and no byte is copied.

    A block is never rewritten: once full, a new one is allocated, so views handed out
    earlier stay valid for as long as anyone holds them.
    """

    def __init__(self, content_type: str, *, block_size: int = 256 * 1024) -> None:
        self._content_type = content_type
        self._block_size = block_size
        self._block = bytearray(block_size)
        self._pos = 0
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
        return [RawReceived(view, self._content_type)]

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[RawReceived]:
        """Emit bytes read elsewhere (copied once)."""
        if not len(data):
            return []
        payload = bytes(data)
        self.bytes_received += len(payload)
        self.bytes_copied += len(payload)
        return [RawReceived(payload, self._content_type)]

    def receive_eof(self) -> list[RawReceived]:
        """Nothing is pending at the end of an unframed stream."""
        return []
