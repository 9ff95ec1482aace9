"""Sans-IO media clock: frame arrival times in, an even 90 kHz presentation clock out.

A camera streaming JPEGs stamps no capture time (VAPIX §5.2.7: a part carries
``Content-Type`` and ``Content-Length``), so an MJPEG frame's time is when it arrived,
and arrivals jitter with the network and the camera's scheduling. This clock turns them
into times that advance by the camera's real frame interval:

- **Interval.** The slope of arrival time against frame number, by least squares with
  exponential forgetting (``window`` frames): unbiased under jitter, it is the camera's
  real rate (25.02 fps is not 25). Frames off the fitted line by more than half an
  interval (the late frames of a burst after a hole) are left out of the fit.
- **Phase.** Outputs sit just below the earliest arrivals: the fitted line minus how far
  below it the earliest arrivals came (a running maximum that leaks ``interval / 8192``
  per frame), minus a margin (half of ``max_lead_ns``, more while the fit is young).
  Each output is the previous one plus the interval, steered toward that line by at
  most ``slew_ns`` (more while the fit is young): even spacing, and no drift from
  arrival however long it runs.
- **Bounds.** An output is never more than ``max_lead_ns`` after its arrival (a frame
  that came early pulls the clock back at once) and always after the previous output
  (frames that arrive within one tick of each other are a tick apart).
  A frame more than ``gap_ns`` late ends a stall: the frame number advances by the
  frames the camera would have sent meanwhile and the output jumps with it (a 3 s stall
  is a 3 s gap, not a squeeze). ``max_misses`` frames in a row off the line, at the
  pace of frames (not a burst), are the camera leaving frames out or moving its phase
  when they are all late by about as much (the output jumps likewise), or else a new
  rate: the fit starts again, as it does on a new connection.

Time is an argument (STYLE §2): ``update`` takes the arrival and reads no clock.
"""

from __future__ import annotations

import math

from gateway.errors import LocalProtocolError
from gateway.media import NS_PER_SECOND

#: Output ticks per second (``VIDEO_TIME_BASE``).
TICKS = 90_000
#: Frames fitted before frames far off the line are left out of the fit.
_WARM = 8
#: The depth below the line leaks this fraction of an interval per frame.
_LEAK = 1 / 8192


