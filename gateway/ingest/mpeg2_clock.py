"""Sans-IO MPEG-2 presentation times: the camera's PES PTS, unwrapped and anchored.

A program or transport stream carries a 33-bit, 90 kHz PTS in the PES header of the
packet a picture starts in (ISO/IEC 13818-1 §2.4.3.7), and the indexer reports it per
unit (``UnitIndexed.pts``). ``Mpeg2Clock`` turns it into ``Frame.pts``:

- **Unwrapped and anchored.** PTS wraps at 2**33 (26.5 hours); each PTS is taken as the
  value nearest the previous one. The first picture of a connection is stamped at its
  arrival (the monotonic clock in 90 kHz, as every other kind), and later ones at that
  plus the camera's PTS difference, so the camera's clock sets the pace: a camera at
  12.5, 25 or 30 fps, or one whose pictures arrive in bursts, plays at its own speed.
- **Discontinuities.** A PTS more than ``max_jump_ns`` after the previous one, or more
  than ``max_behind_ns`` before the latest output (B-pictures are a few frames behind,
  never seconds), is a camera clock that jumped: the picture is stamped one frame
  interval (or the time that passed since the previous picture arrived, if longer)
  after the latest output, and the camera's clock is followed from there. A new
  connection (``Frame.seq`` 0) starts again from arrival.
- **Presentation order.** Pictures arrive in decode order, and a B-picture is shown
  before the reference picture decoded ahead of it (ISO/IEC 13818-2 §6.1.1.11):
  ``Frame.pts`` of an MPEG-2 frame is its picture's real presentation time, so it is
  not monotonic from one frame to the next when there are B-pictures. Whoever decodes
  gets frames in presentation order, with these times in order.

A picture without a PTS (every picture of an elementary stream; in a PES packet holding
several, all but the first) gets a derived time. temporal_reference counts a GOP's
frames in display order from 0 (§6.3.9), so within a GOP a picture shows
``temporal_reference`` frame periods (1 / frame_rate of the sequence header, §6.3.3)
after the GOP's first one:

- in a GOP where a picture had a PTS, the derived time is that GOP's anchor (the PTS
  less its temporal_reference in periods) plus this temporal_reference in periods;
- in a GOP without one yet, the anchor is the previous GOP's plus its length in frames
  (its greatest temporal_reference plus one);
- with no PTS at all (an elementary stream), pictures are timed from arrival: a
  ``MediaClock`` smooths their arrivals (one per picture, in decode order) into an
  even clock, and a picture that is the j-th of its GOP in decode order shows
  ``temporal_reference - j`` periods from its slot on that clock (the frames of every
  GOP are coded and shown in equal numbers, so the display and decode positions differ
  by exactly that). A GOP whose temporal_references do not fit that (more than
  ``MAX_REORDER`` frames off: no GOP headers, field pictures) is timed at its slots.

Audio and MJPEG times are not made here (``gateway.ingest.clock`` smooths MJPEG).
"""

from __future__ import annotations

from fractions import Fraction

from gateway.demux.mpeg2 import UnitIndexed
from gateway.errors import LocalProtocolError
from gateway.ingest.clock import TICKS, MediaClock
from gateway.media import NS_PER_SECOND

#: PTS values wrap at 2**33 (ISO/IEC 13818-1 §2.4.3.7).
PTS_WRAP = 1 << 33
#: The frame period assumed before a sequence header or a measured rate says: 25 fps.
DEFAULT_PERIOD = Fraction(TICKS, 25)
#: Largest distance in frames between a picture's display and decode positions in its
#: GOP (M - 1 for a P-picture after M - 1 B-pictures, 1 for a B-picture): beyond it the
#: temporal_references are not used.
MAX_REORDER = 8


