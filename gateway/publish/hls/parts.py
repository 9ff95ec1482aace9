"""What a segmenter publishes: parts and segments, and the events that announce them."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.media import Payload


@dataclass(frozen=True, slots=True)
class Part:
    """A published part: ``moof`` + ``mdat`` with its samples' own buffers."""

    msn: int
    index: int
    #: Video decode time of its first picture and its duration, 90 kHz.
    start: int
    duration: int
    #: It holds an IDR picture (EXT-X-PART INDEPENDENT=YES).
    independent: bool
    #: What to write, in order: the moof and mdat header, then the samples.
    chunks: tuple[Payload, ...]
    #: The init segment it needs.
    init: int
    #: ``now_ns`` when it completed.
    completed_ns: int

    @property
    def size(self) -> int:
        """Return its length in bytes."""
        return sum(len(chunk) for chunk in self.chunks)


@dataclass(frozen=True, slots=True)
class Segment:
    """A complete segment: its parts back to back."""

    msn: int
    parts: tuple[Part, ...]
    #: Wall clock of its first picture (EXT-X-PROGRAM-DATE-TIME), Unix ns.
    program_date_time: int
    #: Its format differs from the segment before (EXT-X-DISCONTINUITY).
    discontinuity: bool
    #: It starts with an IDR picture (false only after a ``CutReason.LIMIT`` cut).
    independent: bool

    @property
    def start(self) -> int:
        """Return the decode time of its first picture (90 kHz)."""
        return self.parts[0].start

    @property
    def duration(self) -> int:
        """Return its duration (90 kHz): the sum of its parts'."""
        return sum(part.duration for part in self.parts)

    @property
    def init(self) -> int:
        """Return the init segment it needs."""
        return self.parts[0].init

    @property
    def chunks(self) -> tuple[Payload, ...]:
        """Return what to write: every part's chunks in order."""
        return tuple(chunk for part in self.parts for chunk in part.chunks)

    @property
    def size(self) -> int:
        """Return its length in bytes."""
        return sum(part.size for part in self.parts)


@dataclass(frozen=True, slots=True)
class PartCompleted:
    """A part was published (resolve blocked playlist and preload-hint requests)."""

    part: Part


@dataclass(frozen=True, slots=True)
class SegmentCompleted:
    """A segment got its EXTINF (its last part was published earlier)."""

    segment: Segment


@dataclass(frozen=True, slots=True)
class KeyframeWanted:
    """The segment is past its target without an IDR: ask the encode for one."""


Event = PartCompleted | SegmentCompleted | KeyframeWanted


class PartStatus(enum.Enum):
    """What a request for a part should get."""

    AVAILABLE = "available"
    #: The next part (the preload hint, or the other way the segment may go): wait.
    PENDING = "pending"
    MISSING = "missing"
