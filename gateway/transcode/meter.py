"""Frames per second over a short window, for the renditions' ``fps_in``/``fps_out``."""

from __future__ import annotations

from gateway.media import NS_PER_SECOND

#: Window over which a rate is measured.
WINDOW_NS = 2 * NS_PER_SECOND


class RateMeter:
    """Counts events stamped in monotonic nanoseconds; ``rate`` is the last full window's."""

    __slots__ = ("_count", "_last_ns", "_rate", "_start")

    def __init__(self) -> None:
        """Start with no events."""
        self._start: int | None = None
        self._count = 0
        self._rate = 0.0
        self._last_ns = 0

    def tick(self, now_ns: int) -> None:
        """Count one event at ``now_ns`` (e.g. a frame's ``received_ns``)."""
        self._last_ns = now_ns
        if self._start is None or now_ns < self._start:
            self._start, self._count = now_ns, 0
        self._count += 1
        elapsed = now_ns - self._start
        if elapsed >= WINDOW_NS:
            self._rate = (self._count - 1) * NS_PER_SECOND / elapsed
            self._start, self._count = now_ns, 1

    def rate(self, now_ns: int) -> float:
        """Return events per second, 0 when nothing came for two windows."""
        if self._start is None or now_ns - self._last_ns > 2 * WINDOW_NS:
            return 0.0
        return round(self._rate, 2)
