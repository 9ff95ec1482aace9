"""A segmenter's state as playlists, and the delivery directives (RFC 8216bis §6.2.5).

``media_playlist`` and ``multivariant_playlist`` read a ``Segmenter`` into the typed
model of ``gateway.publish.hls.playlist``; ``render`` writes it. The numbers follow
§4.4.3.8 and Appendix B with the least latency they allow: HOLD-BACK three target
durations, PART-HOLD-BACK three part targets, a Skip Boundary (CAN-SKIP-UNTIL) of six
target durations, parts listed for the last three target durations (§6.2.2).

Blocking playlist reload, as functions a route calls with the segmenter's state:
``parse_directives`` validates ``_HLS_msn``, ``_HLS_part`` and ``_HLS_skip`` (a
``RemoteProtocolError`` is a 400), ``readiness`` says whether the playlist can be sent
(READY), must wait for a part to complete (WAIT), or asks too far ahead (TOO_FAR: 400,
§6.2.5.2). A route waits for the segmenter's next ``PartCompleted`` and asks again, for
at most ``blocking_timeout`` seconds (then 503).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.mux.tracks import VideoTrack, codec_string

from .cutter import TICKS
from .names import MEDIA_NAME, init_name, part_name, segment_name
from .parts import Part
from .playlist import (
    MediaPlaylist,
    MultivariantPlaylist,
    PartEntry,
    SegmentEntry,
    Variant,
    seconds,
)
from .segmenter import PART_LISTED, Segmenter
from .tags import HintType, PartInf, PreloadHint, ServerControl, Skip, StreamInf

#: §4.4.3.8: the Skip Boundary is at least six target durations; HOLD-BACK at least
#: three; PART-HOLD-BACK at least two part targets and SHOULD be three.
SKIP_TARGETS = 6
HOLD_BACK_TARGETS = 3
PART_HOLD_BACK_PARTS = 3
#: §6.2.5.2: a server that cannot answer a blocking request within three target
#: durations SHOULD answer 503.
BLOCKING_TARGETS = 3

_DECIMAL_INTEGER = re.compile(r"[0-9]{1,20}", re.ASCII)
_DIRECTIVES = ("_HLS_msn", "_HLS_part", "_HLS_skip")


class Readiness(enum.Enum):
    """What a playlist request gets now."""

    READY = "ready"
    WAIT = "wait"
    #: §6.2.5.2: more than two segments, or the Advance Part Limit, ahead: 400.
    TOO_FAR = "too far ahead"


@dataclass(frozen=True, slots=True)
class PlaylistRequest:
    """The delivery directives of one media playlist request."""

    #: _HLS_msn: wait for this segment (or its part ``part``).
    msn: int | None = None
    part: int | None = None
    #: _HLS_skip=YES or v2: answer with a Playlist Delta Update.
    skip: bool = False


def parse_directives(query: Iterable[tuple[str, str]]) -> PlaylistRequest:
    """Return the directives in a request's query items; raise RemoteProtocolError (400).

    Other parameters (a viewing token, a cache buster) are ignored; ``_HLS_`` names
    this version does not define are too (§6.2.5 reserves them).
    """
    values: dict[str, str] = {}
    for key, value in query:
        if key in _DIRECTIVES:
            if key in values:
                raise RemoteProtocolError(f"{key} given twice")
            values[key] = value
    msn = _decimal_integer("_HLS_msn", values.get("_HLS_msn"))
    part = _decimal_integer("_HLS_part", values.get("_HLS_part"))
    if part is not None and msn is None:
        raise RemoteProtocolError("_HLS_part without _HLS_msn")  # §6.2.5.2: MUST be 400
    skip = values.get("_HLS_skip")
    # v2 also skips EXT-X-DATERANGE tags; this server writes none, so it is YES here.
    if skip not in (None, "YES", "v2"):
        raise RemoteProtocolError(f"_HLS_skip must be YES or v2, not {skip[:20]!r}")
    return PlaylistRequest(msn, part, skip is not None)


def readiness(segmenter: Segmenter, request: PlaylistRequest) -> Readiness:
    """Return whether the playlist answering ``request`` can be sent now."""
    last = segmenter.last_part()
    if request.msn is None:
        return Readiness.READY if last is not None else Readiness.WAIT
    complete = segmenter.building_msn - 1  # the last segment with an EXTINF (-1: none yet)
    if request.msn > complete + 2:
        return Readiness.TOO_FAR
    if request.part is None:
        return Readiness.READY if complete >= request.msn else Readiness.WAIT
    if _parts_ahead(segmenter, request.msn, request.part) > advance_part_limit(segmenter):
        return Readiness.TOO_FAR
    if last is not None and (request.msn, request.part) <= (last.msn, last.index):
        # §6.2.5.2: past a complete segment's last part means the next segment's part
        # 0, which exists if a later part does; so anything up to the last part is here.
        return Readiness.READY
    return Readiness.WAIT


def advance_part_limit(segmenter: Segmenter) -> float:
    """Return the Advance Part Limit: 3 / PART-TARGET below one second, else 3 (§6.2.5.2)."""
    target = segmenter.part_target
    if target is None:
        return 3.0 * TICKS / segmenter.cutter.part_aim
    return 3.0 * TICKS / target if target < TICKS else 3.0


def blocking_timeout(segmenter: Segmenter) -> float:
    """Return the seconds a blocking request may wait before a 503."""
    return float(BLOCKING_TARGETS * segmenter.target_duration)


def _parts_ahead(segmenter: Segmenter, msn: int, part: int) -> int:
    """Return how many parts are to complete before (msn, part), counting segments to come
    (and the rest of the one in progress) at their nominal number of parts."""
    last = segmenter.last_part()
    target = segmenter.part_target or segmenter.cutter.part_aim
    per_segment = max(1, round(segmenter.cutter.segment_target / target))
    if last is None:
        return max(0, msn - segmenter.building_msn) * per_segment + part + 1
    if msn <= last.msn:
        return part - last.index if msn == last.msn else 0
    rest = max(0, per_segment - 1 - last.index)
    return rest + (msn - last.msn - 1) * per_segment + part + 1


def _decimal_integer(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not _DECIMAL_INTEGER.fullmatch(value) or int(value) >= 2**64:
        raise RemoteProtocolError(f"{name} must be a decimal-integer, not {value[:24]!r}")
    return int(value)


def media_playlist(segmenter: Segmenter, *, skip: bool = False) -> MediaPlaylist:
    """Return the media playlist of ``segmenter`` (a delta update with ``skip``)."""
    last = segmenter.last_part()
    target = segmenter.part_target
    if last is None or target is None:
        raise LocalProtocolError("no part was published yet: wait for readiness")
    td = segmenter.target_duration
    end = last.start + last.duration
    listed_from = end - PART_LISTED * td * TICKS
    segments = segmenter.segments
    skipped = 0
    if skip and segments:
        # §6.2.5.1: skip the segments further than the Skip Boundary from the end of
        # the last complete segment (the strictest reading of "the last segment").
        edge = segments[-1].start + segments[-1].duration
        boundary = SKIP_TARGETS * td * TICKS
        while skipped < len(segments) - 1 and (
            edge - (segments[skipped].start + segments[skipped].duration) >= boundary
        ):
            skipped += 1
    entries: list[SegmentEntry] = []
    init: int | None = None
    for segment in segments[skipped:]:
        parts = segment.parts if segment.start + segment.duration > listed_from else ()
        entries.append(
            SegmentEntry(
                segment_name(segment.msn),
                seconds(segment.duration),
                _part_entries(parts),
                segment.program_date_time,
                init_name(segment.init) if segment.init != init else None,
                segment.discontinuity,
            )
        )
        init = segment.init
    building = segmenter.building
    if building:
        entries.append(
            SegmentEntry(
                None,
                None,
                _part_entries(building),
                segmenter.building_program_date_time,
                init_name(building[0].init) if building[0].init != init else None,
                segmenter.building_discontinuity,
            )
        )
    msn, index = segmenter.hint()
    hints = [PreloadHint(HintType.PART, part_name(msn, index))]
    if segmenter.current_init != last.init:
        # Appendix B.1: a hinted part with a new init segment comes with a MAP hint.
        hints.append(PreloadHint(HintType.MAP, init_name(segmenter.current_init)))
    discontinuities = segmenter.discontinuity_sequence or any(e.discontinuity for e in entries)
    return MediaPlaylist(
        target_duration=td,
        media_sequence=segments[0].msn if segments else segmenter.building_msn,
        segments=tuple(entries),
        server_control=ServerControl(
            can_skip_until=float(SKIP_TARGETS * td),
            hold_back=float(HOLD_BACK_TARGETS * td),
            part_hold_back=seconds(PART_HOLD_BACK_PARTS * target, up=True),
            can_block_reload=True,
        ),
        part_inf=PartInf(seconds(target)),
        discontinuity_sequence=segmenter.discontinuity_sequence if discontinuities else None,
        skip=Skip(skipped) if skipped else None,
        preload_hints=tuple(hints),
    )


def multivariant_playlist(
    segmenter: Segmenter, media_uri: str = MEDIA_NAME
) -> MultivariantPlaylist:
    """Return the multivariant playlist: one variant, the muxed H.264 + AAC stream."""
    tracks = segmenter.tracks()
    video = tracks[0] if tracks else None
    if not isinstance(video, VideoTrack):
        raise LocalProtocolError("no keyframe was segmented yet: wait for readiness")
    # BANDWIDTH is the peak segment bit rate (§4.4.6.2); measured on what is held.
    pieces = [(s.size, s.duration) for s in segmenter.segments] or [
        (p.size, p.duration) for p in segmenter.building
    ]
    rates = [size * 8 * TICKS / ticks for size, ticks in pieces if ticks > 0]
    total = sum(ticks for _, ticks in pieces)
    average = sum(size for size, _ in pieces) * 8 * TICKS / total if total else 0.0
    return MultivariantPlaylist(
        (
            Variant(
                media_uri,
                StreamInf(
                    bandwidth=max(1, math.ceil(max(rates, default=0.0))),
                    average_bandwidth=max(1, math.ceil(average)),
                    codecs=",".join(codec_string(track) for track in tracks),
                    resolution=(video.width, video.height),
                    frame_rate=round(TICKS / segmenter.cutter.interval, 3),
                ),
            ),
        )
    )


def _part_entries(parts: Iterable[Part]) -> tuple[PartEntry, ...]:
    return tuple(
        PartEntry(part_name(p.msn, p.index), seconds(p.duration), p.independent) for p in parts
    )
