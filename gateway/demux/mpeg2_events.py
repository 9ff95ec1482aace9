"""Events of the MPEG-2 indexer (``gateway.demux.mpeg2``): units indexed and dropped."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction

from gateway.demux.mpeg2_sync import ContainerFormat, FormatDetected
from gateway.media import CutPoint, Payload

#: UnitDropped reasons.
TOO_LONG = "unit longer than max_unit_size"
LOST_SYNC = "lost container sync"


class PictureType(enum.IntEnum):
    """picture_coding_type (ISO/IEC 13818-2 Table 6-12)."""

    I = 1  # noqa: E741 - the standard's name
    P = 2
    B = 3


@dataclass(frozen=True, slots=True)
class UnitIndexed:
    """One coded picture (or several that start in one container packet), as received."""

    #: The bytes: a read-only view of the buffer they landed in, or bytes.
    payload: Payload
    #: The type of the unit's first picture, or at a cut point of the GOP's I-picture
    #: (what a joining client starts with); None for a unit without a picture.
    picture_type: PictureType | None
    #: That picture's temporal_reference (display order within its GOP, §6.3.9).
    temporal_reference: int | None
    #: Set when a client may start here.
    cut: CutPoint | None
    #: Every picture in it is a B-picture of an open GOP shown before its I-picture:
    #: skipped after a join.
    leading: bool
    #: Coded pictures that start in the payload (more than one when a container packet
    #: holds several; 0 for the bytes after the last picture).
    pictures: int
    #: The described picture's PTS (33 bits, 90 kHz, as the camera wrote it): set when
    #: its start code is the first picture start code in a PES packet whose header
    #: carries a PTS (ISO/IEC 13818-1 §2.4.3.7); None in an elementary stream.
    pts: int | None = None
    #: The described picture is the first after a GOP header: temporal_reference counts
    #: from the GOP's first picture in display order (ISO/IEC 13818-2 §6.3.9).
    gop: bool = False
    #: Frames per second of the sequence header in force (§6.3.3), None before one.
    frame_rate: Fraction | None = None
    #: The container the payload is in.
    format: ContainerFormat = ContainerFormat.ES
    #: The last picture's bytes go on in the next unit: the container packet that unit
    #: starts with carries them ahead of the next picture's first start code.
    continued: bool = False


@dataclass(frozen=True, slots=True)
class UnitDropped:
    """Bytes that were not delivered: a unit too long or cut by lost sync, and what followed."""

    #: Why they were dropped: TOO_LONG or LOST_SYNC.
    reason: str
    #: How many bytes.
    size: int


Event = FormatDetected | UnitIndexed | UnitDropped
