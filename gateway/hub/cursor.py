"""One client's position in a :class:`~gateway.hub.ring.Ring`: its frames, or their bytes.

A cursor hands out whole frames, zero-copy, in two views sharing position, lag and cuts:
``take`` gives the bytes of a contiguous stream (MPEG-2, audio), where the first frame
after every join (the start, or a cut) is its cut point's ``join`` bytes; ``take_frames``
gives ``Delivery`` records (fMP4, LL-HLS, WebRTC), where a joined frame tells the reader
to send codec configuration first. After a join the leading pictures of an open GOP are
skipped, so what the client gets always decodes. ``check`` (bytes the peer has not
taken) or ``check_frames`` (frames) tell how far behind live the client really is,
kernel send queue included, and cut it forward if too far (DESIGN §6 maxlag).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.errors import LocalProtocolError
from gateway.hub.budget import Priority
from gateway.hub.delivery import Delivery, FpsWindow, Inflight
from gateway.hub.membership import Membership
from gateway.media import Frame, Payload

if TYPE_CHECKING:
    from gateway.hub.ring import Ring

#: VAPIX §5.3.1: "Values lower than 500 will be interpreted as 500" (ms).
MIN_MAXLAG_NS = 500_000_000


class Cursor(Membership):
    """One client's read position in a ring; use as a (async) context manager.

    Leaving the ``with`` block, however it is left, removes the cursor from the ring.
    """

    __slots__ = (
        "_closed",
        "_connection",
        "_deliver",
        "_fps",
        "_inflight",
        "_join",
        "_parked",
        "_pos",
        "_pos_off",
        "_ring",
        "_skip_leading",
        "_waiting",
        "bytes",
        "cuts",
        "delivered",
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
        self._pos_off = ring.offset(pos)
        self._connection = ring.connection_start
        self._join = True
        self._skip_leading = False
        self._inflight = Inflight()
        self._fps = FpsWindow()
        self._closed = False
        self._waiting = False
        self._deliver: Callable[[], bool] | None = None
        self._parked: asyncio.Future[None] | None = None
        #: ``maxlag`` in ns, clamped to at least 500 ms; None: bounded by bytes instead.
        self.maxlag_ns = None if maxlag_ns is None else max(maxlag_ns, MIN_MAXLAG_NS)
        #: Bytes the client may be behind (pending + kernel queued) without ``maxlag``.
        self.max_buffer_bytes = max_buffer_bytes
        #: Endpoint kind for the API (``mpeg2``, ``audio``), caller supplied.
        self.kind = kind
        #: Peer address for the API, caller supplied.
        self.remote = remote
        #: Frames handed out by ``take`` or ``take_frames``.
        self.delivered = 0
        #: Bytes handed out (``take``), or those of the frames handed out (their joins
        #: counted instead of their payloads).
        self.bytes = 0
        #: Frames never handed out: dropped by cuts, leading pictures after a join.
        self.skipped = 0
        #: Bytes of frames dropped by cuts.
        self.dropped_bytes = 0
        #: Times the client was cut forward to the newest cut point.
        self.cuts = 0
        #: Lag behind live at the last ``check``, kernel send queue included.
        self.lag_ns = 0
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
        self._ring.discard(self)
        self._unpark()
        if self._waiting:
            self._ring.wake_waiters()

    @property
    def closed(self) -> bool:
        """Return True once the cursor is closed (the ring may be closed but not drained)."""
        return self._closed

    @property
    def position(self) -> int:
        """Return the ring position of the next frame to hand out."""
        return self._pos

    @property
    def delivered_fps(self) -> float:
        """Return frames handed out per second of wall time, over the last ~2 s of checks."""
        return self._fps.fps

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
            fut = ring.wait_for(cut=self._join)
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

        ``deliver()`` runs inside ``Ring.publish``: it takes what is pending (``take``,
        ``take_frames``) and writes it without waiting; it returns True to go on
        receiving frames this way, False to hand the client back to its coroutine
        (``wait`` returns). It must not raise or wait. None removes it.
        """
        self._deliver = deliver

    async def _park(self) -> None:
        fut = self._parked = asyncio.get_running_loop().create_future()
        self._ring.arm(self._offer)
        try:
            await fut
        finally:
            self._ring.disarm(self._offer)
            self._parked = None

    def _offer(self) -> None:
        """Hand a just-published frame to the synchronous writer (the ring's listener)."""
        deliver = self._deliver
        if self._ring.closed or deliver is None or not deliver():
            self._unpark()

    def _unpark(self) -> None:
        self._ring.disarm(self._offer)
        fut = self._parked
        if fut is not None and not fut.done():
            fut.set_result(None)

    def take(self, max_bytes: int) -> list[Payload]:
        """Hand out the bytes of the next whole frames, up to ``max_bytes`` (at least one).

        Each item is a frame's payload, or after a join its ``join_payload``, zero-copy.
        """
        frames, joined = self._take(max_bytes, sys.maxsize)
        out: list[Payload] = [frame.payload for frame in frames]
        if joined:
            out[0] = frames[0].join_payload  # only the first frame can be a join
        return out

    def take_frames(self, max_frames: int, *, max_bytes: int = sys.maxsize) -> list[Delivery]:
        """Hand out the next whole frames as ``Delivery``s: up to ``max_frames`` (>= 1) and
        ``max_bytes`` of their data (at least one frame if any is pending)."""
        if max_frames < 1:
            raise LocalProtocolError(f"max_frames must be >= 1, got {max_frames}")
        frames, joined = self._take(max_bytes, max_frames)
        return [Delivery(frame, joined and i == 0) for i, frame in enumerate(frames)]

    def request_keyframe(self) -> None:
        """Ask the ring's producer for a keyframe (a no-op for camera streams, or closed)."""
        if not self._closed:
            self._ring.request_keyframe()

    def _take(self, max_bytes: int, max_frames: int) -> tuple[list[Frame], bool]:
        """Advance over the next frames within the bounds; True if the first one is a join."""
        if self._closed:
            return [], False
        self._sync()
        ring = self._ring
        frames: list[Frame] = []
        joined = False
        total = 0
        end = ring.next_seq
        inflight = self._inflight
        # Joins are set in _sync only, so only the first frame can be one.
        while self._pos < end and len(frames) < max_frames:
            frame = ring.frame_at(self._pos)
            if self._skip_leading:
                if frame.leading:
                    self._pass(frame.size)
                    continue
                self._skip_leading = False
            n = len(frame.join_payload) if self._join else frame.size
            if frames and total + n > max_bytes:
                break
            if self._join:
                self._join = False
                joined = True
                cut = frame.cut
                # Leading B-pictures reference the GOP before the join (ISO/IEC 13818-2).
                self._skip_leading = cut is not None and not cut.closed_gop
            frames.append(frame)
            total += n
            inflight.add(n, frame.received_ns)
            self._pos += 1
            self._pos_off += frame.size
        self.delivered += len(frames)
        self.bytes += total
        return frames, joined

    def check(self, queued: int, now_ns: int) -> bool:
        """Account what the peer has taken, record the lag, cut if too far behind.

        ``queued`` is how many handed-out bytes the peer has not received yet: the
        kernel send queue (SIOCOUTQ) plus whatever the endpoint still buffers.
        ``now_ns`` is ``time.monotonic_ns()``. Returns True if the cursor was cut.
        """
        cut = self._sync()
        queued = max(queued, 0)
        self._inflight.ack_bytes(queued)
        return self._judge(queued, now_ns) or cut

    def check_frames(self, unacked: int, now_ns: int) -> bool:
        """Like ``check``, for frame readers: ``unacked`` handed-out frames not yet sent.

        ``unacked`` counts the newest handed-out frames the peer has not received yet
        (queued for a WebRTC sender, or in an fMP4 fragment still in the send queue).
        Returns True if the cursor was cut: the next frame handed out is a join.
        """
        cut = self._sync()
        queued = self._inflight.ack_frames(max(unacked, 0))
        return self._judge(queued, now_ns) or cut

    # -- internals -------------------------------------------------------------------

    def _judge(self, queued: int, now_ns: int) -> bool:
        """Record the lag from the oldest unacknowledged frame; cut if over the bound."""
        ring = self._ring
        newest = ring.newest
        if newest is None:
            lag = 0
        else:
            oldest_ns = self._inflight.oldest_ns
            if oldest_ns is None:
                pending = ring.get(self._pos)
                oldest_ns = newest.received_ns if pending is None else pending.received_ns
            lag = max(newest.received_ns - oldest_ns, 0)
        self.lag_ns = lag
        self._fps.update(self.delivered, now_ns)
        if self.maxlag_ns is not None:
            over = lag > self.maxlag_ns
        else:
            over = ring.offset(ring.next_seq) - self._pos_off + queued > self.max_buffer_bytes
        target = ring.newest_cut
        # Only forward to a newer GOP than the one being read: a client reading the
        # newest GOP already is as close to live as a cut can bring it.
        if over and target is not None and target > self._pos:
            self._cut_to(target)
            return True
        return False

    def _sync(self) -> bool:
        """Catch up with the ring (reconnects, eviction, joins, leading); True on a cut."""
        ring = self._ring
        if ring.connection_start != self._connection:
            # A new upstream connection: drop what is pending of the old one, join again.
            self._connection = ring.connection_start
            self._pass_to(self._connection)
            self._join, self._skip_leading = True, False
        cut = False
        if self._pos < ring.first_seq:
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
                frame = ring.frame_at(self._pos)
                if not frame.leading:
                    self._skip_leading = False
                    break
                self._pass(frame.size)
        return cut

    def _seek_cut(self) -> None:
        ring = self._ring
        target = ring.cut_at_or_after(self._pos)
        self._pass_to(ring.next_seq if target is None else target)

    def _cut_to(self, target: int) -> None:
        self.cuts += 1
        self.dropped_bytes += self._ring.offset(target) - self._pos_off
        self._pass_to(target)
        self._join, self._skip_leading = True, False

    def _pass_to(self, target: int) -> None:
        if target > self._pos:
            if self.delivered or self.cuts:
                # Frames passed before the first join were never due to this client.
                self.skipped += target - self._pos
            self._pos = target
            self._pos_off = self._ring.offset(target)

    def _pass(self, size: int) -> None:
        self.skipped += 1
        self._pos += 1
        self._pos_off += size

    def snapshot(self) -> dict[str, object]:
        """Return the ``/api/cameras`` client object (DESIGN §5)."""
        newest = self._ring.newest
        if newest is not None:
            self._fps.expire(newest.received_ns)
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
            "stream": self._ring.label,
        }
