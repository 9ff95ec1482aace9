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
    """Where a client may start a stream and decode every frame: a keyframe (DESIGN §6).

    MPEG-2: a GOP's first picture; H.264: an IDR access unit. The defaults describe a
    keyframe that needs nothing but itself and what ``join`` adds (H.264 IDR, audio): a
    closed GOP without a broken link, so no picture after it is skipped.
    """

    #: MPEG-2: the GOP header's ``closed_gop`` flag (ISO/IEC 13818-2 §6.3.8), as
    #: received; False makes a joining client skip the ``leading`` frames that follow.
    closed_gop: bool = True
    #: MPEG-2: the GOP header's ``broken_link`` flag, as received.
    broken_link: bool = False
    #: What a client starting here is sent instead of the frame's payload: the payload
    #: with what the stream does not repeat prepended (MPEG-2: sequence header and
    #: extension, PAT and PMT in a transport stream, and ``broken_link`` set in an open
    #: GOP), so the first bytes a client gets always decode. Empty: the payload itself
    #: (H.264 Annex-B with SPS/PPS in band); ``Frame.join_payload`` resolves it.
    join: Payload = b""
    #: Codec configuration valid from here on, for containers that carry it out of band
    #: (H.264: the avcC record of an fMP4 init segment); None: there is none.
    config: bytes | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    """One unit of media received from a camera: a JPEG image, an audio part, or MPEG data."""

    #: The encoded bytes, exactly as the camera sent them.
    payload: Payload
    #: MIME type of the part (``image/jpeg``, ``audio/32KADPCM``); MPEG-2: of its container
    #: (``video/mpeg`` elementary, ``video/mp2p`` program, ``video/mp2t`` transport stream).
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
    #: Set when a client may start at this frame: a keyframe (MPEG-2: a GOP's first
    #: picture; H.264: an IDR access unit).
    cut: CutPoint | None = None
    #: MPEG-2: a B-picture of an open GOP shown before the GOP's I-picture; a client that
    #: started at that GOP's cut point skips it (it references the previous GOP).
    leading: bool = False
    #: MPEG-2 in a program or transport stream: the last picture's bytes go on in the
    #: next frame, ahead of its first start code (several pictures shared a PES packet).
    continued: bool = False

    #: Encoded renditions: the same access unit in the MP4 sample form (H.264: 4-byte
    #: lengths, no parameter sets), converted once for every fMP4 and LL-HLS reader.
    sample: Payload | None = None
    #: Duration in ``time_base`` units where the producer knows it (audio packets), else 0.
    duration: int = 0
    #: Encoded video: the picture's (width, height).
    dimensions: tuple[int, int] | None = None

    @property
    def size(self) -> int:
        """Return the payload length in bytes."""
        return len(self.payload)

    @property
    def keyframe(self) -> bool:
        """Return True if a client may start at this frame (``cut`` is set)."""
        return self.cut is not None

    @property
    def join_payload(self) -> Payload:
        """Return what a client starting at this frame is sent: the cut's join, or the payload."""
        cut = self.cut
        return cut.join if cut is not None and len(cut.join) else self.payload
