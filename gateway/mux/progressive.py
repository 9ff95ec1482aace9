"""A progressive fMP4 stream from encoded frames: the init segment, then a fragment a frame.

Sans-IO: ``ProgressiveMuxer`` takes the H.264 frames a reader's cursor hands out (and
the AAC frames that arrived meanwhile) and returns the chunks to write. Decode times
start at 0 on the first keyframe and stay continuous when the reader is cut forward
to a newer keyframe (``maxlag``): the skipped span is taken out of both tracks' times
alike, so a player goes on without waiting out the gap and audio stays in sync.

Video and audio timestamps share one origin (the camera's frames are stamped on one
monotonic clock, DESIGN §6), so an audio packet's place is its own pts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from gateway.errors import LocalProtocolError
from gateway.media import VIDEO_TIME_BASE, Frame, Payload

from .fmp4 import Sample, TrackRun, fragment, init_segment
from .tracks import AudioCodec, AudioTrack, Track, VideoTrack

VIDEO_TRACK = 1
AUDIO_TRACK = 2
#: Frame duration assumed before two frames were seen (25 fps at 90 kHz).
DEFAULT_VIDEO_DURATION = 3600


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """What the init segment says of the audio track."""

    codec: AudioCodec
    sample_rate: int
    channels: int
    #: AudioSpecificConfig (AAC) or OpusHead (Opus).
    config: bytes


class ProgressiveMuxer:
    """Turns encoded frames into one progressive fMP4 stream (one reader's state)."""

    def __init__(self, audio: AudioFormat | None = None) -> None:
        """Mux H.264 video, and ``audio`` when given."""
        self.audio = audio
        self._sequence = 0
        self._v_base: int | None = None
        self._v_next = 0
        self._v_duration = DEFAULT_VIDEO_DURATION
        self._v_last_pts: int | None = None
        self._v_last_dts = -1
        self._a_base = 0
        self._a_next: int | None = None
        self._config: tuple[bytes | None, tuple[int, int] | None] = (None, None)
        #: Span taken out of the timeline by cuts, in 90 kHz ticks.
        self.skipped_ticks = 0
        #: Audio frames dropped because they fell before the video (start, cuts).
        self.audio_dropped = 0

    @property
    def started(self) -> bool:
        """Return True once the init segment was written."""
        return self._v_base is not None

    def start(self, keyframe: Frame) -> bytes:
        """Return the init segment for a stream starting at ``keyframe``."""
        cut = keyframe.cut
        if cut is None or cut.config is None or keyframe.dimensions is None:
            raise LocalProtocolError("a progressive MP4 starts at a keyframe with its avcC")
        width, height = keyframe.dimensions
        tracks: list[Track] = [VideoTrack(VIDEO_TRACK, width, height, cut.config)]
        if self.audio is not None:
            a = self.audio
            tracks.append(AudioTrack(AUDIO_TRACK, a.codec, a.sample_rate, a.channels, a.config))
        self._config = (cut.config, keyframe.dimensions)
        self._v_base = keyframe.pts
        self._v_last_pts = None
        if self.audio is not None:
            self._a_base = _rescale(keyframe.pts, VIDEO_TIME_BASE, self.audio.sample_rate)
        return init_segment(tracks)

    def fits(self, frame: Frame) -> bool:
        """Return False for a keyframe whose avcC or size differs from the init segment's."""
        cut = frame.cut
        if cut is None or cut.config is None:
            return True
        return (cut.config, frame.dimensions) == self._config

    def fragment(
        self, video: Sequence[tuple[Frame, bool]], audio: Sequence[Frame] = ()
    ) -> list[Payload]:
        """Return the chunks of one fragment holding ``video`` (frame, joined) and ``audio``.

        A joined frame after the start is a cut: the time skipped to reach it leaves
        the timeline. Audio from before the current video time is dropped.
        """
        if self._v_base is None:
            raise LocalProtocolError("start() the stream first")
        runs: list[TrackRun] = []
        samples: list[Sample] = []
        first_dts: int | None = None
        for frame, joined in video:
            dts = frame.pts - self._v_base
            if self._v_last_pts is not None:
                step = frame.pts - self._v_last_pts
                if joined and dts > self._v_next:
                    self._skip(dts - self._v_next)
                    dts = self._v_next
                elif 0 < step < 90_000:
                    self._v_duration = step
            # The camera's own time, jitter and all: a sample's duration is only a guess
            # (the next picture's time is not known yet), the next fragment's tfdt is not.
            dts = max(dts, self._v_last_dts + 1)  # never backwards
            if first_dts is None:
                first_dts = dts
            data = frame.sample if frame.sample is not None else frame.payload
            samples.append(Sample(data, self._v_duration, keyframe=frame.cut is not None))
            self._v_last_pts = frame.pts
            self._v_last_dts = dts
            self._v_next = dts + self._v_duration
        if samples and first_dts is not None:
            runs.append(TrackRun(VIDEO_TRACK, first_dts, samples))
        audio_run = self._audio_run(audio)
        if audio_run is not None:
            runs.append(audio_run)
        if not runs:
            return []
        self._sequence += 1
        return fragment(self._sequence, runs)

    def _skip(self, ticks: int) -> None:
        self._v_base = (self._v_base or 0) + ticks
        self.skipped_ticks += ticks
        if self.audio is not None:
            self._a_base += _rescale(ticks, VIDEO_TIME_BASE, self.audio.sample_rate)

    def _audio_run(self, audio: Sequence[Frame]) -> TrackRun | None:
        if self.audio is None or not audio:
            return None
        samples: list[Sample] = []
        first: int | None = None
        for frame in audio:
            t = frame.pts - self._a_base
            nxt = self._a_next
            duration = frame.duration or 1024
            if t < 0 or (nxt is not None and t + duration <= nxt):
                self.audio_dropped += 1  # before the video start, or a cut skipped it
                continue
            if nxt is not None and t - nxt < duration:
                t = nxt  # rounding of the cut's rescale: keep the track seamless
            elif samples and nxt is not None:
                # The camera's audio stopped for a while: the sample before the gap lasts
                # until the next one, so the times stay the camera's and the track has no
                # hole for a player to stall at.
                last = samples[-1]
                samples[-1] = Sample(last.data, last.duration + t - nxt)
            if first is None:
                first = t
            samples.append(Sample(frame.payload, duration))
            self._a_next = t + duration
        if first is None:
            return None
        return TrackRun(AUDIO_TRACK, first, samples)


def _rescale(value: int, time_base: Fraction, rate: int) -> int:
    return value * time_base.numerator * rate // time_base.denominator
