"""One client's subscription to a stream: a latest-wins slot and its counters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.errors import LocalProtocolError
from gateway.hub.budget import Priority
from gateway.hub.membership import Membership
from gateway.hub.rate import RateSelector
from gateway.media import NS_PER_SECOND, Frame

if TYPE_CHECKING:
    from gateway.hub.stream import Stream

#: Source time over which ``delivered_fps`` is measured.
_FPS_WINDOW_NS = 2 * NS_PER_SECOND


class Subscription(Membership):
    """One client's view of a stream; use as a (async) context manager.

    Leaving the ``with`` block, however it is left, removes the subscription.
    """

    __slots__ = (
        "_closed",
        "_deliver",
        "_every",
        "_fps_count",
        "_fps_start",
        "_selector",
        "_slot",
        "_slot_ts",
        "_stream",
        "_waiter",
        "allowed_fps",
        "cuts",
        "delivered",
        "delivered_fps",
        "kind",
        "lag_ns",
        "priority",
        "remote",
        "skipped",
        "target_fps",
    )

    def __init__(
        self,
        stream: Stream,
        *,
        target_fps: float | None,
        priority: Priority,
        kind: str,
        remote: str,
    ) -> None:
        self._stream = stream
        self._selector = RateSelector(target_fps)
        #: Every frame is due (no target): the selector need not be asked.
        self._every = target_fps is None
        self._slot: Frame | None = None
        self._slot_ts = 0
        self._waiter: asyncio.Future[None] | None = None
        self._deliver: Callable[[Frame], bool] | None = None
        self._closed = False
        self._fps_start: int | None = None
        self._fps_count = 0
        #: What the client asked for (None: the source rate).
        self.target_fps = target_fps
        #: REQUIRED for ``req_fps``, DESIRED for ``des_fps``/unspecified.
        self.priority = priority
        #: Endpoint kind for the API (``mjpeg``, ``jpeg``, ``mpeg2``...), caller supplied.
        self.kind = kind
        #: Peer address for the API, caller supplied.
        self.remote = remote
        #: Rate the egress budget allows (None: unlimited).
        self.allowed_fps: float | None = None
        #: Frames handed out by ``next``/``poll``.
        self.delivered = 0
        #: Due frames replaced in the slot before the client took them (it was behind).
        self.skipped = 0
        #: Times the endpoint dropped queued data to catch up (``maxlag``).
        self.cuts = 0
        #: Lag behind live as last reported by the endpoint (``record_lag``).
        self.lag_ns = 0
        #: Delivered frames per second of source time, over the last ~2 s.
        self.delivered_fps = 0.0

    # -- leaving ------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the stream and release the pending frame; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._slot = None
        self._wake()
        self._stream._remove(self)

    @property
    def closed(self) -> bool:
        """Return True once the subscription or its stream is closed."""
        return self._closed or self._stream.closed

    # -- taking frames ---------------------------------------------------------------

    @property
    def pending(self) -> Frame | None:
        """Return the frame waiting in the slot, without taking it."""
        return self._slot

    def poll(self) -> Frame | None:
        """Take the pending frame if there is one; never waits."""
        frame = self._slot
        if frame is None:
            return None
        self._slot = None
        self._count(self._slot_ts)
        return frame

    async def next(self) -> Frame | None:
        """Wait for the next frame due to this client; None once closed."""
        while True:
            frame = self.poll()
            if frame is not None:
                return frame
            if self.closed:
                return None
            await self.wait()

    async def wait(self) -> None:
        """Wait until a frame is pending, the subscription is closed, or ``wake`` is called."""
        if self._slot is not None or self.closed:
            return
        if self._waiter is not None:
            raise LocalProtocolError("next() is already being awaited on this subscription")
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def wake(self) -> None:
        """Make a pending ``wait`` return (``next`` goes on waiting for a frame)."""
        self._wake()

    def set_deliver(self, deliver: Callable[[Frame], bool] | None) -> None:
        """Register a synchronous taker of due frames (None: remove it).

        When a frame is due and the slot is empty, ``publish`` calls ``deliver(frame)``
        instead of filling the slot: True means it took the frame (counted as delivered,
        nothing is woken), False puts the frame in the slot as usual. It must not wait,
        must not raise, and must not call back into the stream.
        """
        self._deliver = deliver

    # -- endpoint feedback -----------------------------------------------------------

    def set_target(self, target_fps: float | None, priority: Priority | None = None) -> None:
        """Change the requested rate (and priority) of this client."""
        self.target_fps = target_fps
        if priority is not None:
            self.priority = priority
        self._apply_allowed()
        self._stream._changed()

    def set_allowed_fps(self, fps: float | None) -> None:
        """Apply the egress budget's allocation: at most ``fps`` (None: unlimited)."""
        self.allowed_fps = fps
        self._apply_allowed()

    def record_lag(self, lag_ns: int) -> None:
        """Report the client's lag behind live, kernel send queue included."""
        self.lag_ns = lag_ns

    def record_cut(self) -> None:
        """Count a ``maxlag`` cut (queued data dropped, resumed at the newest frame)."""
        self.cuts += 1

    @property
    def effective_fps(self) -> float | None:
        """Return the rate the selector currently delivers (None: every frame)."""
        return self._selector.target_fps

    def snapshot(self) -> dict[str, object]:
        """Return the ``/api/cameras`` client object (DESIGN §5)."""
        return {
            "kind": self.kind,
            "remote": self.remote,
            "target_fps": self.target_fps,
            "priority": self.priority.value,
            "delivered_fps": round(self.delivered_fps, 2),
            "skipped": self.skipped,
            "lag_ms": self.lag_ns // 1_000_000,
            "cuts": self.cuts,
            "delivered": self.delivered,
            "allowed_fps": None if self.allowed_fps is None else round(self.allowed_fps, 2),
            "stream": self._stream.kind.value,
        }

    # -- hub side --------------------------------------------------------------------

    def _offer(self, frame: Frame, ts: int, interval_ns: int | None) -> None:
        due = self._every or self._selector.offer(ts, interval_ns)
        if self._slot is not None:
            # Behind: the slot always holds the newest frame, never a backlog.
            if due:
                self.skipped += 1
        elif not due:
            return
        else:
            deliver = self._deliver
            if deliver is not None and deliver(frame):
                start = self._fps_start
                if start is not None and start <= ts < start + _FPS_WINDOW_NS:
                    self.delivered += 1  # ``_count``'s common case, inlined for the fast path
                    self._fps_count += 1
                else:
                    self._count(ts)
                return
        self._slot = frame
        self._slot_ts = ts
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _apply_allowed(self) -> None:
        target, allowed = self.target_fps, self.allowed_fps
        if allowed is not None and (target is None or allowed < target):
            target = allowed
        self._selector.target_fps = target
        self._every = target is None

    def _count(self, ts: int) -> None:
        self.delivered += 1
        start = self._fps_start
        if start is None or ts < start:
            self._fps_start, self._fps_count = ts, 1
            return
        if ts - start >= _FPS_WINDOW_NS:
            self.delivered_fps = self._fps_count * NS_PER_SECOND / (ts - start)
            self._fps_start, self._fps_count = ts, 0
        self._fps_count += 1

    def _refresh_fps(self, live_ts: int) -> None:
        # A client that took nothing for two windows of source time is delivering 0 fps.
        start = self._fps_start
        if start is not None and live_ts - start >= 2 * _FPS_WINDOW_NS:
            self.delivered_fps = 0.0
