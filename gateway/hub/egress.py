"""One ``max_egress_mbps`` shared by every stream: runs the allocator when needed.

The allocator is not run per frame: subscribe/unsubscribe/retarget mark the budget
dirty, and a stream's average frame size or source rate moving by more than
``drift`` since the last run does too; the next ``publish`` of any stream then
re-runs it once over every stream's ``demands`` and hands each subscription its
share through ``Subscription.set_allowed_fps``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.hub.budget import allocate

if TYPE_CHECKING:
    from gateway.hub.stream import Stream


class EgressBudget:
    """The egress budget in bytes per second (None or 0: unlimited)."""

    def __init__(
        self, bytes_per_s: float | None, *, default_fps: float = 25.0, drift: float = 0.1
    ) -> None:
        """Create a budget; ``default_fps`` prices "source rate" before it is measured."""
        self.bytes_per_s = bytes_per_s or None
        self._default_fps = default_fps
        self._drift = drift
        self._streams: dict[Stream, tuple[float, float]] = {}
        #: True when the next ``observe`` re-runs the allocator.
        self.dirty = False
        #: Allocator runs so far (tests check it is not per frame).
        self.runs = 0

    @classmethod
    def from_mbps(cls, mbps: float | None) -> EgressBudget:
        """Create from the configuration's ``max_egress_mbps`` (megabits, 0 = unlimited)."""
        return cls(None if not mbps else mbps * 1_000_000 / 8)

    def add(self, stream: Stream) -> None:
        """Let ``stream``'s subscribers share this budget."""
        self._streams[stream] = (0.0, 0.0)
        self.dirty = True

    def remove(self, stream: Stream) -> None:
        """Forget ``stream`` (it closed)."""
        self._streams.pop(stream, None)
        self.dirty = True

    def mark_dirty(self) -> None:
        """Re-run the allocator before the next frame goes out."""
        self.dirty = True

    def observe(self, stream: Stream) -> None:
        """Called by ``stream.publish`` before fan-out: re-run if anything moved."""
        if not self.dirty and self.bytes_per_s is not None:
            size, fps = self._streams.get(stream, (0.0, 0.0))
            if _moved(size, stream.frame_bytes, self._drift) or _moved(
                fps, stream.source_fps or 0.0, self._drift
            ):
                self.dirty = True
        if self.dirty:
            self.rebalance()

    def rebalance(self) -> None:
        """Run the allocator over every stream's demands and apply the allowed rates."""
        self.dirty = False
        self.runs += 1
        claims = []
        for stream in self._streams:
            self._streams[stream] = (stream.frame_bytes, stream.source_fps or 0.0)
            claims += stream.demands(default_fps=self._default_fps)
        if self.bytes_per_s is None:
            for sub, _ in claims:
                sub.set_allowed_fps(None)
            return
        allowed = allocate([demand for _, demand in claims], self.bytes_per_s)
        for (sub, demand), fps in zip(claims, allowed, strict=True):
            # Granted in full: leave the selector at the requested rate (None stays None).
            sub.set_allowed_fps(None if fps >= demand.fps else fps)


def _moved(old: float, new: float, drift: float) -> bool:
    if old <= 0:
        return new > 0
    return abs(new - old) > drift * old
