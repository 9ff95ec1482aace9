"""Feed a sans-IO parser its input one way (STYLE §13): the one loop every parser test uses."""

from __future__ import annotations

import random
from typing import Any, Protocol

from gateway.errors import RemoteProtocolError


class Parser(Protocol):
    """What the demux parsers share: both input paths and the end of input."""

    def receive_data(self, data: Any) -> list[Any]: ...
    def get_buffer(self, sizehint: int) -> memoryview: ...
    def buffer_updated(self, nbytes: int) -> list[Any]: ...
    def receive_eof(self) -> list[Any]: ...


def feed_one(
    parser: Parser,
    data: bytes,
    mode: str,
    *,
    max_piece: int = 97,
    small_hint: int = 1,
    large_read: int = 1 << 30,
    views: bool = True,
) -> tuple[list[Any], str | None]:
    """Feed ``data`` in ``mode``; return the events and the error message, if one was raised.

    Modes: ``all`` at once, ``bytewise``, ``random`` splits of at most ``max_piece``
    bytes (memoryviews, or bytes when not ``views``), ``bytearray`` (the same splits as
    bytearrays), and the
    BufferedProtocol path with ``buffer-small`` hints (reads of at most 5 bytes) or
    ``buffer-large`` ones (reads of at most ``large_read``).
    """
    events: list[Any] = []
    try:
        if mode == "all":
            events += parser.receive_data(data)
        elif mode == "bytewise":
            for i in range(len(data)):
                events += parser.receive_data(data[i : i + 1])
        elif mode in ("random", "bytearray"):
            rng = random.Random(len(data))
            i = 0
            while i < len(data):
                n = rng.randint(1, max_piece)
                piece = memoryview(data)[i : i + n] if views else data[i : i + n]
                events += parser.receive_data(bytearray(piece) if mode == "bytearray" else piece)
                i += n
        else:
            hint, short = (small_hint, 5) if mode == "buffer-small" else (-1, large_read)
            i = 0
            while i < len(data):
                buf = parser.get_buffer(hint)
                assert len(buf) >= 1
                n = min(len(buf), len(data) - i, short)
                buf[:n] = data[i : i + n]
                events += parser.buffer_updated(n)
                i += n
        events += parser.receive_eof()
    except RemoteProtocolError as exc:
        return events, str(exc)
    return events, None
