"""The egress loop shared by every byte-stream reader of a ring: a hub Cursor to a socket.

Each client is one coroutine: wait for the ring, take whole frames (zero-copy, at most
``MAX_TAKE`` bytes), turn them into the chunks of the output format (``wrap``: Axis
audio parts, fMP4 fragments; none for MPEG-2), ``writev`` them straight into the
kernel, and report what the peer has not taken yet (transport buffer plus SIOCOUTQ) to
``Cursor.check``, which makes the ``maxlag`` / ``client_buffer_bytes`` cuts (DESIGN §6).
The publish path only resolves the ring's shared future: it never waits for a client.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from aiohttp import web

from gateway.hub import Cursor, Delivery, Ring
from gateway.media import NS_PER_SECOND, Payload

from .egress import ClientEgress

#: Bytes handed to the socket per round: bounds what the gateway holds for one client.
MAX_TAKE = 256 * 1024
#: ``SO_SNDBUF`` for clients with ``maxlag``: bytes in the kernel cannot be recalled by
#: a cut, so keep that queue short (Linux doubles the value asked).
MAXLAG_SEND_BUFFER = 8 * 1024
#: Bytes per round for clients with ``maxlag``: what the transport may hold beyond the
#: kernel queue cannot be recalled either.
MAXLAG_TAKE = MAXLAG_SEND_BUFFER
#: Seconds between checks of a client that holds unsent data (lag, cuts, deadline).
POLL = 0.25
#: Nanoseconds between checks (SIOCOUTQ, lag, cuts) of a client the publish path writes to.
CHECK_EVERY_NS = 100_000_000
#: Seconds between checks of a client held back for being too far behind.
HOLD = 0.04

#: Turns the frames taken from the cursor into the chunks to write (part heads, boxes).
Wrap = Callable[[list[Delivery]], Sequence[Payload]]


class _RawResponse(web.StreamResponse):
    """A response whose body the endpoint writes to the socket itself (no chunking)."""

    # As for WebSockets: the body is not HTTP-framed by aiohttp; the connection closes.
    _length_check = False


async def open_body(
    request: web.Request, headers: Mapping[str, str]
) -> tuple[web.StreamResponse, ClientEgress | None]:
    """Send the response head; return the response and the socket side that writes the body.

    The body ends when the connection closes. The egress is None when the client is
    already gone.
    """
    response = _RawResponse(headers=headers)
    response.force_close()
    writer = await response.prepare(request)
    transport = request.transport
    if writer is None or transport is None or transport.is_closing():
        return response, None
    return response, ClientEgress(transport, writer)


def _data(deliveries: list[Delivery]) -> list[Payload]:
    return [d.data for d in deliveries]


def cursor_clients(ring: Ring, egress: Mapping[Cursor, ClientEgress]) -> list[dict[str, object]]:
    """Return the ``/api`` client entries of ``ring``, with each socket's queues."""
    entries = ring.snapshot()
    for cursor, entry in zip(ring, entries, strict=True):
        out = egress.get(cursor)
        if out is not None:
            entry["buffered_bytes"] = out.buffered()
            entry["kernel_queued_bytes"] = out.kernel_queued()
    return entries


