"""HLS playlists: a media playlist and a multivariant playlist as typed documents.

``render`` writes a document line by line through ``tags.render_line`` (the one table
of tags and attributes). ``EXT-X-VERSION`` is not chosen by hand: ``render`` writes the
highest version any rendered tag needs (RFC 8216bis §6.2.1: no higher than required),
so a full playlist says 6 (``EXT-X-MAP``) and a delta update 9 (``EXT-X-SKIP``).
``media_lines`` puts a media playlist's tags in the order §4.4.4.9 asks: a segment's
``EXT-X-DISCONTINUITY``, ``EXT-X-MAP`` and ``EXT-X-PROGRAM-DATE-TIME`` before its first
``EXT-X-PART``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.errors import LocalProtocolError

from .tags import (
    DECIMALS,
    TAGS,
    Discontinuity,
    DiscontinuitySequence,
    Header,
    Inf,
    Line,
    Map,
    MediaSequence,
    Part,
    PartInf,
    PreloadHint,
    ProgramDateTime,
    ServerControl,
    Skip,
    StreamInf,
    TargetDuration,
    Uri,
    Version,
    render_line,
)


@dataclass(frozen=True, slots=True)
class PartEntry:
    """A part of a listed segment."""

    uri: str
    duration: float
    independent: bool = False


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """A listed segment: its parts (near the live edge) and, once complete, its URI."""

    #: The segment's URI; None while it is in progress (only its parts are listed).
    uri: str | None
    #: EXTINF seconds; None while in progress.
    duration: float | None
    parts: tuple[PartEntry, ...] = ()
    #: Wall clock of the first sample (EXT-X-PROGRAM-DATE-TIME), Unix ns.
    program_date_time: int | None = None
    #: An EXT-X-MAP goes before this segment (the first listed one, or a new init).
    map_uri: str | None = None
    discontinuity: bool = False


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    """A live media playlist (or a delta update of one, with ``skip``)."""

    target_duration: int
    media_sequence: int
    segments: tuple[SegmentEntry, ...]
    server_control: ServerControl | None = None
    part_inf: PartInf | None = None
    discontinuity_sequence: int | None = None
    #: Set in a Playlist Delta Update (§6.2.5.1): the segments it leaves out.
    skip: Skip | None = None
    preload_hints: tuple[PreloadHint, ...] = ()


@dataclass(frozen=True, slots=True)
class Variant:
    """One variant stream of a multivariant playlist."""

    uri: str
    stream_inf: StreamInf


@dataclass(frozen=True, slots=True)
class MultivariantPlaylist:
    """A multivariant playlist: the variant streams."""

    variants: tuple[Variant, ...]


def media_lines(playlist: MediaPlaylist) -> Iterator[Line]:
    """Yield a media playlist's lines after the header, in playlist order."""
    yield TargetDuration(playlist.target_duration)
    if playlist.server_control is not None:
        yield playlist.server_control
    if playlist.part_inf is not None:
        yield playlist.part_inf
    yield MediaSequence(playlist.media_sequence)
    if playlist.discontinuity_sequence is not None:
        yield DiscontinuitySequence(playlist.discontinuity_sequence)
    if playlist.skip is not None:
        yield playlist.skip
    for segment in playlist.segments:
        # §4.4.4.9: tags applied to a parent segment go before its first EXT-X-PART.
        if segment.discontinuity:
            yield Discontinuity()
        if segment.map_uri is not None:
            yield Map(segment.map_uri)
        if segment.program_date_time is not None:
            yield ProgramDateTime(segment.program_date_time)
        for part in segment.parts:
            yield Part(part.duration, part.uri, part.independent)
        if segment.uri is not None:
            if segment.duration is None:
                raise LocalProtocolError(f"segment {segment.uri} has no duration")
            yield Inf(segment.duration)
            yield Uri(segment.uri)
    yield from playlist.preload_hints


def multivariant_lines(playlist: MultivariantPlaylist) -> Iterator[Line]:
    """Yield a multivariant playlist's lines after the header."""
    for variant in playlist.variants:
        yield variant.stream_inf
        yield Uri(variant.uri)


def render(playlist: MediaPlaylist | MultivariantPlaylist) -> str:
    """Return the playlist's text: header, the version its tags need, then its lines."""
    if isinstance(playlist, MediaPlaylist):
        lines = list(media_lines(playlist))
    else:
        lines = list(multivariant_lines(playlist))
    version = max(
        (TAGS[type(line)].version for line in lines if not isinstance(line, Uri)), default=1
    )
    head: list[Line] = [Header()]
    if version > 1:  # §4.4.1.2: required only beyond protocol version 1
        head.append(Version(version))
    return "".join(render_line(line) + "\n" for line in head + lines)


#: A URI attribute of a tag (§4.2: a quoted-string holds no double quote).
_URI_ATTR = re.compile(rb'(?<=[:,])URI="([^"]*)"')


def carry_query(text: bytes, query: str) -> bytes:
    """Return a rendered playlist with ``query`` added to every URI it lists.

    A player opened with ``index.m3u8?token=...`` fetches what the playlists name
    as they name it (hls.js, Safari): a viewing token reaches the media playlist, init
    segments, segments, parts and preload hints only if every URI carries it.
    """
    extra = query.encode("ascii")

    def carried(uri: bytes) -> bytes:
        return uri + (b"&" if b"?" in uri else b"?") + extra

    lines = text.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(b"#"):
            lines[i] = _URI_ATTR.sub(lambda m: b'URI="' + carried(m[1]) + b'"', line)
        elif line:
            lines[i] = carried(line)
    return b"\n".join(lines)


def seconds(ticks: int, rate: int = 90_000, *, up: bool = False) -> float:
    """Return ``ticks`` of ``rate`` Hz as seconds at DECIMALS places (rounded up with ``up``)."""
    scale: int = 10**DECIMALS
    scaled = ticks * scale
    units = -(-scaled // rate) if up else (2 * scaled + rate) // (2 * rate)
    return units / scale


def round_half_up(value: float) -> int:
    """Return ``value`` rounded to the nearest integer, halves up (EXTINF vs TARGETDURATION)."""
    return math.floor(value + 0.5)
