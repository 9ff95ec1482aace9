"""One camera's LL-HLS segmenter: encoded frames in, init segment, parts and segments out.

Sans-IO (no asyncio, aiohttp or av; time is an argument): the I/O layer feeds the H.264
frames of the camera's shared encode with ``push_video`` and its AAC frames with
``push_audio``, and gets events back: ``PartCompleted`` the moment a part's last frame
arrives, ``SegmentCompleted`` when the next segment's first frame does, and
``KeyframeWanted`` when a segment runs long without an IDR. One segmenter serves every
viewer of the camera; what it holds is bounded by time (the playlist window plus what
must stay fetchable after it, RFC 8216bis §6.2.2) and by ``max_segments``.

A part is one ``moof`` + ``mdat`` holding its pictures and the audio that arrived for
them (``gateway.publish.hls.audio``), built by ``gateway.mux.fmp4.fragment`` around the
encoded packets' own buffers (``Frame.sample``, ``Frame.payload``): no media byte is
copied. A segment is its parts back to back (the same chunks), so a player that ignores
parts gets the same samples with the same timing (§3.2). Where parts and segments begin
and end, and the decode times, are ``gateway.publish.hls.cutter``'s business.

Names (``gateway.publish.hls.names``) are parsed before ``lookup``; ``part_status`` tells a
route whether a missing part is the one a preload hint announced (wait) or not (404).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator

from gateway.errors import LocalProtocolError
from gateway.media import NS_PER_SECOND, Frame, Payload
from gateway.mux.fmp4 import TrackRun, fragment, init_segment
from gateway.mux.progressive import AUDIO_TRACK, VIDEO_TRACK, AudioFormat
from gateway.mux.tracks import AudioTrack, Track, VideoTrack

from .audio import AudioQueue
from .cutter import TICKS, CutReason, PartCut, SegmentCut, VideoCutter
from .names import Kind, Resource
from .parts import (
    Event,
    KeyframeWanted,
    Part,
    PartCompleted,
    PartStatus,
    Segment,
    SegmentCompleted,
)

#: Playlist window in target durations when none is given.
DEFAULT_WINDOW = 12
#: §6.2.2: parts stay listed while within three target durations of the end, and
#: fetchable for three more after that; removed segments stay fetchable as long.
PART_LISTED = 3
HOLD_AFTER = 3


class Segmenter:
    """Turns one camera's encoded frames into LL-HLS parts and segments."""

    def __init__(
        self,
        *,
        part_target: float = 0.2,
        segment_target: float = 1.0,
        audio: AudioFormat | None = None,
        wall_offset_ns: int = 0,
        window: float | None = None,
        max_segments: int = 256,
        max_pending_audio: int = 512,
        first_msn: int = 0,
    ) -> None:
        """Segment video (and ``audio``) into parts near ``part_target`` seconds.

        ``wall_offset_ns`` maps the frames' monotonic ``received_ns`` to Unix time
        (``time.time_ns() - time.monotonic_ns()``). ``window`` is the playlist's length in
        seconds (default 12 target durations, at least 3); ``max_segments`` bounds what is
        held in all. ``first_msn`` numbers the first segment (EXT-X-MEDIA-SEQUENCE).
        """
        if not 0 < part_target <= segment_target <= 60:
            raise LocalProtocolError("need 0 < part_target <= segment_target <= 60 seconds")
        if not 0 <= first_msn < 2**63:
            raise LocalProtocolError("first_msn must be in [0, 2**63)")
        #: EXT-X-TARGETDURATION, whole seconds; it never changes (§6.2.1).
        self.target_duration = max(1, math.ceil(round(segment_target, 6)))
        td = self.target_duration * TICKS
        window = DEFAULT_WINDOW * self.target_duration if window is None else window
        # §6.2.2: a live playlist never gets shorter than three target durations.
        if window < 3 * self.target_duration or max_segments < 4:
            raise LocalProtocolError("window must be >= 3 target durations, max_segments >= 4")
        self.window = window
        self.max_segments = max_segments
        self.wall_offset_ns = wall_offset_ns
        self.cutter = VideoCutter(
            part_target=round(part_target * TICKS),
            segment_target=round(segment_target * TICKS),
            target_duration=td,
        )
        self.audio = (
            None
            if audio is None
            else AudioQueue(audio, track_id=AUDIO_TRACK, max_pending=max_pending_audio)
        )
        #: Bumped by every change a playlist shows (for caching the rendered text).
        self.version = 0
        #: Segments removed from the window so far that had a discontinuity.
        self.discontinuity_sequence = 0
        self._window: deque[Segment] = deque()
        self._window_ticks = 0
        self._retired: deque[tuple[Segment, int]] = deque()
        self._held: dict[int, Segment] = {}
        self._building: list[Part] = []
        self._msn = first_msn
        self._inits: dict[int, tuple[bytes, tuple[Track, ...]]] = {}
        self._init = -1
        self._sequence = 0
        self._origin_pts = 0
        self._anchor_ns = 0
        self._next_pdt = 0
        self._pdt = 0
        self._discontinuity = False
        self._independent = True
        self._wanted = False

    # ---- input --------------------------------------------------------------------

    def push_video(self, frame: Frame, now_ns: int) -> list[Event]:
        """Take the next H.264 frame of the encode; return what it completed."""
        events: list[Event] = []
        for cut in self.cutter.push(frame):
            if isinstance(cut, SegmentCut):
                events += self._start_segment(cut, now_ns)
            else:
                events.append(self._publish(cut, now_ns))
        part_target = self.cutter.part_target
        if (
            not self._wanted
            and part_target is not None
            and self.cutter.segment_elapsed > self.cutter.segment_target + part_target
        ):
            self._wanted = True  # once per segment; the encode rate-limits requests
            events.append(KeyframeWanted())
        self.expire(now_ns)
        if events:
            self.version += 1
        return events

    def push_audio(self, frame: Frame, now_ns: int) -> list[Event]:
        """Queue the next AAC frame for the part it belongs to (none completes on audio)."""
        del now_ns  # audio never completes a part; kept for a uniform feed loop
        if self.audio is not None:
            self.audio.push(frame)
        return []

    def expire(self, now_ns: int) -> None:
        """Forget removed segments held for longer than §6.2.2 asks (and beyond the bounds)."""
        hold = HOLD_AFTER * self.target_duration * NS_PER_SECOND
        forgot = False
        while self._retired and (
            now_ns - self._retired[0][1] >= hold or len(self._held) > self.max_segments
        ):
            segment, _ = self._retired.popleft()
            del self._held[segment.msn]
            forgot = True
        if forgot:
            oldest = min((s.init for s in self._held.values()), default=self._init)
            for number in [n for n in self._inits if n < oldest]:
                del self._inits[number]

    # ---- state the playlists read ---------------------------------------------------

    @property
    def started(self) -> bool:
        """Return True once a part was published."""
        return bool(self._window or self._building)

    @property
    def segments(self) -> tuple[Segment, ...]:
        """Return the complete segments in the playlist window, oldest first."""
        return tuple(self._window)

    @property
    def building(self) -> tuple[Part, ...]:
        """Return the published parts of the segment in progress."""
        return tuple(self._building)

    @property
    def building_msn(self) -> int:
        """Return the media sequence number of the segment in progress."""
        return self._msn

    @property
    def building_program_date_time(self) -> int:
        """Return the wall clock (Unix ns) of the segment in progress."""
        return self._pdt

    @property
    def building_discontinuity(self) -> bool:
        """Return True if the segment in progress changes the format."""
        return self._discontinuity

    @property
    def part_target(self) -> int | None:
        """Return PART-TARGET in 90 kHz ticks (None before the first frames fixed it)."""
        return self.cutter.part_target

    @property
    def current_init(self) -> int:
        """Return the number of the newest init segment (-1 before the first keyframe)."""
        return self._init

    def tracks(self, init: int | None = None) -> tuple[Track, ...]:
        """Return the tracks of init segment ``init`` (default: the newest), video first."""
        entry = self._inits.get(self._init if init is None else init)
        return () if entry is None else entry[1]

    def last_part(self) -> Part | None:
        """Return the newest published part."""
        if self._building:
            return self._building[-1]
        return self._window[-1].parts[-1] if self._window else None

    def hint(self) -> tuple[int, int]:
        """Return (msn, index) of the next part: what EXT-X-PRELOAD-HINT announces."""
        if self.cutter.next_starts_segment() and self._building:
            return self._msn + 1, 0
        return self._msn, len(self._building)

    # ---- lookup ---------------------------------------------------------------------

    def init(self, number: int) -> bytes | None:
        """Return init segment ``number`` while a held segment needs it."""
        entry = self._inits.get(number)
        return None if entry is None else entry[0]

    def segment(self, msn: int) -> Segment | None:
        """Return segment ``msn`` if it is complete and held."""
        return self._held.get(msn)

    def part(self, msn: int, index: int) -> Part | None:
        """Return part ``index`` of segment ``msn`` if it is published and held."""
        if msn == self._msn:
            parts: tuple[Part, ...] | list[Part] = self._building
        else:
            segment = self._held.get(msn)
            parts = () if segment is None else segment.parts
        return parts[index] if 0 <= index < len(parts) else None

    def lookup(self, resource: Resource) -> tuple[Payload, ...] | None:
        """Return the chunks of an init segment, segment or part; None if not held."""
        if resource.kind is Kind.INIT:
            data = self.init(resource.number)
            return None if data is None else (data,)
        if resource.kind is Kind.SEGMENT:
            segment = self.segment(resource.number)
            return None if segment is None else segment.chunks
        if resource.kind is Kind.PART:
            part = self.part(resource.number, resource.index)
            return None if part is None else part.chunks
        raise LocalProtocolError(f"playlists are rendered, not looked up: {resource.kind}")

    def part_status(self, msn: int, index: int) -> PartStatus:
        """Return whether part (msn, index) exists, is the next one to come, or neither.

        §6.2.6: a request for the hinted part waits; anything else not found is a 404.
        Both ways the segment in progress may go count as next (the hint guesses one),
        and a guess that turns out wrong becomes MISSING once the next frame settles it.
        """
        if self.part(msn, index) is not None:
            return PartStatus.AVAILABLE
        if self.started and (msn, index) in ((self._msn, len(self._building)), self.hint()):
            return PartStatus.PENDING
        return PartStatus.MISSING

    def held_segments(self) -> Iterator[Segment]:
        """Yield every held segment (window and recently removed), for stats."""
        yield from self._held.values()

    # ---- building -------------------------------------------------------------------

    def _start_segment(self, cut: SegmentCut, now_ns: int) -> list[Event]:
        events: list[Event] = []
        if self._building:
            segment = Segment(
                self._msn,
                tuple(self._building),
                self._pdt,
                self._discontinuity,
                self._independent,
            )
            events.append(SegmentCompleted(segment))
            self._next_pdt = self._pdt + segment.duration * NS_PER_SECOND // TICKS
            self._add_to_window(segment, now_ns)
            self._building = []
            self._msn += 1
        frame = cut.frame
        if cut.reason is CutReason.START:
            self._origin_pts = frame.pts
            self._anchor_ns = frame.received_ns + self.wall_offset_ns
        if cut.reason in (CutReason.START, CutReason.FORMAT):
            self._new_init(frame)
        self._discontinuity = cut.reason is CutReason.FORMAT
        self._independent = cut.reason is not CutReason.LIMIT
        self._wanted = False
        return events

    def _new_init(self, frame: Frame) -> None:
        cut, size = frame.cut, frame.dimensions
        if cut is None or cut.config is None or size is None:
            raise LocalProtocolError("a segment with a new format starts at a keyframe")
        tracks: list[Track] = [VideoTrack(VIDEO_TRACK, *size, cut.config)]
        if self.audio is not None:
            a = self.audio.format
            tracks.append(AudioTrack(AUDIO_TRACK, a.codec, a.sample_rate, a.channels, a.config))
        self._init += 1
        self._inits[self._init] = (init_segment(tracks), tuple(tracks))

    def _publish(self, cut: PartCut, now_ns: int) -> PartCompleted:
        runs = [TrackRun(VIDEO_TRACK, cut.start, cut.samples)]
        if self.audio is not None:
            run = self.audio.take(cut.end, self._origin_pts + cut.shift)
            if run is not None:
                runs.append(run)
        self._sequence += 1
        chunks = tuple(fragment(self._sequence, runs))
        if not self._building:
            # The camera's wall clock at the part's start; never before the previous
            # segment's end (§6.2.1: no ambiguous dates), later after a stall.
            wall = self._anchor_ns + (cut.start + cut.shift) * NS_PER_SECOND // TICKS
            self._pdt = max(wall, self._next_pdt)
        part = Part(
            self._msn,
            len(self._building),
            cut.start,
            cut.duration,
            cut.independent,
            chunks,
            self._init,
            now_ns,
        )
        self._building.append(part)
        return PartCompleted(part)

    def _add_to_window(self, segment: Segment, now_ns: int) -> None:
        self._window.append(segment)
        self._held[segment.msn] = segment
        self._window_ticks += segment.duration
        limit = round(self.window * TICKS)
        # §6.2.2: remove the oldest while what is left still covers the window.
        while len(self._window) > 1 and self._window_ticks - self._window[0].duration >= limit:
            old = self._window.popleft()
            self._window_ticks -= old.duration
            self._retired.append((old, now_ns))
            if old.discontinuity:
                self.discontinuity_sequence += 1
