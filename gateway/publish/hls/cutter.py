"""Where an LL-HLS stream's parts and segments begin and end, and the decode times in them.

Sans-IO: ``VideoCutter.push(frame)`` takes the camera's encoded H.264 frames in order
and returns what each one settles: a ``SegmentCut`` (the frame starts a new segment)
and ``PartCut`` records (a closed part's samples with their final durations).

The rules (RFC 8216bis):

- §4.4.4.9: a part lasts at most PART-TARGET, and at least 85% of it unless it is
  INDEPENDENT or its segment's last. PART-TARGET is a whole number of frame intervals
  near ``hls.part_seconds`` (0.2 s: 5 frames at 25 fps, 6 at 30, 3 at 12.5, making
  0.24 s), measured from the first frames (``CALIBRATION_DELTAS``, snapped to a nominal
  rate; 5% of room otherwise) before any part is published: AVPlayer rejects a playlist
  whose part exceeds PART-TARGET, and 0.2 s cannot hold whole 80 ms frames within
  85..100% of itself.
- A part is complete the moment its last frame arrives: when a frame leaves no room
  for another whole one (its decode time plus the frame interval, the median of the
  recent ones, reaches past PART-TARGET less half an interval), the part closes with
  it, and that frame lasts until where the camera's next frame is expected, within
  85..100% of PART-TARGET for the part. The next frame starts the next part there,
  wherever the camera put it, and lasts until its successor's own time. So the output
  timeline has no gaps and follows the camera's: a regular camera's pictures keep their
  exact times, a jittery one's only move at a part's first picture, by a fraction of an
  interval. A frame that does not fit (jitter, a skipped picture) closes the open part
  late instead, where that frame is (within the same bounds).
- §4.4.3.1, §6.2.1: segments start on an IDR once ``segment_target`` is (nearly)
  reached, which is where the shared encode puts its IDRs (``keyframe_seconds``); an
  IDR that came early because another viewer asked for one also starts a segment when
  waiting for the next scheduled one could make this segment longer than
  TARGETDURATION + 0.5 s (its rounded EXTINF would exceed TARGETDURATION, which must
  not change). If no IDR comes at all, the segment is cut at a plain picture just
  before that limit (``CutReason.LIMIT``, counted), so TARGETDURATION always holds.
- A keyframe whose avcC or size differs from the current one starts a segment at once
  (``CutReason.FORMAT``: a new init segment, EXT-X-DISCONTINUITY).

A frame far from where the timeline expects it (a camera stall, a source that
restarted, a cursor cut forward) is moved there, and the jump is added to ``shift``:
the output timeline stays continuous, the wall clock (EXT-X-PROGRAM-DATE-TIME) moves on
by the jump, and the audio beside it is shifted alike.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from statistics import median_low

from gateway.errors import LocalProtocolError
from gateway.media import VIDEO_TIME_BASE, Frame
from gateway.mux.fmp4 import Sample

#: 90 kHz: the video timeline's ticks per second.
TICKS = 90_000
#: Frame intervals measured before PART-TARGET is fixed.
CALIBRATION_DELTAS = 8
#: Frame rates cameras and encoders use; a measured rate within SNAP of one is taken to
#: be it, so jitter in the first frames does not make PART-TARGET a fraction of a frame.
NOMINAL_RATES = (1, 2, 3, 4, 5, 6, 7.5, 8, 10, 12, 12.5, 15, 20, 24000 / 1001, 24, 25,
                 30000 / 1001, 30, 50, 60000 / 1001, 60)  # fmt: skip
SNAP = 0.03
#: Percent added to PART-TARGET when the frame rate is not a nominal one.
MEASURED_MARGIN = 5
#: Recent intervals whose median is the frame interval estimate.
INTERVAL_WINDOW = 9
#: The interval assumed before two frames were seen (25 fps).
DEFAULT_INTERVAL = 3600


class CutReason(enum.Enum):
    """Why a segment starts."""

    START = "first keyframe"
    KEYFRAME = "keyframe"
    FORMAT = "keyframe with a new avcC or size"
    LIMIT = "TARGETDURATION reached without a keyframe"


@dataclass(frozen=True, slots=True)
class SegmentCut:
    """``frame`` starts a new segment (the parts before it belong to the previous one)."""

    reason: CutReason
    frame: Frame


@dataclass(frozen=True, slots=True)
class PartCut:
    """A closed part's video: samples with final durations, on the output timeline."""

    #: Decode time of the first sample (90 kHz, 0 at the first keyframe).
    start: int
    #: Ticks; the samples' durations add up to it.
    duration: int
    samples: tuple[Sample, ...]
    #: The part holds an IDR picture.
    independent: bool
    #: Ticks taken out of the camera's timeline so far: the camera time of output time
    #: ``t`` is ``t + shift`` after the first keyframe.
    shift: int

    @property
    def end(self) -> int:
        """Return the decode time after the last sample."""
        return self.start + self.duration


