"""Delimiter lines of a multipart stream (RFC 2046 §5.1.1): find them, learn the boundary."""

from __future__ import annotations

import re

from gateway.demux import parts

MAX_PAD = 256  # transport padding after a delimiter, with its line break
MORE, NO, OPEN, CLOSE = -1, 0, 1, 2  # need more bytes | not a delimiter | ``--b`` | ``--b--``


class Delimiter:
    """The boundary of one stream and how to find its delimiter lines in a buffer."""

    def __init__(self, boundary: bytes | None, *, max_length: int, max_header_block: int) -> None:
        self._max_length = max_length
        self._max_block = max_header_block
        #: The boundary without the leading ``--``, once declared or learned.
        self.boundary: bytes | None = None
        #: ``--`` + boundary: what bytes.find looks for.
        self.needle: bytes | None = None
        #: Delimiter line plus the next header block, as one regex (the common case).
        self.fast: re.Pattern[bytes] | None = None
        #: The most bytes ``fast`` can match.
        self.fast_span = 0
        if boundary:
            self.learn(boundary)

    def learn(self, boundary: bytes) -> None:
        """Use ``boundary`` from now on."""
        self.boundary = boundary
        self.needle = b"--" + boundary
        self.fast = re.compile(
            rb"\r?\n%s[ \t]{0,%d}\r?\n(%s)\r?\n"
            % (re.escape(self.needle), MAX_PAD - 2, parts.HEADER_LINES)
        )
        self.fast_span = 2 + len(self.needle) + MAX_PAD + self._max_block

    def find(self, buf: bytearray, pos: int, end: int) -> tuple[int, int, int]:
        """Find the next delimiter in ``buf[pos:end]``: (kind, where "--" starts, line end).

        kind MORE means none yet; then ``where`` is the earliest offset one may still start
        at, so the next search resumes there and no byte is scanned twice.
        """
        while True:
            needle = self.needle
            if needle is None:  # no boundary known yet: a delimiter line teaches it
                at = buf.find(b"\n--", pos, end)
                if at < 0:
                    return MORE, max(pos, end - 2), 0
                stop = self.learn_at(buf, at + 1, end)
                if stop is None:
                    return MORE, at, 0
                if stop != NO:
                    return OPEN, at + 1, stop
                pos = at + 1
                continue
            at = buf.find(needle, pos, end)
            if at < 0:
                return MORE, max(pos, end - len(needle) + 1), 0
            kind, stop = self.tail(buf, at + len(needle), end)
            if kind == MORE:
                return MORE, at, 0
            if kind != NO:
                return kind, at, stop
            pos = at + 1

    def tail(self, buf: bytearray, q: int, end: int) -> tuple[int, int]:
        """Classify what follows ``--boundary`` at ``q``: (MORE | NO | OPEN | CLOSE, line end)."""
        if q >= end:
            return MORE, 0
        if buf[q] == 0x2D:
            if q + 1 >= end:
                return MORE, 0
            return (CLOSE, q + 2) if buf[q + 1] == 0x2D else (NO, 0)
        line = parts.PAD_EOL.match(buf, q, min(end, q + MAX_PAD))
        if line is not None:
            return OPEN, line.end()
        if parts.span(parts.PAD_PARTIAL, buf, q, end) == end and end - q < MAX_PAD:
            return MORE, 0
        return NO, 0

    def learn_at(self, buf: bytearray, p: int, end: int) -> int | None:
        """Learn the boundary from a delimiter line at ``p``: its end, NO, or None (more)."""
        limit = p + 2 + self._max_length + MAX_PAD + 2
        eol = buf.find(b"\n", p, min(end, limit))
        if eol < 0:
            return None if end < limit else NO
        found = parts.boundary_of_line(bytes(buf[p:eol]).rstrip(b"\r"))
        if found is None or len(found) > self._max_length:
            return NO
        self.learn(found)
        return eol + 1
