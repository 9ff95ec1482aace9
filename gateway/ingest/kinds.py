"""What differs per stream kind: upstream path, Accept, body consumer, events to frames.

A new body consumer plugs in at two places, side by side here: ``make_consumer`` picks
it for a response, and its kind's entry in ``FRAME_DATA`` turns its events into frames.
``STAMPERS`` says where each kind's ``Frame.pts`` comes from (DESIGN §6, Time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol
from urllib.parse import urlencode

from gateway.config import CameraConfig
from gateway.demux.http1 import BodyConsumer, ResponseHead
from gateway.demux.mpeg2 import Mpeg2Indexer, UnitIndexed
from gateway.demux.mpeg2_sync import MEDIA_TYPES
from gateway.demux.multipart import MultipartDemuxer, PartReceived
from gateway.errors import LocalProtocolError, UpstreamError
from gateway.ingest.clock import MediaClock
from gateway.ingest.mpeg2_clock import Mpeg2Clock
from gateway.ingest.raw import RawConsumer, RawReceived
from gateway.media import NS_PER_SECOND, VIDEO_TIME_BASE, CutPoint, Payload, StreamKind

#: Upstream paths per stream kind (VAPIX §5.2.6, §5.3.1, §5.5.1).
STREAM_PATHS = {
    StreamKind.MJPEG: "/axis-cgi/mjpg/video.cgi",
    StreamKind.MPEG2: "/axis-cgi/mpeg2/video.cgi",
    StreamKind.AUDIO: "/axis-cgi/audio/receive.cgi",
}
#: What each kind asks for in ``Accept``.
ACCEPT_HEADERS = {
    StreamKind.MJPEG: "multipart/x-mixed-replace, image/jpeg;q=0.5",
    StreamKind.MPEG2: "video/mpeg, video/mp2t;q=0.5",
    StreamKind.AUDIO: "multipart/x-mixed-replace, audio/*;q=0.5",
}
#: Body types of an MPEG-2 stream (elementary, program, transport): the indexer finds
#: which from the bytes, and its frames say so in ``Frame.content_type``.
MPEG2_TYPES = tuple(MEDIA_TYPES.values())
#: G.726 and G.711 run at 8 kHz: audio pts count samples (STYLE.md §10).
AUDIO_TIME_BASE = Fraction(1, 8000)
#: The unit of ``Frame.pts`` per kind.
TIME_BASES = {
    StreamKind.MJPEG: VIDEO_TIME_BASE,
    StreamKind.MPEG2: VIDEO_TIME_BASE,
    StreamKind.AUDIO: AUDIO_TIME_BASE,
}


def stream_path(camera: CameraConfig, kind: StreamKind, fps: int | None) -> str:
    """Return the upstream path and query for one stream of ``camera``."""
    query: list[tuple[str, str]] = []
    if kind is not StreamKind.AUDIO and camera.channel is not None:
        query.append(("camera", str(camera.channel)))
    if kind is StreamKind.MJPEG:
        if camera.resolution is not None:
            query.append(("resolution", "{}x{}".format(*camera.resolution)))
        if fps is not None:
            query.append((camera.rate_param.value, str(fps)))
    path = STREAM_PATHS[kind]
    return f"{path}?{urlencode(query)}" if query else path


def make_consumer(kind: StreamKind, head: ResponseHead) -> BodyConsumer:
    """Return the body consumer for a 200 response, or raise for content we cannot ingest."""
    content_type = head.get("content-type", "") or ""
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith("multipart/") and kind is not StreamKind.MPEG2:
        return MultipartDemuxer(content_type, check_jpeg=kind is StreamKind.MJPEG)
    if kind is StreamKind.MPEG2 and media in MPEG2_TYPES:
        # The indexer finds ES, PS or TS from the bytes, whatever the type says.
        return Mpeg2Indexer()
    if kind is StreamKind.AUDIO and media.startswith("audio/"):
        return RawConsumer(media)
    raise UpstreamError(f"unexpected content type {media or '(none)'}")


# -- consumer events -> frames ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameData:
    """What one consumer event gives a ``Frame``; the session adds seq and timestamps."""

    #: The encoded bytes, as the consumer handed them over.
    payload: Payload
    #: MIME type, possibly with parameters (``image/jpeg``, ``video/mpeg``).
    content_type: str
    #: Part headers worth keeping (lower-case name, value).
    headers: tuple[tuple[str, str], ...] = ()
    #: Pictures in it, counted by ``frames_in`` and ``fps_in`` (an MPEG-2 read has 0..n).
    pictures: int = 1
    #: MPEG-2: where a client may start (see ``Frame.cut``).
    cut: CutPoint | None = None
    #: MPEG-2: a leading B-picture of an open GOP (see ``Frame.leading``).
    leading: bool = False
    #: MPEG-2: the last picture goes on in the next frame (see ``Frame.continued``).
    continued: bool = False

    @property
    def media_type(self) -> str:
        """Return the lower-case media type without parameters."""
        return self.content_type.split(";", 1)[0].strip().lower()


#: Turns one consumer event into frame data, or None when the event is not a frame.
FrameDataOf = Callable[[object], FrameData | None]


def _checked(data: FrameData, prefix: str) -> FrameData | None:
    # e.g. a text part in a video stream: surfaced by the demuxer, not a frame.
    return data if data.media_type.startswith(prefix) else None


def mjpeg_frame_data(event: object) -> FrameData | None:
    """Return a JPEG part's frame data (MJPEG: multipart parts)."""
    if isinstance(event, PartReceived):
        data = FrameData(event.payload, event.content_type or "image/jpeg", tuple(event.headers))
        return _checked(data, "image/")
    return None


