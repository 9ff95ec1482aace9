"""The audio beside an LL-HLS stream's video: which AAC frames go into which part.

Audio and video share one fMP4 (a ``moof`` with a video ``traf`` and an audio ``traf``
per part), so a player needs one request per part, not two. A part is published the
moment its last picture arrives; the camera's audio arrives some 50-150 ms after the
pictures of the same instant (block-wise from the camera, then the AAC encoder's two
frames of delay). Waiting for it would delay every part by that much, so a part takes
the audio that has arrived and starts before the part's video ends, and the rest goes
into the next part. What keeps audio and video in sync is each track's own decode
times (``tfdt``), not which part a frame travels in: the audio track is continuous on
its own, part after part, and just trails the video by the audio's lag at the live edge.

Times: the camera stamps audio and video on one clock, so an AAC frame's place on the
output timeline is its pts minus the video's origin and the cutter's ``shift``, in
samples. Frames that would overlap what was sent (a jump moved the timeline) are
dropped; small misalignments snap to the previous frame's end; a gap inside one part is
bridged by lengthening the frame before it (a ``trun`` has no per-sample times), a gap
between parts is left to the next ``tfdt``.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

from gateway.errors import LocalProtocolError
from gateway.media import Frame
from gateway.mux.fmp4 import Sample, TrackRun
from gateway.mux.progressive import AudioFormat

from .cutter import TICKS

#: Samples per AAC frame, when a frame does not say.
AAC_FRAME = 1024


class AudioQueue:
    """Audio frames waiting for the part they go into (one track's state)."""

    def __init__(self, audio: AudioFormat, *, track_id: int, max_pending: int = 512) -> None:
        """Queue frames of ``audio`` for track ``track_id``, at most ``max_pending`` at once."""
        if max_pending < 1:
            raise LocalProtocolError("max_pending must be >= 1")
        self.format = audio
        self.track_id = track_id
        self.max_pending = max_pending
        self._pending: deque[Frame] = deque()
        self._next: int | None = None
        #: Frames dropped: the queue was full (no video for a while), they fell before
        #: the stream's start, or they overlapped what was already sent.
        self.dropped = 0

    def push(self, frame: Frame) -> None:
        """Queue one audio frame (pts in its own time base, on the video's clock)."""
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(frame)

    def take(self, end: int, origin: int) -> TrackRun | None:
        """Return the queued audio that starts before video time ``end``, as one run.

        ``origin`` is the camera time (90 kHz) of output time 0: the first keyframe's pts
        plus the cutter's ``shift``.
        """
        rate = self.format.sample_rate
        base = origin * rate // TICKS
        limit = end * rate // TICKS
        samples: list[Sample] = []
        first: int | None = None
        while self._pending:
            frame = self._pending[0]
            start = _in_rate(frame, rate) - base
            if start >= limit:
                break
            self._pending.popleft()
            duration = frame.duration or AAC_FRAME
            after = self._next
            if start < 0 or (after is not None and start + duration <= after):
                self.dropped += 1
                continue
            if after is not None and start - after < duration:
                start = after  # rounding or jitter: keep the track seamless
            elif after is not None and samples:
                last = samples[-1]  # a gap inside this run: the frame before it lasts longer
                samples[-1] = Sample(last.data, last.duration + start - after)
            if first is None:
                first = start
            samples.append(Sample(frame.payload, duration))
            self._next = start + duration
        if first is None:
            return None
        return TrackRun(self.track_id, first, samples)


def _in_rate(frame: Frame, rate: int) -> int:
    """Return the frame's pts in 1/``rate`` units."""
    base = frame.time_base
    if base == Fraction(1, rate):
        return frame.pts
    return frame.pts * base.numerator * rate // base.denominator
