"""Sans-IO frame rate policy: which source frames a subscription is sent.

Frames are chosen by their source timestamps, never by arrival order or a wall clock
(DESIGN §6): each subscription keeps a schedule of due times spaced ``1/target``
apart, and a frame is delivered when it is the source frame closest to the next due
time. The schedule advances by whole periods, so the long-run rate is exactly the
target whatever the ratio to the source rate (10 from 25 alternates 2 and 3 source
intervals), and a frame is never more than half a source interval early.
"""

from __future__ import annotations

import math

from gateway.errors import LocalProtocolError
from gateway.media import NS_PER_SECOND, Frame

#: A new interval moves the source interval average by 1/16 of the difference.
_INTERVAL_SHIFT = 4
#: An interval this many times the average is a gap (camera pause), not a rate change.
_GAP_FACTOR = 4


def pts_ns(frame: Frame) -> int:
    """Return the frame's presentation time in nanoseconds."""
    tb = frame.time_base
    return frame.pts * tb.numerator * NS_PER_SECOND // tb.denominator


def received_ns(frame: Frame) -> int:
    """Return the frame's arrival time (``time.monotonic_ns()``) in nanoseconds."""
    return frame.received_ns


class IntervalEstimator:
    """Running average of the source frame interval, blind to gaps and bursts.

    One per stream; the selectors use it as their tolerance (half an interval), and the
    budget uses it as the rate of subscriptions that asked for "source rate".
    """

    __slots__ = ("_last", "interval_ns")

    def __init__(self) -> None:
        self._last: int | None = None
        #: Average source frame interval in ns, or None before the second frame.
        self.interval_ns: int | None = None

    def update(self, t_ns: int) -> None:
        """Account for a frame with source time ``t_ns``."""
        last, self._last = self._last, t_ns
        if last is None:
            return
        d = t_ns - last
        if d <= 0:
            return  # a burst (two frames in one read) or the clock restarted
        s = self.interval_ns
        if s is None:
            self.interval_ns = d
        elif d <= _GAP_FACTOR * s:
            self.interval_ns = s + ((d - s) >> _INTERVAL_SHIFT)

    @property
    def fps(self) -> float | None:
        """Return the estimated source rate, or None while unknown."""
        s = self.interval_ns
        return None if not s else NS_PER_SECOND / s


class RateSelector:
    """Decide deliver/skip for each source frame of one subscription.

    ``target_fps=None`` delivers every frame; ``0`` delivers nothing (a budget can
    starve a desired-priority client). Feed every source frame in order to ``offer``.
    """

    __slots__ = ("_due", "_period")

    def __init__(self, target_fps: float | None = None) -> None:
        self._period: int | None = None
        self._due: int | None = None
        self.target_fps = target_fps

    @property
    def target_fps(self) -> float | None:
        """Return the target rate (None: every frame)."""
        p = self._period
        if p is None:
            return None
        return 0.0 if p < 0 else NS_PER_SECOND / p

    @target_fps.setter
    def target_fps(self, fps: float | None) -> None:
        if fps is not None and (math.isnan(fps) or fps < 0):
            raise LocalProtocolError(f"target fps must be None or >= 0, not {fps!r}")
        old = self._period
        # A negative period marks "paused" (fps 0) so the schedule survives a resume.
        new = None if fps is None else (-1 if fps == 0 else max(1, round(NS_PER_SECOND / fps)))
        self._period = new
        if self._due is not None and old is not None and old > 0 and new is not None and new > 0:
            # Keep the phase: the next frame is due one new period after the last one.
            self._due += new - old

    def offer(self, t_ns: int, interval_ns: int | None) -> bool:
        """Return True if the frame at source time ``t_ns`` is to be delivered.

        ``interval_ns`` is the current source frame interval (None while unknown).
        """
        period = self._period
        if period is None:
            return True
        if period < 0:
            return False
        due = self._due
        tol = (interval_ns or 0) // 2
        if due is None or t_ns < due - period - tol:
            # First frame, or the source clock went backwards (a new upstream connection).
            self._due = t_ns + period
            return True
        if t_ns < due - tol:
            return False
        if t_ns - due > period:
            # More than a period late: a gap in the source. Resync instead of catching up
            # with a burst.
            self._due = t_ns + period
        else:
            self._due = due + period
        return True

    def reset(self) -> None:
        """Forget the schedule: the next frame offered is delivered."""
        self._due = None
