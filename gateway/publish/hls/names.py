"""The names of a camera's LL-HLS resources, and the one parser that reads them back.

A route hands the last path component of a request to ``parse_name`` before it looks
anything up: only the canonical spellings below parse (decimal numbers without leading
zeros, no other characters), so ``../``, ``%2F``, ``seg01.m4s`` or a megabyte of digits
never reach the segmenter. Anything that does not parse is a 404.

=====================  =====================================================
``index.m3u8``         the multivariant playlist (what a player is given)
``media.m3u8``         the media playlist (blocking reload, delta updates)
``init{n}.mp4``        init segment ``n`` (a new one after a format change)
``seg{msn}.m4s``       a whole segment (players that ignore parts)
``part{msn}.{i}.m4s``  part ``i`` of segment ``msn``
=====================  =====================================================
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

MULTIVARIANT_NAME: Final = "index.m3u8"
MEDIA_NAME: Final = "media.m3u8"
#: Longer names are refused before the pattern runs.
MAX_NAME_LENGTH: Final = 48
#: Bounds of the numbers in names: a media sequence number is a decimal-integer
#: (RFC 8216bis §4.2, below 2**64); part indexes and init numbers are small.
MAX_MSN: Final = 2**64 - 1
MAX_PART_INDEX: Final = 9999
MAX_INIT: Final = 999_999_999

_NUMBER = r"(0|[1-9][0-9]{0,19})"
_NAME = re.compile(
    rf"index\.m3u8|media\.m3u8|init{_NUMBER}\.mp4|seg{_NUMBER}\.m4s|part{_NUMBER}\.{_NUMBER}\.m4s",
    re.ASCII,
)


class Kind(enum.Enum):
    """What a name refers to."""

    MULTIVARIANT = "multivariant playlist"
    MEDIA = "media playlist"
    INIT = "init segment"
    SEGMENT = "segment"
    PART = "part"


@dataclass(frozen=True, slots=True)
class Resource:
    """A parsed resource name."""

    kind: Kind
    #: INIT: the init number; SEGMENT and PART: the media sequence number.
    number: int = 0
    #: PART: the part index in its segment.
    index: int = 0


def parse_name(name: str) -> Resource | None:
    """Return the resource ``name`` refers to, or None when it is not one of ours."""
    if len(name) > MAX_NAME_LENGTH:
        return None
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    init, segment, part_msn, part_index = match.groups()
    if init is not None:
        number = int(init)
        return Resource(Kind.INIT, number) if number <= MAX_INIT else None
    if segment is not None:
        number = int(segment)
        return Resource(Kind.SEGMENT, number) if number <= MAX_MSN else None
    if part_msn is not None and part_index is not None:
        number, index = int(part_msn), int(part_index)
        if number > MAX_MSN or index > MAX_PART_INDEX:
            return None
        return Resource(Kind.PART, number, index)
    return Resource(Kind.MULTIVARIANT if name == MULTIVARIANT_NAME else Kind.MEDIA)


def init_name(number: int) -> str:
    """Return the name of init segment ``number``."""
    return f"init{number}.mp4"


def segment_name(msn: int) -> str:
    """Return the name of segment ``msn``."""
    return f"seg{msn}.m4s"


def part_name(msn: int, index: int) -> str:
    """Return the name of part ``index`` of segment ``msn``."""
    return f"part{msn}.{index}.m4s"