class Mpeg2Clock:
    """Stamp one MPEG-2 stream's units with presentation times (90 kHz).

    max_jump_ns and max_behind_ns bound how far a PTS may move forward from the previous
    one, and fall behind the latest output, before it counts as a discontinuity.
    """

    def __init__(
        self, *, max_jump_ns: int = 10 * NS_PER_SECOND, max_behind_ns: int = NS_PER_SECOND
    ):
        if max_jump_ns < 1 or max_behind_ns < 1:
            raise LocalProtocolError("max_jump_ns >= 1 and max_behind_ns >= 1")
        self._max_jump = max_jump_ns * TICKS // NS_PER_SECOND
        self._max_behind = max_behind_ns * TICKS // NS_PER_SECOND
        self._arrivals = MediaClock()
        self._reset()
        #: Discontinuities re-anchored; pictures stamped from a PTS, and derived.
        self.discontinuities = self.from_pts = self.derived = 0

    def _reset(self) -> None:
        self._camera: int | None = None  # the last PTS, unwrapped
        self._offset = 0  # output = unwrapped PTS + offset
        self._latest: int | None = None  # the greatest output of this connection
        self._last = 0  # the last output
        self._arrived = 0  # arrival (ns) of the last picture
        # The GOP being read: its anchor (output time of temporal_reference 0), its
        # length so far, pictures in decode order, and whether temporal_reference fits.
        self._anchor: Fraction | None = None
        self._length = 0
        self._decoded = 0
        self._reorder_ok = True
        self._before: tuple[Fraction, int] | None = None  # the previous GOP's anchor, length
        self._fresh = True  # the arrival clock starts again at the next picture

    def update(self, unit: UnitIndexed, arrival_ns: int, *, new_connection: bool) -> int:
        """Return ``Frame.pts`` (90 kHz) of a unit that arrived at arrival_ns.

        new_connection: the unit is the first of a new upstream connection.
        """
        if new_connection:
            self._reset()
        if not unit.pictures or unit.temporal_reference is None:
            # Bytes after the last picture: the time of the picture they end.
            return self._last if self._latest is not None else arrival_ns * TICKS // NS_PER_SECOND
        slot = self._arrivals.update(arrival_ns, new_connection=self._fresh)
        self._fresh = False
        period = self._period(unit)
        tr = unit.temporal_reference
        if unit.gop:
            if self._anchor is not None:
                self._before = (self._anchor, self._length)
            self._anchor, self._length, self._decoded, self._reorder_ok = None, 0, 0, True
        if unit.pts is not None:
            out = self._from_pts(unit.pts, arrival_ns, period, slot, tr)
            self._anchor = out - tr * period
            self.from_pts += 1
        else:
            out = self._derived(period, slot, tr)
            self.derived += 1
        self._decoded += unit.pictures
        self._length = max(self._length, tr + 1)
        self._latest = out if self._latest is None else max(self._latest, out)
        self._last, self._arrived = out, arrival_ns
        return out

    def _period(self, unit: UnitIndexed) -> Fraction:
        """Return the frame period in ticks: the sequence header's, else measured."""
        if unit.frame_rate:
            return TICKS / unit.frame_rate
        measured = self._arrivals.interval_ns
        if measured:
            return Fraction(round(measured * TICKS), NS_PER_SECOND)
        return DEFAULT_PERIOD

    def _from_pts(self, pts: int, arrival_ns: int, period: Fraction, slot: int, tr: int) -> int:
        """Return the output for a picture whose PES header carried pts."""
        previous = self._camera
        if previous is None:
            camera = pts
            # The first PTS continues whatever was derived before it (or arrival).
            self._offset = self._derived(period, slot, tr) - camera
        else:
            step = (pts - previous) % PTS_WRAP
            camera = previous + (step - PTS_WRAP if step >= PTS_WRAP // 2 else step)
            out = camera + self._offset
            latest = self._latest if self._latest is not None else out
            if camera - previous > self._max_jump or out < latest - self._max_behind:
                waited = (arrival_ns - self._arrived) * TICKS // NS_PER_SECOND
                self._offset = latest + max(round(period), waited) - camera
                self.discontinuities += 1
        self._camera = camera
        return camera + self._offset

    def _derived(self, period: Fraction, slot: int, tr: int) -> int:
        """Return the output for a picture without a PTS (see the module docstring)."""
        anchor = self._anchor
        if anchor is None and self._camera is not None and self._before is not None:
            before, length = self._before
            anchor = self._anchor = before + length * period
        if anchor is not None:
            return round(anchor + tr * period)
        shift = tr - self._decoded
        self._reorder_ok &= abs(shift) <= MAX_REORDER
        return round(slot + (shift if self._reorder_ok else 0) * period)
