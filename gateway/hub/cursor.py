"""One client's position in a :class:`~gateway.hub.ring.Ring`: a contiguous byte stream.

A cursor hands out whole frames, zero-copy, from its position on; after every join
(the start, or a cut) the first frame is sent as its cut point's ``join`` bytes and the
leading pictures of an open GOP are skipped, so what the client gets always decodes.
It remembers which frame each handed-out byte came from, so ``check`` can tell how
far behind live the client really is, kernel send queue included (DESIGN §6 maxlag).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.hub.budget import Priority
from gateway.hub.membership import Membership
from gateway.media import NS_PER_SECOND, Payload

if TYPE_CHECKING:
    from gateway.hub.ring import Ring

#: VAPIX §5.3.1: "Values lower than 500 will be interpreted as 500" (ms).
MIN_MAXLAG_NS = 500_000_000
#: Wall time over which ``delivered_fps`` is measured.
_FPS_WINDOW_NS = 2 * NS_PER_SECOND
#: Handed-out frames remembered for lag; beyond this the oldest are forgotten (an
#: endpoint that never calls ``check``), which can only make the lag read low.
_MAX_INFLIGHT = 8192


class Cursor(Membership):
    """One client's read position in a ring; use as a (async) context manager.

    Leaving the ``with`` block, however it is left, removes the cursor from the ring.
    """

    __slots__ = (
        "_closed",
        "_deliver",
        "_fps_count",
        "_fps_start",
        "_inflight",
        "_join",
        "_parked",
        "_pos",
        "_pos_off",
        "_ring",
        "_sent",
        "_skip_leading",
        "_waiting",
        "bytes",
        "cuts",
        "delivered",
        "delivered_fps",
        "dropped_bytes",
        "kind",
        "lag_ns",
        "max_buffer_bytes",
        "maxlag_ns",
        "provided_ns",
        "remote",
        "skipped",
        "start_ns",
    )

    def __init__(
        self,
        ring: Ring,
        pos: int,
        *,
        maxlag_ns: int | None,
        max_buffer_bytes: int,
        kind: str,
        remote: str,
    ) -> None:
        self._ring = ring
        self._pos = pos
        self._pos_off = ring._offset(pos)
        self._join = True
        self._skip_leading = False
        self._sent = 0
        self._inflight: deque[tuple[int, int]] = deque(maxlen=_MAX_INFLIGHT)
        self._closed = False
        self._waiting = False
        self._deliver: Callable[[], bool] | None = None
        self._parked: asyncio.Future[None] | None = None
        self._fps_start: int | None = None
        self._fps_count = 0
        #: ``maxlag`` in ns, clamped to at least 500 ms; None: bounded by bytes instead.
        self.maxlag_ns = None if maxlag_ns is None else max(maxlag_ns, MIN_MAXLAG_NS)
        #: Bytes the client may be behind (pending + kernel queued) without ``maxlag``.
        self.max_buffer_bytes = max_buffer_bytes
        #: Endpoint kind for the API (``mpeg2``, ``audio``), caller supplied.
        self.kind = kind
        #: Peer address for the API, caller supplied.
        self.remote = remote
        #: Frames handed out by ``take``.
        self.delivered = 0
        #: Bytes handed out by ``take``.
        self.bytes = 0
        #: Frames never handed out: dropped by cuts, leading pictures after a join.
        self.skipped = 0
        #: Bytes of frames dropped by cuts.
        self.dropped_bytes = 0
        #: Times the client was cut forward to the newest cut point.
        self.cuts = 0
        #: Lag behind live at the last ``check``, kernel send queue included.
        self.lag_ns = 0
        #: Frames handed out per second of wall time, over the last ~2 s of ``check``.
        self.delivered_fps = 0.0
        self._seek_cut()
        start = ring.get(self._pos)
        newest = ring.newest
        #: ``received_ns`` of the frame the cursor started at (None: it waits for one).
        self.start_ns = None if start is None else start.received_ns
        #: How far behind the newest frame it started: ``X-Prebuffer-Length``.
        self.provided_ns = (
            0 if start is None or newest is None else newest.received_ns - start.received_ns
        )

    # -- leaving ------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the ring; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._ring._remove(self)
        self._unpark()
        if self._waiting:
            self._ring._wake_all()

    @property
    def closed(self) -> bool:
        """Return True once the cursor is closed (the ring may be closed but not drained)."""
        return self._closed

    @property
    def position(self) -> int:
        """Return the ring position of the next frame to hand out."""
        return self._pos

    # -- reading ---------------------------------------------------------------------

    async def wait(self) -> bool:
        """Wait until a frame is pending; return False once closed (or ring closed, drained).

        With a synchronous writer set (``set_deliver``) and no join pending, the cursor
        parks instead: ``publish`` hands new frames to the writer, and ``wait`` returns
        True only when the writer hands the client back (or the cursor or ring closes).
        """
        ring = self._ring
        while True:
            if self._closed:
                return False
            self._sync()
            if self._pos < ring.next_seq:
                return True
            if ring.closed:
                return False
            if self._deliver is not None and not self._join:
                await self._park()
                if self._ring.closed:  # closed while parked (not ``ring``: mypy narrowed it)
                    continue  # drain what is pending, then False
                return not self._closed
            fut = ring._future(cut=self._join)
            self._waiting = True
            try:
                await fut
            except asyncio.CancelledError:
                # Every waiter shares fut, so another waiter's cancellation cancels it
                # too; only re-raise if this task is the one being cancelled.
                task = asyncio.current_task()
                if not fut.cancelled() or task is None or task.cancelling():
                    raise
            finally:
                self._waiting = False

    def set_deliver(self, deliver: Callable[[], bool] | None) -> None:
        """Register a synchronous writer for the frames published while ``wait`` is parked.

        ``deliver()`` runs inside ``Ring.publish``: it takes what is pending (``take``)
        and writes it without waiting; it returns True to go on receiving frames this
        way, False to hand the client back to its coroutine (``wait`` returns). It must
        not raise or wait. None removes it.
        """
        self._deliver = deliver

    async def _park(self) -> None:
        fut = self._parked = asyncio.get_running_loop().create_future()
        self._ring._armed[self] = None
        try:
            await fut
        finally:
            self._ring._armed.pop(self, None)
            self._parked = None

    def _offer(self) -> None:
        """Hand a just-published frame to the synchronous writer (ring side)."""
        deliver = self._deliver
        if deliver is None or not deliver():
            self._unpark()

    def _unpark(self) -> None:
        self._ring._armed.pop(self, None)
        fut = self._parked
        if fut is not None and not fut.done():
            fut.set_result(None)

    def take(self, max_bytes: int) -> list[Payload]:
        """Hand out the next whole frames, up to ``max_bytes`` (at least one if pending)."""
        if self._closed:
            return []
        self._sync()
        ring = self._ring
        out: list[Payload] = []
        total = 0
        end = ring.next_seq
        inflight = self._inflight
        while self._pos < end:
            frame = ring._frames[self._pos - ring._first]
            if self._skip_leading:
                if frame.leading:
                    self._pass(frame.size)
                    continue
                self._skip_leading = False
            cut = frame.cut if self._join else None
            data = frame.payload if cut is None else cut.join
            n = len(data)
            if out and total + n > max_bytes:
                break
            if self._join:
                self._join = False
                # Leading B-pictures reference the GOP before the join (ISO/IEC 13818-2).
                self._skip_leading = cut is not None and not cut.closed_gop
            out.append(data)
            total += n
            self._sent += n
            inflight.append((self._sent, frame.received_ns))
            self._pos += 1
            self._pos_off += frame.size
        self.delivered += len(out)
        self.bytes += total
        return out

    def check(self, queued: int, now_ns: int) -> bool:
        """Account what the peer has taken, record the lag, cut if too far behind.

        ``queued`` is how many handed-out bytes the peer has not received yet: the
        kernel send queue (SIOCOUTQ) plus whatever the endpoint still buffers.
        ``now_ns`` is ``time.monotonic_ns()``. Returns True if the cursor was cut.
        """
        cut = self._sync()
        ring = self._ring
        queued = max(queued, 0)
        acked = self._sent - queued
        inflight = self._inflight
        while inflight and inflight[0][0] <= acked:
            inflight.popleft()
        newest = ring.newest
        if newest is None:
            lag = 0
        else:
            if inflight:
                oldest_ns = inflight[0][1]
            else:
                pending = ring.get(self._pos)
                oldest_ns = newest.received_ns if pending is None else pending.received_ns
            lag = max(newest.received_ns - oldest_ns, 0)
        self.lag_ns = lag
        self._count_fps(now_ns)
        if self.maxlag_ns is not None:
            over = lag > self.maxlag_ns
        else:
            over = ring._total - self._pos_off + queued > self.max_buffer_bytes
        target = ring.newest_cut
        # Only forward to a newer GOP than the one being read: a client reading the
        # newest GOP already is as close to live as a cut can bring it.
        if over and target is not None and target > self._pos:
            self._cut_to(target)
            return True
        return cut

    # -- internals -------------------------------------------------------------------

    def _sync(self) -> bool:
        """Catch up with the ring: evicted position, joins, leading frames; True on a cut."""
        ring = self._ring
        cut = False
        if self._pos < ring._first:
            # Fell out of the ring (stalled for longer than it holds): resume at the newest
            # cut point. A cursor still looking for its join point is not cut, just moved.
            target = ring.newest_cut
            target = ring.next_seq if target is None else target
            if self._join:
                self._pass_to(target)
            else:
                self._cut_to(target)
                cut = True
        if self._join:
            self._seek_cut()
        elif self._skip_leading:
            end = ring.next_seq
            while self._pos < end:
                frame = ring._frames[self._pos - ring._first]
                if not frame.leading:
                    self._skip_leading = False
                    break
                self._pass(frame.size)
        return cut

    def _rejoin(self, seq: int) -> None:
        """Drop what is pending before ``seq`` and join again at a cut point from there."""
        self._pass_to(seq)
        self._join = True
        self._skip_leading = False

    def _seek_cut(self) -> None:
        ring = self._ring
        target = ring._cut_at_or_after(self._pos)
        self._pass_to(ring.next_seq if target is None else target)

    def _cut_to(self, target: int) -> None:
        self.cuts += 1
        self.dropped_bytes += self._ring._offset(target) - self._pos_off
        self._pass_to(target)
        self._join = True
        self._skip_leading = False

    def _pass_to(self, target: int) -> None:
        if target > self._pos:
            if self.delivered or self.cuts:
                # Frames passed before the first join were never due to this client.
                self.skipped += target - self._pos
            self._pos = target
            self._pos_off = self._ring._offset(target)

    def _pass(self, size: int) -> None:
        self.skipped += 1
        self._pos += 1
        self._pos_off += size

    def _count_fps(self, now_ns: int) -> None:
        start = self._fps_start
        if start is None or now_ns < start:
            self._fps_start, self._fps_count = now_ns, self.delivered
        elif now_ns - start >= _FPS_WINDOW_NS:
            frames = self.delivered - self._fps_count
            self.delivered_fps = frames * NS_PER_SECOND / (now_ns - start)
            self._fps_start, self._fps_count = now_ns, self.delivered

    def _refresh_fps(self, live_ns: int) -> None:
        # An endpoint blocked on a stalled peer stops calling check: it delivers 0 fps.
        start = self._fps_start
        if start is not None and live_ns - start >= 2 * _FPS_WINDOW_NS:
            self.delivered_fps = 0.0

    def snapshot(self) -> dict[str, object]:
        """Return the ``/api/cameras`` client object (DESIGN §5)."""
        return {
            "kind": self.kind,
            "remote": self.remote,
            "target_fps": None,
            "priority": Priority.REQUIRED.value,
            "delivered_fps": round(self.delivered_fps, 2),
            "skipped": self.skipped,
            "lag_ms": self.lag_ns // 1_000_000,
            "cuts": self.cuts,
            "delivered": self.delivered,
            "allowed_fps": None,
            "bytes": self.bytes,
            "dropped_bytes": self.dropped_bytes,
            "maxlag_ms": None if self.maxlag_ns is None else self.maxlag_ns // 1_000_000,
            "stream": self._ring.kind.value,
        }