class MediaClock:
    """Smooth one stream's frame arrival times into presentation times (90 kHz).

    max_lead_ns bounds how far an output may be after its arrival; gap_ns is the lateness
    that counts as a stall; window is the fit's memory in frames; slew_ns bounds the
    correction per frame once warm; max_misses is how many frames in a row may miss the
    line before the fit restarts.
    """

    def __init__(
        self,
        *,
        max_lead_ns: int = 2_000_000,
        gap_ns: int = NS_PER_SECOND,
        window: int = 1024,
        slew_ns: int = 250_000,
        max_misses: int = 8,
    ) -> None:
        if min(max_lead_ns, gap_ns - 1, window - 2, slew_ns, max_misses - 1) < 0:
            raise LocalProtocolError(
                "max_lead_ns >= 0, gap_ns >= 1, window >= 2, slew_ns >= 0, max_misses >= 1"
            )
        self._lead, self._gap, self._slew = float(max_lead_ns), float(gap_ns), float(slew_ns)
        self._keep, self._window = 1 - 1 / window, window
        self._max_misses = max_misses
        self._ref = 0  # arrival (ns) that internal times count from
        self._out: float | None = None  # the last output, ns after _ref
        self._tick: int | None = None  # ... in ticks
        # The fit (see _restart): weight and sums around the origin, the newest frame.
        self._t = self._w = self._sx = self._sy = self._sxx = self._sxy = 0.0
        self._fitted = self._misses = 0
        self._lo = self._hi = self._depth = 0.0
        self._restart(0)
        #: Frames stamped, stalls bridged and fit restarts (new connections included).
        self.frames = self.stalls = self.restarts = 0

    @property
    def interval_ns(self) -> float | None:
        """Return the fitted frame interval, or None before there is one."""
        return self._slope()

    def update(self, arrival_ns: int, *, new_connection: bool) -> int:
        """Return the presentation time (90 kHz) of a frame that arrived at arrival_ns.

        new_connection: the frame is the first of a new upstream connection.
        """
        self.frames += 1
        t = float(arrival_ns - self._ref)
        if new_connection or self._fitted == 0:
            return self._first(arrival_ns)
        dy = t - self._t
        self._move(1, dy)
        self._t = t
        slope = self._slope()
        if slope is None:  # one frame fitted: no interval yet
            self._add()
            return self._emit(t, t)
        miss = -self._fit0(slope)  # how much later than the line the frame came
        step = 1
        if miss > self._gap:  # a stall: the frames the camera sent meanwhile are gone
            step += self._bridge(miss, slope)
        elif abs(miss) > slope / 2 and self._fitted >= _WARM:
            if dy > slope / 4:  # paced like frames: a burst's frames come together
                lo, hi = (self._lo, self._hi) if self._misses else (miss, miss)
                self._lo, self._hi = min(lo, miss), max(hi, miss)
                self._misses += 1
            if self._misses < self._max_misses:
                return self._follow(t, slope, step)  # a late or early frame: not fitted
            if self._lo < 0 or self._hi - self._lo > slope / 2:
                return self._first(arrival_ns)  # the camera changed rate
            step += self._bridge(miss, slope)  # it left frames out, or its phase moved
        self._misses = 0
        self._add()
        slope = self._slope() or slope
        self._depth = max(self._fit0(slope), self._depth - slope * _LEAK)
        return self._follow(t, slope, step, jump=step > 1)

    # -- output -------------------------------------------------------------------------

    def _follow(self, t: float, slope: float, step: int, *, jump: bool = False) -> int:
        """Stamp a frame at t: the previous output plus the interval, steered to the line."""
        # Below the envelope by half the lead, and by the fit's uncertainty while young.
        margin = self._lead / 2 + 2 * self._depth / math.sqrt(min(self._fitted, self._window))
        target = t + self._fit0(slope) - self._depth - margin
        out = self._out
        if out is None or jump:
            return self._emit(target, t)
        predicted = out + slope * step
        slew = max(self._slew, 2 * slope / (1 + self._fitted) ** 1.5)  # a young fit moves faster
        return self._emit(predicted + min(max(target - predicted, -slew), slew), t)

    def _emit(self, out: float, t: float) -> int:
        out = min(out, t + self._lead)
        tick = min(
            round((out + self._ref) * TICKS / NS_PER_SECOND),
            (int(t + self._lead) + self._ref) * TICKS // NS_PER_SECOND,
        )
        if self._tick is not None and tick <= self._tick:
            # Never at or before the previous output (frames that arrive in the same
            # tick go a tick apart, past max_lead_ns if need be).
            tick = self._tick + 1
        self._out, self._tick = out, tick
        return tick

    def _first(self, arrival_ns: int) -> int:
        """Start the fit afresh at this frame (stamped at its arrival)."""
        self.restarts += 1
        self._restart(arrival_ns)
        self._add()
        return self._emit(0.0, 0.0)

    def _bridge(self, miss: float, slope: float) -> int:
        """Skip the frames the camera did not send; return how many (the fit's phase moves)."""
        skipped = round(miss / slope)
        self._move(skipped, 0.0)
        self._shift(-self._fit0(slope))
        self.stalls += 1
        return skipped

    # -- the fit: weighted least squares around the newest frame (x = frame number) ------

    def _restart(self, ref: int) -> None:
        self._ref, self._t = ref, 0.0
        self._w = self._sx = self._sy = self._sxx = self._sxy = 0.0
        self._fitted = self._misses = 0
        self._lo = self._hi = 0.0  # the least and greatest miss of the current misses
        self._depth = 0.0  # how far below the fitted line the earliest arrivals came

    def _move(self, dx: float, dy: float) -> None:
        """Move the origin dx frames and dy ns forward (the sums follow)."""
        w, sx, sy = self._w, self._sx, self._sy
        self._sxx += dx * (dx * w - 2 * sx)
        self._sxy += dx * dy * w - dx * sy - dy * sx
        self._sx = sx - dx * w
        self._sy = sy - dy * w

    def _shift(self, dy: float) -> None:
        """Move every fitted time dy later (the line's phase; its slope stays)."""
        self._sy += dy * self._w
        self._sxy += dy * self._sx

    def _add(self) -> None:
        """Fit a frame at the origin, forgetting older ones a little."""
        keep = self._keep
        self._w = self._w * keep + 1
        self._sx *= keep
        self._sy *= keep
        self._sxx *= keep
        self._sxy *= keep
        self._fitted += 1

    def _slope(self) -> float | None:
        det = self._w * self._sxx - self._sx * self._sx
        if self._fitted < 2 or det <= 1e-9 * self._w * self._w:
            return None
        slope = (self._w * self._sxy - self._sx * self._sy) / det
        return slope if slope > 0 else None

    def _fit0(self, slope: float) -> float:
        """Return the fitted line at the origin, relative to the origin's time."""
        return (self._sy - slope * self._sx) / self._w