def mpeg2_frame_data(event: object) -> FrameData | None:
    """Return an indexed unit's frame data: one coded picture, its container and cut point."""
    if isinstance(event, UnitIndexed):
        return FrameData(
            event.payload,
            MEDIA_TYPES[event.format],
            pictures=event.pictures,
            cut=event.cut,
            leading=event.leading,
            continued=event.continued,
        )
    return None


def audio_frame_data(event: object) -> FrameData | None:
    """Return an audio part's or read's frame data (multipart or raw audio)."""
    if isinstance(event, PartReceived):
        data = FrameData(
            event.payload, event.content_type or "audio/32KADPCM", tuple(event.headers)
        )
    elif isinstance(event, RawReceived):
        data = FrameData(event.payload, event.content_type or "audio/32KADPCM")
    else:
        return None
    return _checked(data, "audio/")


#: How each kind's consumer events become frames; ``PartDropped`` is counted separately.
FRAME_DATA: dict[StreamKind, FrameDataOf] = {
    StreamKind.MJPEG: mjpeg_frame_data,
    StreamKind.MPEG2: mpeg2_frame_data,
    StreamKind.AUDIO: audio_frame_data,
}


# -- timestamps -----------------------------------------------------------------------------


class Stamper(Protocol):
    """Gives each frame of one stream its ``Frame.pts``; outlives the stream's connections."""

    def stamp(self, event: object, arrival_ns: int, *, new_connection: bool) -> int:
        """Return the pts of the frame made from event, which arrived at arrival_ns."""


class ArrivalStamper:
    """Stamp frames at arrival (audio: its decoder keeps the sample clock from there)."""

    def __init__(self, time_base: Fraction) -> None:
        self._per_ns = time_base.denominator, time_base.numerator * NS_PER_SECOND

    def stamp(self, event: object, arrival_ns: int, *, new_connection: bool) -> int:
        """Return the arrival time in the time base."""
        numerator, denominator = self._per_ns
        return arrival_ns * numerator // denominator


class SmoothedStamper:
    """Stamp MJPEG frames with their arrival times smoothed (``gateway.ingest.clock``)."""

    def __init__(self) -> None:
        #: The clock (its counters are worth a look in tests).
        self.clock = MediaClock()

    def stamp(self, event: object, arrival_ns: int, *, new_connection: bool) -> int:
        """Return the smoothed arrival time (90 kHz)."""
        return self.clock.update(arrival_ns, new_connection=new_connection)


class PtsStamper:
    """Stamp MPEG-2 units with the camera's PTS, or times derived (``mpeg2_clock``)."""

    def __init__(self) -> None:
        #: The clock (its counters are worth a look in tests).
        self.clock = Mpeg2Clock()

    def stamp(self, event: object, arrival_ns: int, *, new_connection: bool) -> int:
        """Return the unit's presentation time (90 kHz)."""
        if not isinstance(event, UnitIndexed):
            raise LocalProtocolError(f"an MPEG-2 frame comes from a UnitIndexed, not {event!r}")
        return self.clock.update(event, arrival_ns, new_connection=new_connection)


#: Where each kind's ``Frame.pts`` comes from: MJPEG arrival smoothed, MPEG-2 the PES PTS
#: (presentation order), audio arrival (the decoder owns audio time).
STAMPERS: dict[StreamKind, Callable[[], Stamper]] = {
    StreamKind.MJPEG: SmoothedStamper,
    StreamKind.MPEG2: PtsStamper,
    StreamKind.AUDIO: lambda: ArrivalStamper(AUDIO_TIME_BASE),
}
