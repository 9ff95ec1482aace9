"""What a ring cursor hands out (``Delivery``), and what it remembers of it: lag and rate.

A cursor remembers, for every frame it hands out, which bytes of the client's stream it
became and when it arrived from the camera. The endpoint reports what the peer has not
taken yet (bytes for a byte stream, frames for a frame reader); the oldest frame still
unacknowledged then says how far behind live the client really is, kernel send queue
included (DESIGN §6 maxlag). Nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from gateway.media import NS_PER_SECOND, Frame, Payload

#: Wall time over which ``FpsWindow.fps`` is measured.
FPS_WINDOW_NS = 2 * NS_PER_SECOND


@dataclass(frozen=True, slots=True)
class Delivery:
    """One frame a cursor hands out, and whether the client joins the stream at it."""

    #: The frame as published (its payload is never replaced).
    frame: Frame
    #: The first frame after a join (the start, or a cut forward): nothing sent before
    #: continues into it, so the client is sent what ``frame.cut`` says first (its
    #: ``config``, or ``join_payload`` instead of the payload). ``frame.cut`` is None only
    #: on rings where every frame is a cut point (audio parts).
    joined: bool

    @property
    def data(self) -> Payload:
        """Return the bytes of a byte-stream client: the join bytes if joined, else the payload."""
        return self.frame.join_payload if self.joined else self.frame.payload


class Inflight:
    """The handed-out frames a client has not received yet, oldest first."""

    __slots__ = ("_items", "sent")

    def __init__(self, *, max_items: int = 8192) -> None:
        """Create an empty record.

        Beyond ``max_items`` the oldest frames are forgotten (an endpoint that never
        acknowledges anything), which can only make the lag read low.
        """
        #: (stream bytes before, after, ``received_ns``) of each unacknowledged frame.
        self._items: deque[tuple[int, int, int]] = deque(maxlen=max_items)
        #: Bytes handed out so far: the client's stream offset.
        self.sent = 0

    def add(self, size: int, received_ns: int) -> None:
        """Record a frame handed out as ``size`` bytes of the stream."""
        sent = self.sent
        self._items.append((sent, sent + size, received_ns))
        self.sent = sent + size

    def ack_bytes(self, queued: int) -> None:
        """Forget the frames whose bytes are all taken: ``queued`` bytes are not (>= 0)."""
        acked = self.sent - queued
        items = self._items
        while items and items[0][1] <= acked:
            items.popleft()

    def ack_frames(self, unacked: int) -> int:
        """Forget all but the newest ``unacked`` frames (>= 0); return their bytes."""
        items = self._items
        while len(items) > unacked:
            items.popleft()
        return self.sent - items[0][0] if items else 0

    @property
    def oldest_ns(self) -> int | None:
        """Return ``received_ns`` of the oldest unacknowledged frame, or None."""
        return self._items[0][2] if self._items else None


class FpsWindow:
    """Frames handed out per second of wall time, measured over ~2 s windows."""

    __slots__ = ("_count", "_start", "fps")

    def __init__(self) -> None:
        self._start: int | None = None
        self._count = 0
        #: The rate over the last complete window.
        self.fps = 0.0

    def update(self, delivered: int, now_ns: int) -> None:
        """Account ``delivered`` (a running total of frames) at ``now_ns``."""
        start = self._start
        if start is None or now_ns < start:
            self._start, self._count = now_ns, delivered
        elif now_ns - start >= FPS_WINDOW_NS:
            self.fps = (delivered - self._count) * NS_PER_SECOND / (now_ns - start)
            self._start, self._count = now_ns, delivered

    def expire(self, live_ns: int) -> None:
        """Read 0 fps if nothing was accounted for two windows before ``live_ns``."""
        # An endpoint blocked on a stalled peer stops accounting: it delivers 0 fps.
        start = self._start
        if start is not None and live_ns - start >= 2 * FPS_WINDOW_NS:
            self.fps = 0.0
