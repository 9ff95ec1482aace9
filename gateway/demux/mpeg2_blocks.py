"""Input blocks for the MPEG-2 indexer: reads land in large blocks, units are views of them.

Socket reads land in large blocks (``get_buffer``) that are never rewritten; the bytes
still needed are kept as pieces of the buffers they arrived in (those blocks, or the
caller's ``bytes``). A unit inside one piece is a read-only view of it, and a unit that
spans pieces is joined once (``bytes_copied``). Taking bytes out is O(bytes taken).
"""

from __future__ import annotations

from gateway.demux.mpeg2_scan import Buffer
from gateway.errors import LocalProtocolError
from gateway.media import Payload

#: A block with less free space than this is replaced by a fresh one.
MIN_ROOM = 4096


class BlockInput:
    """The input bytes not yet released, as pieces of the buffers they arrived in."""

    def __init__(self, *, block_size: int) -> None:
        self._block_size = block_size
        self._block = bytearray(block_size)
        self._pos = 0  # free space in the block starts here
        self._offered = 0
        self._pieces: list[_Piece] = []  # the input bytes kept, in order
        self._head = 0  # pieces before this index are released
        #: Input offset just past the last byte received.
        self.end = 0
        #: Payload bytes copied: joins of units that span pieces, and copied-in reads.
        self.bytes_copied = 0

    def get_buffer(self, sizehint: int) -> memoryview:
        """Return a writable buffer (len >= 1) for the next read."""
        if len(self._block) - self._pos < MIN_ROOM:
            self._block = bytearray(self._block_size)
            self._pos = 0
        room = len(self._block) - self._pos
        self._offered = room if sizehint <= 0 else max(1, min(room, sizehint))
        return memoryview(self._block)[self._pos : self._pos + self._offered]

    def buffer_updated(self, nbytes: int) -> tuple[bytearray, int, int]:
        """Account for nbytes written into the last buffer; return (block, start, end)."""
        if not 0 <= nbytes <= self._offered:
            raise LocalProtocolError(f"buffer_updated({nbytes}) outside 0..{self._offered}")
        start = self._pos
        self._pos += nbytes
        self._offered = 0
        return self._block, start, self._pos

    def append(self, buf: Buffer, start: int, end: int) -> int:
        """Keep buf[start:end] as the next input bytes; return the input offset of the first."""
        at = self.end
        self.end += end - start
        last = self._pieces[-1] if len(self._pieces) > self._head else None
        if last is not None and last.buf is buf and last.end == start:
            last.end = end
        else:
            self._pieces.append(_Piece(buf, start, end, at))
        return at

    def pieces(self) -> list[tuple[Buffer, int, int, int]]:
        """Return the kept pieces as (buf, start, end, input offset of start)."""
        return [(p.buf, p.start, p.end, p.at) for p in self._pieces[self._head :]]

    def kept(self) -> int:
        """Return how many input bytes are held."""
        return sum(p.end - p.start for p in self._pieces[self._head :])

    def take(self, start: int, end: int) -> Payload:
        """Return input bytes [start, end) (a view when they are in one buffer); release them."""
        views: list[memoryview] = []
        i, want = self._head, start
        while want < end:
            piece = self._pieces[i]
            off = piece.start + want - piece.at
            n = min(piece.end - off, end - want)
            views.append(memoryview(piece.buf)[off : off + n])
            want += n
            i += 1
        self.release(end)
        if len(views) == 1:
            return views[0].toreadonly()
        self.bytes_copied += end - start
        return b"".join(views)

    def release(self, upto: int) -> None:
        """Forget input bytes before offset upto."""
        pieces = self._pieces
        while self._head < len(pieces):
            piece = pieces[self._head]
            if piece.at + piece.end - piece.start > upto:
                if piece.at < upto:
                    piece.start += upto - piece.at
                    piece.at = upto
                break
            self._head += 1
        if self._head > 32 and self._head * 2 > len(pieces):
            del pieces[: self._head]
            self._head = 0


class _Piece:
    """Input bytes buf[start:end], the first of them at input offset at."""

    __slots__ = ("at", "buf", "end", "start")

    def __init__(self, buf: Buffer, start: int, end: int, at: int) -> None:
        self.buf, self.start, self.end, self.at = buf, start, end, at