Cut = SegmentCut | PartCut


class VideoCutter:
    """Cuts one stream of encoded H.264 frames into parts and segments."""

    def __init__(self, *, part_target: int, segment_target: int, target_duration: int) -> None:
        """Aim at ``part_target`` and ``segment_target``; never exceed ``target_duration``.

        All three are 90 kHz ticks; ``target_duration`` is EXT-X-TARGETDURATION.
        """
        if not 0 < part_target <= segment_target <= target_duration:
            raise LocalProtocolError("need 0 < part_target <= segment_target <= target_duration")
        self.part_aim = part_target
        self.segment_target = segment_target
        self.target_duration = target_duration
        #: PART-TARGET in ticks, fixed by the first frames; None until then.
        self.part_target: int | None = None
        #: Ticks taken out of the camera's timeline (stalls, jumps).
        self.shift = 0
        #: Frames before the first keyframe, dropped.
        self.frames_dropped = 0
        #: Segments cut without a keyframe, and frames moved to the expected time.
        self.limit_cuts = 0
        self.jumps = 0
        self._origin: int | None = None
        self._calibrating: list[Frame] = []
        self._intervals: deque[int] = deque(maxlen=INTERVAL_WINDOW)
        self._last_pts: int | None = None
        self._format: tuple[bytes | None, tuple[int, int] | None] = (None, None)
        self._cursor = 0  # where the next part starts: the end of the last closed one
        self._segment_start = 0
        self._part_start = 0
        self._frames: list[Frame] = []
        self._dts: list[int] = []
        self._independent = False
        self._shortest = 0

    @property
    def interval(self) -> int:
        """Return the frame interval estimate (90 kHz ticks)."""
        return median_low(self._intervals) if self._intervals else DEFAULT_INTERVAL

    @property
    def open(self) -> bool:
        """Return True while a part holds frames that did not complete it."""
        return bool(self._frames)

    @property
    def segment_elapsed(self) -> int:
        """Return how long the current segment is so far, to the end of its last frame."""
        end = self._dts[-1] + self.interval if self._frames else self._cursor
        return end - self._segment_start

    def next_starts_segment(self) -> bool:
        """Return True if the next frame will likely start a segment (for the preload hint)."""
        return not self._frames and (
            self.segment_elapsed >= self.segment_target - self.interval // 4
        )

    def push(self, frame: Frame) -> list[Cut]:
        """Take the next frame; return the segment it starts and the parts it closes."""
        if frame.sample is None:
            raise LocalProtocolError("segmenting needs the MP4 sample form of each picture")
        if frame.time_base != VIDEO_TIME_BASE:
            raise LocalProtocolError(f"video pts must be in 1/90000 s, not {frame.time_base}")
        if self._origin is None:
            if frame.cut is None or frame.cut.config is None or frame.dimensions is None:
                self.frames_dropped += 1  # a stream starts at a keyframe with its avcC
                return []
            self._origin = frame.pts
        if self.part_target is None:
            self._calibrating.append(frame)
            if not self._calibrate():
                return []
            frames, self._calibrating = self._calibrating, []
            return [cut for held in frames for cut in self._feed(held)]
        return self._feed(frame)

    def _calibrate(self) -> bool:
        """Fix PART-TARGET once enough frame intervals are known; return True if it is."""
        frames = self._calibrating
        deltas = [b.pts - a.pts for a, b in pairwise(frames) if b.pts > a.pts]
        span = frames[-1].pts - frames[0].pts
        if len(deltas) < CALIBRATION_DELTAS and (len(deltas) < 2 or span < self.segment_target):
            return False
        interval, nominal = frame_interval(deltas)
        count = max(1, (2 * self.part_aim + interval) // (2 * interval))  # nearest
        target = count * interval
        if not nominal:
            # A measured (not a nominal) rate is a few percent off: leave room, so parts
            # can always keep up with the camera (they may be shorter, never longer).
            target = target * (100 + MEASURED_MARGIN) // 100
        # PART-TARGET never exceeds the segment target (nor, so, TARGETDURATION).
        self.part_target = min(target, self.segment_target)
        # §4.4.4.9: at least 85%; one tick more keeps it so once written in seconds.
        self._shortest = min(self.part_target, -(-85 * self.part_target // 100) + 1)
        return True

    def _feed(self, frame: Frame) -> list[Cut]:
        target = self.part_target
        assert target is not None
        assert self._origin is not None
        cuts: list[Cut] = []
        if self._last_pts is not None and 0 < frame.pts - self._last_pts <= self._jump_limit():
            self._intervals.append(frame.pts - self._last_pts)
        self._last_pts = frame.pts
        interval = self.interval
        started = bool(self._frames) or self._cursor > 0
        time = frame.pts - self._origin - self.shift  # the camera's time, on our timeline
        expected = self._dts[-1] + interval if self._frames else self._cursor
        if started and abs(time - expected) > self._jump_limit():
            self.shift += time - expected  # a stall or a jump: continue where expected
            self.jumps += 1
            time = expected
        if self._frames:
            time = max(time, self._dts[-1] + 1)  # never backwards
        # The frame does not fit in the open part: that part closes now, late, where the
        # frame is; a segment's last part may be short, any other lasts 85..100%.
        late = bool(self._frames) and time - self._part_start > target - interval // 2
        start = self._cursor
        if self._frames:
            start = self._clamp(time, final=False) if late else self._part_start
        reason = self._cut_reason(frame, time, interval, start) if started else CutReason.START
        if self._frames and (late or reason is not None):
            cuts.append(self._close(time, final=reason is not None))
        if reason is not None:
            cuts.append(SegmentCut(reason, frame))
            self._segment_start = self._cursor
            if frame.cut is not None and frame.cut.config is not None:
                self._format = (frame.cut.config, frame.dimensions)
        dts = time
        if not self._frames:
            self._part_start = dts = self._cursor
            self._independent = False
        self._frames.append(frame)
        self._dts.append(dts)
        self._independent |= frame.cut is not None
        if dts + interval - self._part_start > target - interval // 2:
            # No room for another frame: the part is complete on this frame's arrival,
            # ending where the camera's next frame is expected (within the bounds).
            cuts.append(self._close(time + interval, final=False))
        return cuts

    def _cut_reason(
        self, frame: Frame, time: int, interval: int, part_start: int
    ) -> CutReason | None:
        """Return why ``frame`` (at ``time``, in a part from ``part_start``) starts a segment."""
        target = self.part_target or 0
        end = self._clamp(time, final=True) if self._frames else self._cursor
        elapsed = end - self._segment_start
        # Rounded to whole seconds, a segment stays within TARGETDURATION (§4.4.3.1).
        limit = self.target_duration + TICKS // 2 - 1
        cut = frame.cut
        if cut is not None and cut.config is not None:
            if (cut.config, frame.dimensions) != self._format:
                return CutReason.FORMAT
            # The encode's next scheduled IDR comes about segment_target after this one
            # (a frame late at worst): cut here unless this segment can wait for it.
            room = limit - self.segment_target - 2 * interval
            if elapsed >= max(interval, min(self.segment_target - 3 * interval // 2, room)):
                return CutReason.KEYFRAME
        # Every part ends by its start + PART-TARGET: cut before the part that could not.
        if part_start + target - self._segment_start >= limit:
            self.limit_cuts += 1
            return CutReason.LIMIT
        return None

    def _jump_limit(self) -> int:
        return max(2 * (self.part_target or self.part_aim), 4 * self.interval)

    def _clamp(self, end: int, *, final: bool) -> int:
        """Return where the open part would end if closed near ``end``."""
        high = self._part_start + (self.part_target or 0)
        low = self._part_start if final else self._part_start + self._shortest
        return max(min(end, high), low, self._dts[-1] + 1)

    def _close(self, end: int, *, final: bool) -> PartCut:
        """Close the open part near decode time ``end``; its last frame lasts until then."""
        end = self._clamp(end, final=final)
        ends = [*self._dts[1:], end]
        samples = tuple(
            Sample(frame.sample or b"", stop - start, keyframe=frame.cut is not None)
            for frame, start, stop in zip(self._frames, self._dts, ends, strict=True)
        )
        cut = PartCut(
            self._part_start, end - self._part_start, samples, self._independent, self.shift
        )
        self._cursor = end
        self._frames.clear()
        self._dts.clear()
        return cut


def frame_interval(deltas: list[int]) -> tuple[int, bool]:
    """Return the frame interval (90 kHz ticks) that intervals ``deltas`` measure.

    The mean of the intervals near their median (a skipped picture's double interval
    is left out; jitter averages away), snapped to the nearest nominal frame rate within
    ``SNAP``; the flag says whether it was.
    """
    if not deltas:
        return DEFAULT_INTERVAL, False
    middle = median_low(deltas)
    near = [d for d in deltas if middle // 2 <= d <= middle * 3 // 2]
    interval = sum(near) / len(near)
    nominal = min((TICKS / rate for rate in NOMINAL_RATES), key=lambda n: abs(interval - n))
    if abs(interval - nominal) <= SNAP * nominal:
        return round(nominal), True
    return max(1, round(interval)), False
