"""Per camera stream fan-out: the newest frame and its subscriptions (latest-wins).

``Stream.publish`` is synchronous and touches one slot per subscriber (STYLE §3): a
subscription holds at most one undelivered frame, always the newest one it is due
(latest-wins), and its waiting task is woken through a future it created itself.
Nothing here reads a clock: rates are measured in source time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from gateway.errors import CapacityError, LocalProtocolError
from gateway.hub.budget import Demand, Priority
from gateway.hub.rate import IntervalEstimator, pts_ns
from gateway.hub.subscription import Subscription
from gateway.hub.tally import ClientTally
from gateway.media import Frame, StreamKind

if TYPE_CHECKING:
    from gateway.hub.egress import EgressBudget


class StreamFullError(CapacityError):
    """``subscribe`` was called on a stream (or ring) at its ``max_subscribers``."""


class Stream:
    """Fan-out point of one camera stream (one upstream connection)."""

    def __init__(
        self,
        kind: StreamKind,
        *,
        name: str = "",
        max_subscribers: int | None = None,
        budget: EgressBudget | None = None,
        on_wanted_fps: Callable[[float | None], None] | None = None,
        on_members: Callable[[], None] | None = None,
        timestamp: Callable[[Frame], int] = pts_ns,
        tally: ClientTally | None = None,
    ) -> None:
        """Create a stream.

        ``budget`` is shared by every stream under one ``max_egress_mbps``;
        ``on_wanted_fps`` is called with the new ``wanted_fps`` whenever it changes;
        ``on_members`` after a subscriber joined or left (an on-demand camera's upstream);
        ``timestamp`` maps a frame to its source time in ns (``pts_ns`` or
        ``received_ns`` from ``gateway.hub.rate``); ``tally`` (the camera's) counts the
        subscribers.
        """
        self.kind = kind
        self.name = name
        self._max_subscribers = max_subscribers
        self._budget = budget
        self._on_wanted_fps = on_wanted_fps
        self._on_members = on_members
        self._timestamp = timestamp
        self._tally = tally
        self._subs: dict[Subscription, None] = {}
        self._frame_waiters: list[asyncio.Future[None]] = []
        self._interval = IntervalEstimator()
        self._live_ts = 0
        #: Newest frame published, or None.
        self.latest: Frame | None = None
        #: Frames published since creation.
        self.frames_published = 0
        #: Average payload size in bytes (what the budget charges per frame).
        self.frame_bytes = 0.0
        #: Highest rate any subscriber asked for; None: the source/configured rate.
        self.wanted_fps: float | None = None
        #: True after ``close``.
        self.closed = False
        if budget is not None:
            budget.add(self)

    # -- publishing ------------------------------------------------------------------

    def publish(self, frame: Frame) -> None:
        """Make ``frame`` the newest frame and offer it to every subscriber; never waits."""
        if self.closed:
            raise LocalProtocolError("publish() on a closed stream")
        ts = self._timestamp(frame)
        self._live_ts = ts
        self._interval.update(ts)
        size = len(frame.payload)
        self.frame_bytes = (
            size if not self.frames_published else self.frame_bytes + (size - self.frame_bytes) / 16
        )
        self.frames_published += 1
        self.latest = frame
        if self._frame_waiters:
            for w in self._frame_waiters:
                if not w.done():
                    w.set_result(None)
            self._frame_waiters.clear()
        budget = self._budget
        if budget is not None:
            budget.observe(self)
        interval = self._interval.interval_ns
        for sub in self._subs:
            sub._offer(frame, ts, interval)

    def forget(self) -> None:
        """Drop the newest frame: its connection closed, and a new reader waits for a fresh one."""
        self.latest = None

    @property
    def source_fps(self) -> float | None:
        """Return the measured source rate, or None before two frames."""
        return self._interval.fps

    async def first_frame(self) -> Frame | None:
        """Return the newest frame, waiting for one if none arrived yet (None if closed)."""
        while self.latest is None and not self.closed:
            fut = asyncio.get_running_loop().create_future()
            self._frame_waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._frame_waiters:
                    self._frame_waiters.remove(fut)
        return self.latest

    # -- subscriptions ---------------------------------------------------------------

    def subscribe(
        self,
        *,
        target_fps: float | None = None,
        priority: Priority = Priority.DESIRED,
        kind: str = "",
        remote: str = "",
        start_with_latest: bool = True,
    ) -> Subscription:
        """Add a subscriber; with ``start_with_latest`` the newest frame is pending at once."""
        if self.closed:
            raise LocalProtocolError("subscribe() on a closed stream")
        if self._max_subscribers is not None and len(self._subs) >= self._max_subscribers:
            raise StreamFullError(f"stream has {self._max_subscribers} subscribers already")
        sub = Subscription(
            self,
            target_fps=target_fps,
            priority=priority,
            kind=kind or self.kind.value,
            remote=remote,
        )
        self._subs[sub] = None
        if self._tally is not None:
            self._tally.join(sub, self.kind.value)
        if start_with_latest and self.latest is not None:
            sub._offer(self.latest, self._live_ts, self._interval.interval_ns)
        self._changed()
        if self._on_members is not None:
            self._on_members()
        return sub

    def __len__(self) -> int:
        return len(self._subs)

    def demands(self, *, default_fps: float) -> list[tuple[Subscription, Demand]]:
        """Return each subscriber's claim on the egress budget, priced at ``frame_bytes``.

        A claim asks for the subscriber's target, capped at the source rate; "the
        source rate" is ``default_fps`` until it is measured.
        """
        source = self.source_fps
        out = []
        for sub in self._subs:
            fps = sub.target_fps
            if fps is None or (source is not None and fps > source):
                fps = source if source is not None else max(fps or 0.0, default_fps)
            out.append((sub, Demand(sub.priority, fps, self.frame_bytes)))
        return out

    def __iter__(self) -> Iterator[Subscription]:
        return iter(tuple(self._subs))

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            del self._subs[sub]
            if self._tally is not None:
                self._tally.leave(sub)
            self._changed()
            if self._on_members is not None:
                self._on_members()

    def _changed(self) -> None:
        """Recompute what depends on the set of subscribers and their targets."""
        if self._budget is not None:
            self._budget.mark_dirty()
        wanted: float | None = None
        for sub in self._subs:
            if sub.target_fps is None:
                wanted = None
                break
            wanted = sub.target_fps if wanted is None else max(wanted, sub.target_fps)
        if wanted != self.wanted_fps:
            self.wanted_fps = wanted
            if self._on_wanted_fps is not None:
                self._on_wanted_fps(wanted)

    def snapshot(self) -> list[dict[str, object]]:
        """Return the ``/api/cameras`` ``clients`` entries of this stream."""
        out = []
        for sub in self._subs:
            sub._refresh_fps(self._live_ts)
            out.append(sub.snapshot())
        return out

    def close(self) -> None:
        """End the stream: every subscriber gets its pending frame, then None."""
        if self.closed:
            return
        self.closed = True
        for sub in tuple(self._subs):
            sub._wake()
        for w in self._frame_waiters:
            if not w.done():
                w.set_result(None)
        self._frame_waiters.clear()
        if self._budget is not None:
            self._budget.remove(self)
