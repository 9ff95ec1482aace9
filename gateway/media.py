"""Shared media vocabulary: stream kinds, frames and the one timing vocabulary."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from fractions import Fraction

#: Every video timestamp is an integer count of 1/90000 s (what RTP, MPEG and PyAV use).
VIDEO_TIME_BASE = Fraction(1, 90_000)
#: Nanoseconds per second, for converting monotonic_ns() readings.
NS_PER_SECOND = 1_000_000_000

#: A payload as the demuxer hands it over: bytes, or a read-only memoryview of the
#: buffer the socket read landed in. Shared by every client; never mutated.
Payload = bytes | memoryview


class StreamKind(enum.Enum):
    """One upstream stream of a camera, named as in the configuration and the API."""

    MJPEG = "mjpeg"
    MPEG2 = "mpeg2"
    AUDIO = "audio"


class StreamState(enum.Enum):
    """Ingest state of one camera stream, as shown by ``/api/cameras``."""

    IDLE = "idle"
    CONNECTING = "connecting"
    LIVE = "live"
    BACKOFF = "backoff"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CutPoint:
    """Where a client may start an MPEG-2 stream and decode every picture (DESIGN §6)."""

    #: The GOP header's ``closed_gop`` flag (ISO/IEC 13818-2 §6.3.8), as received.
    closed_gop: bool
    #: The GOP header's ``broken_link`` flag, as received.
    broken_link: bool
    #: What a client starting here is sent instead of the frame's payload: the payload
    #: with the headers the camera does not repeat prepended (sequence header and
    #: extension; PAT and PMT in a transport stream) and ``broken_link`` set in an open
    #: GOP, so the first bytes a client gets always decode.
    join: Payload


@dataclass(frozen=True, slots=True)
class Frame:
    """One unit of media received from a camera: a JPEG image, an audio part, or MPEG data."""

    #: The encoded bytes, exactly as the camera sent them.
    payload: Payload
    #: MIME type of the part (``image/jpeg``, ``audio/32KADPCM``, ``video/mpeg``).
    content_type: str
    #: Ingest sequence number, 0-based and gap-free per stream connection.
    seq: int
    #: Presentation time in ``time_base`` units (DESIGN §6, Time): MJPEG arrival times
    #: smoothed to the camera's rate; MPEG-2 the camera's PES PTS re-anchored (derived
    #: where it has none), so in presentation order: not monotonic over B-pictures; audio
    #: arrival. A new connection (``seq`` 0) re-anchors on arrival.
    pts: int
    #: Unit of ``pts``.
    time_base: Fraction = VIDEO_TIME_BASE
    #: ``time.monotonic_ns()`` when the last byte of the frame arrived.
    received_ns: int = 0
    #: Extra part headers worth keeping (lower-case name, value), e.g. ``x-delta-time``.
    headers: tuple[tuple[str, str], ...] = field(default=())
    #: MPEG-2: set when a client may start at this frame (a GOP's first picture).
    cut: CutPoint | None = None
    #: MPEG-2: a B-picture of an open GOP shown before the GOP's I-picture; a client that
    #: started at that GOP's cut point skips it (it references the previous GOP).
    leading: bool = False

    @property
    def size(self) -> int:
        """Return the payload length in bytes."""
        return len(self.payload)