class CursorPump:
    """Writes one cursor's byte stream to one client until it, the ring or ``duration`` ends."""

    __slots__ = (
        "_acked",
        "_checked_ns",
        "_clock",
        "_deadline_ns",
        "_loop",
        "_payload",
        "_progress_ns",
        "_queued",
        "_take",
        "cursor",
        "egress",
        "end",
        "wrap",
    )

    def __init__(
        self,
        cursor: Cursor,
        egress: ClientEgress,
        *,
        deadline: float,
        duration: float | None = None,
        wrap: Wrap = _data,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        """Drive ``cursor`` into ``egress``; a peer taking nothing for ``deadline`` s is closed."""
        self.cursor = cursor
        self.egress = egress
        self.wrap = wrap
        self._clock = clock
        self._deadline_ns = int(deadline * 1e9)
        loop = self._loop = asyncio.get_running_loop()
        #: Loop time at which ``duration`` ends (None: never).
        self.end = None if duration is None else loop.time() + duration
        #: Payload bytes written (the rest of ``egress.written`` is part heads).
        self._payload = 0
        self._acked = 0
        self._progress_ns = self._checked_ns = clock()
        #: Payload bytes the peer had not taken at the last check.
        self._queued = 0
        self._take = MAX_TAKE if cursor.maxlag_ns is None else MAXLAG_TAKE

    async def run(self) -> bool:
        """Stream until the end; True when ``duration`` ended it, False for the peer or ring.

        Clients without ``maxlag`` whose socket takes everything are written from the
        publish path (``deliver``): no wakeup per frame. Anything else (a short write, a
        backlog over its bound, the end) hands the client back to this loop.
        """
        cursor = self.cursor
        if cursor.maxlag_ns is None and self.egress.can_send():
            cursor.set_deliver(self.deliver)
        try:
            return await self._run()
        finally:
            cursor.set_deliver(None)

    def deliver(self) -> bool:
        """Write what the ring just published if the peer takes it whole; False: hand back."""
        egress = self.egress
        if not egress.can_send() or self._ended(self._loop):
            return False
        taken = self.cursor.take_frames(sys.maxsize, max_bytes=self._take)
        if taken:
            self._payload += sum(len(d.data) for d in taken)
            try:
                left = egress.write_stream(self.wrap(taken))
            except ConnectionError:
                return False  # the loop sees the transport closing and ends
            if left:
                return False
        now = self._clock()
        if now - self._checked_ns >= CHECK_EVERY_NS:
            return self._check() and not self._over()
        return True

    async def _run(self) -> bool:
        cursor, egress = self.cursor, self.egress
        loop = self._loop
        while True:
            if egress.closing:
                return False
            if egress.buffered() and not await self._drain(loop):
                return not egress.closing and self._ended(loop)
            timeout = None if self.end is None else self.end - loop.time()
            if timeout is not None and timeout <= 0:
                return True
            if self._over():
                # Bytes already sent cannot be recalled: send nothing more until the peer
                # took them, so the cursor falls behind and ``check`` cuts it forward.
                await asyncio.sleep(HOLD if timeout is None else min(HOLD, timeout))
                if not self._check():
                    return False
                continue
            if egress.kernel_queued():
                # Wake up now and then to notice a peer that stopped reading.
                timeout = POLL if timeout is None else min(timeout, POLL)
            try:
                async with asyncio.timeout(timeout):
                    more = await cursor.wait()
            except TimeoutError:
                if not self._check():
                    return False
                continue
            if not more:
                return False
            if not self._check() or egress.closing:
                return False
            taken = cursor.take_frames(sys.maxsize, max_bytes=self._take)
            if not taken:
                continue
            self._payload += sum(len(d.data) for d in taken)
            egress.write_stream(self.wrap(taken))
            if not self._check():
                return False

    def _ended(self, loop: asyncio.AbstractEventLoop) -> bool:
        return self.end is not None and loop.time() >= self.end

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Wait until the transport holds nothing; False if the peer or ``duration`` ended."""
        egress = self.egress
        while egress.buffered():
            if egress.closing or self._ended(loop):
                return False
            within = POLL if self.end is None else min(POLL, self.end - loop.time())
            await egress.drained(within)
            if not self._check():
                return False
        return not egress.closing

    def _check(self) -> bool:
        """Report the peer's backlog to the cursor (lag, cuts); False once it is closed.

        A peer that took nothing for the write deadline while data waited is closed.
        """
        egress = self.egress
        queued = egress.queued()
        now = self._checked_ns = self._clock()
        acked = egress.written - queued
        if not queued or acked > self._acked:
            self._acked = acked
            self._progress_ns = now
        elif now - self._progress_ns > self._deadline_ns:
            egress.close()
            return False
        written = egress.written
        if queued and written > self._payload:
            # The cursor counts payload bytes only: leave out the part heads' share.
            queued = queued * self._payload // written
        self._queued = queued
        self.cursor.check(queued, now)
        return True

    def _over(self) -> bool:
        """Return True if what the peer has not taken yet is over its bound."""
        if not self._queued:
            return False
        cursor = self.cursor
        if cursor.maxlag_ns is not None:
            return cursor.lag_ns > cursor.maxlag_ns
        return self._queued > cursor.max_buffer_bytes


#: A held keyframe at most this old is where a new viewer starts; an older one means
#: asking the encoder for an IDR (the viewer would otherwise start that far behind).
FRESH_KEYFRAME_NS = NS_PER_SECOND // 5


def keyframe_start(ring: Ring, now_ns: int) -> Literal["newest_cut"] | int:
    """Return where a new viewer of an encode starts: the newest keyframe if fresh, else
    the next IDR (asked of the encoder, which rate-limits it).

    Fresh is measured against ``now_ns`` (monotonic), not the ring's newest frame: an
    encode that idled without viewers holds old frames only.
    """
    cut = ring.newest_cut
    keyframe = None if cut is None else ring.get(cut)
    if keyframe is not None and now_ns - keyframe.received_ns <= FRESH_KEYFRAME_NS:
        return "newest_cut"
    ring.request_keyframe()
    return ring.next_seq


async def ready_within(cursor: Cursor, seconds: float) -> bool:
    """Return True once ``cursor`` has a frame to hand out, False after ``seconds`` or close."""
    try:
        async with asyncio.timeout(seconds):
            return await cursor.wait()
    except TimeoutError:
        return False


async def serve_cursor(
    request: web.Request,
    cursor: Cursor,
    headers: Mapping[str, str],
    *,
    clients: dict[Cursor, ClientEgress],
    deadline: float,
    duration: float | None = None,
    wrap: Wrap = _data,
) -> web.StreamResponse:
    """Send the response head, then ``cursor``'s stream until it, the client or time ends.

    ``clients`` maps each live cursor to its socket side, for the API; ``deadline`` is
    how long the peer may take nothing while data waits before it is closed.
    """
    response, egress = await open_body(request, headers)
    if egress is None:
        return response
    if cursor.maxlag_ns is not None:
        egress.limit_send_buffer(MAXLAG_SEND_BUFFER)
    clients[cursor] = egress
    try:
        pump = CursorPump(cursor, egress, deadline=deadline, duration=duration, wrap=wrap)
        await pump.run()
    except ConnectionError:
        pass  # the client left: leaving the cursor is all there is to do
    finally:
        clients.pop(cursor, None)
    return response
