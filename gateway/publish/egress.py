"""One client's socket: zero-copy part writes, flow control, and lag (SIOCOUTQ).

Every client shares the frame's payload object; what is per client is a small part
header. A part goes out as one ``os.writev`` of ``[header, payload, CRLF]`` straight
into the kernel when the transport has nothing buffered (scatter/gather, no copy), and
only a partial write's remainder is handed to the transport (which buffers it).
The transport's high-water mark is 0: anything left over pauses the writer, so the
gateway holds at most the one frame being written (plus the hub's slot: ≤ 2).
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import os
import socket
import termios
import time
from collections import deque
from collections.abc import Callable, Sequence

from aiohttp.abc import AbstractStreamWriter

from gateway.media import Payload

#: In-flight frame marks kept per client (ints only; the oldest is the lag position).
MAX_MARKS = 4096
#: Buffers one ``writev`` may take (Linux ``IOV_MAX``; more fails with EINVAL).
IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


class ClientEgress:
    """Writes parts to one client and tells how far behind live it is."""

    def __init__(
        self,
        transport: asyncio.Transport,
        writer: AbstractStreamWriter,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        """Take over writing on ``transport`` after aiohttp sent the response head."""
        self._transport = transport
        self._writer = writer
        self._clock = clock
        sock = transport.get_extra_info("socket")
        plain = sock is not None and transport.get_extra_info("sslcontext") is None
        self._fd: int = sock.fileno() if plain else -1
        transport.set_write_buffer_limits(high=0)
        self._marks: deque[tuple[int, int]] = deque(maxlen=MAX_MARKS)
        self._drain: asyncio.Future[None] | None = None
        self._outq = array.array("i", [0])
        #: Bytes handed to the kernel or the transport so far.
        self.written = 0
        #: Parts written so far.
        self.parts = 0

    @property
    def closing(self) -> bool:
        """Return True once the connection is closing or closed."""
        return self._transport.is_closing()

    def write(self, chunks: Sequence[Payload], received_ns: int) -> None:
        """Write one part (its chunks in order); ``received_ns`` is its frame's arrival."""
        total = sum(len(c) for c in chunks)
        sent = 0
        if self._fd >= 0 and not self._transport.get_write_buffer_size():
            sent = self._writev(chunks)
        if sent < total:
            self._transport.writelines(_rest(chunks, sent))
        self.written += total
        self.parts += 1
        self._marks.append((self.written, received_ns))

    def send(self, chunks: Sequence[Payload], total: int, received_ns: int) -> bool:
        """Write one part of ``total`` bytes while the transport holds nothing; True if whole.

        The fast path's ``write``: the caller checked ``can_send`` and knows the total.
        """
        sent = self._writev(chunks)
        self.written += total
        self.parts += 1
        self._marks.append((self.written, received_ns))
        if sent == total:
            return True
        self._transport.writelines(_rest(chunks, sent))
        return False

    def write_stream(self, chunks: Sequence[Payload]) -> int:
        """Write a byte stream's chunks in order, zero-copy; return the bytes left buffered.

        For byte streams (MPEG-2, audio) whose lag the hub's ``Cursor`` tracks: no frame
        marks. As much as the kernel takes goes straight in (``writev`` in batches of
        ``IOV_MAX``); the rest goes to the transport.
        """
        total = 0
        sent = 0
        direct = self._fd >= 0 and not self._transport.get_write_buffer_size()
        for start in range(0, len(chunks), IOV_MAX):
            batch = chunks[start : start + IOV_MAX]
            size = sum(len(c) for c in batch)
            total += size
            if not direct:
                continue
            n = self._writev(batch)
            sent += n
            direct = n == size
        if sent < total:
            self._transport.writelines(_rest(chunks, sent))
        self.written += total
        return total - sent

    def limit_send_buffer(self, size: int) -> None:
        """Set the kernel send buffer (``SO_SNDBUF``): bytes there cannot be recalled."""
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            except OSError:
                pass  # not a TCP socket (tests); the default buffer stays

    def queued(self) -> int:
        """Return bytes written but not yet taken by the peer: transport plus SIOCOUTQ."""
        return self.buffered() + self.kernel_queued()

    def can_send(self) -> bool:
        """Return True if ``send`` may write now: open, plain socket, nothing buffered."""
        transport = self._transport
        return (
            self._fd >= 0 and not transport.is_closing() and not transport.get_write_buffer_size()
        )

    def _writev(self, chunks: Sequence[Payload]) -> int:
        """Write what the kernel takes now, zero-copy; raise ConnectionResetError if gone."""
        try:
            return os.writev(self._fd, chunks)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self._transport.abort()
            raise ConnectionResetError(f"client went away: {exc}") from exc

    def buffered(self) -> int:
        """Return bytes the transport still holds (the gateway's own queue)."""
        return self._transport.get_write_buffer_size()

    def kernel_queued(self) -> int:
        """Return bytes in the kernel send queue not yet acknowledged (SIOCOUTQ)."""
        if self._fd < 0 or self._transport.is_closing():
            return 0
        try:
            # TIOCOUTQ is SIOCOUTQ on Linux: unacknowledged bytes in the send queue.
            fcntl.ioctl(self._fd, termios.TIOCOUTQ, self._outq, True)
        except OSError:
            return 0
        return self._outq[0]

    def lag_ns(self) -> int:
        """Return how far the client is behind live, kernel queue included.

        The client's position is the oldest frame whose bytes it has not all taken
        (gateway buffer plus SIOCOUTQ); lag is that frame's age, 0 when all is taken.
        """
        delivered = self.written - self.buffered() - self.kernel_queued()
        marks = self._marks
        while marks and marks[0][0] <= delivered:
            marks.popleft()
        return self._clock() - marks[0][1] if marks else 0

    async def drained(self, within: float) -> bool:
        """Wait until the transport buffer is empty; False if still full after ``within`` s."""
        if not self.buffered() or self._transport.is_closing():
            return True
        if self._drain is None or self._drain.done():
            self._drain = asyncio.ensure_future(self._writer.drain())
        # Never cancel aiohttp's drain (it keeps the waiter): wait on it with a timeout.
        done, _ = await asyncio.wait([self._drain], timeout=max(within, 0.0))
        if done:
            self._drain.result()
            return True
        return False

    def close(self) -> None:
        """Drop the connection now (deadline passed); nothing more is written."""
        if self._drain is not None and not self._drain.done():
            self._drain.cancel()
        self._transport.abort()


def _rest(chunks: Sequence[Payload], sent: int) -> list[Payload]:
    """Return what is left of ``chunks`` after the first ``sent`` bytes."""
    rest: list[Payload] = []
    for chunk in chunks:
        if sent >= len(chunk):
            sent -= len(chunk)
            continue
        rest.append(memoryview(chunk)[sent:] if sent else chunk)
        sent = 0
    return rest
