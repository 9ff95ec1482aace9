"""Progressive fragmented MP4 (``GET /mp4/{camera}``): H.264 and AAC for any ``<video src>``.

Every viewer reads the camera's one shared encode (the ``h264`` and ``aac`` renditions):
a cursor on the H.264 ring, one on the AAC ring, and a ``ProgressiveMuxer`` that writes
the init segment and then one ``moof`` + ``mdat`` per picture, zero-copy. A viewer
starts on a keyframe at once: the newest one held if it is fresh, else an IDR asked of
the encoder (rate-limited there). ``maxlag`` and ``client_buffer_bytes`` cut a viewer
that falls behind to the newest keyframe, with the same write deadline as the Axis
endpoints (the same ``CursorPump``); the muxer keeps its timeline continuous across cuts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

from aiohttp import web

from gateway.config import GatewayConfig, LimitsConfig
from gateway.errors import CapacityError
from gateway.hub import CameraMedia, Cursor, Delivery, Ring
from gateway.media import Frame, Payload, StreamKind
from gateway.mux.progressive import AudioFormat, ProgressiveMuxer
from gateway.mux.tracks import AudioCodec
from gateway.transcode import ParamError
from gateway.transcode.audio_codecs import AudioEncoding
from gateway.transcode.audio_rendition import AudioRendition, audio_key
from gateway.transcode.encode import H264_KIND, h264_key

from .axis import SETTINGS, AxisSettings
from .axis.streaming import DURATION, MAXLAG, Parser, StreamOptions, error, parse_stream_options
from .egress import ClientEgress
from .keys import find_media
from .streaming import cursor_clients, keyframe_start, ready_within, serve_cursor

MP4_PATH = "/mp4/{camera}"
#: What a viewer may ask: ``maxlag`` (ms, below 500 means 500) and ``duration`` (s).
MP4_PARAMS: dict[str, Parser] = {"maxlag": MAXLAG, "duration": DURATION}
MP4_HEADERS = {
    "Content-Type": "video/mp4",
    "Cache-Control": "no-cache, no-store",
    "X-Content-Type-Options": "nosniff",
}
#: Audio frames sent per fragment at most (about 10 s of AAC).
MAX_AUDIO_FRAMES = 512


class Mp4Camera:
    """The fMP4 side of one camera: its viewers' sockets, for the API."""

    def __init__(self, media: CameraMedia) -> None:
        """Serve ``media``'s shared encode."""
        self.media = media
        #: Each viewer's video cursor and socket.
        self.egress: dict[Cursor, ClientEgress] = {}

    def clients(self) -> list[dict[str, object]]:
        """Return the ``/api`` client entries of the camera's fMP4 viewers."""
        rendition = self.media.renditions.get(h264_key())
        if rendition is None:
            return []
        entries = cursor_clients(rendition.ring, self.egress)
        return [entry for entry in entries if entry["kind"] == "mp4"]

    def stats(self) -> dict[StreamKind, dict[str, object]]:
        """Return nothing per stream: the encode's figures are the rendition's."""
        return {}

    def summary(self) -> dict[str, object]:
        """Return the fMP4 output's figures for ``/api`` ``outputs.mp4``."""
        return {"viewers": len(self.egress)}

    async def aclose(self) -> None:
        """Nothing to stop: the media ends the viewers' cursors."""


#: Every camera's fMP4 side by camera name.
MP4_CAMERAS = web.AppKey("mp4_cameras", dict[str, Mp4Camera])
#: The configuration's ``[limits]`` (``client_buffer_bytes``); the app sets it.
LIMITS = web.AppKey("mp4_limits", LimitsConfig)


class _Wrap:
    """Turns a viewer's H.264 deliveries (and the AAC of the same time) into fMP4."""

    def __init__(self, muxer: ProgressiveMuxer, video: Cursor, audio: Cursor | None) -> None:
        self.muxer = muxer
        self.video = video
        self.audio = audio
        #: The next audio frame, taken but not due yet (after the pictures sent).
        self._held: Frame | None = None

    def __call__(self, deliveries: Sequence[Delivery]) -> Sequence[Payload]:
        chunks: list[Payload] = []
        video = [(d.frame, d.joined) for d in deliveries]
        if not self.muxer.started:
            chunks.append(self.muxer.start(video[0][0]))
        elif any(not self.muxer.fits(frame) for frame, _ in video):
            # The picture size or parameter sets changed (the camera was reconfigured):
            # one MP4 stream has one sample description, so end this one; the player
            # reconnects and gets a new init segment.
            self.video.close()
            return []
        chunks += self.muxer.fragment(video, self._audio_until(video[-1][0]))
        return chunks

    def _audio_until(self, picture: Frame) -> list[Frame]:
        """Take the audio that starts by ``picture``'s time, not the audio after it.

        A viewer behind live reads old pictures; audio taken up to live would be sent
        ahead of them, and a cut to a newer keyframe would leave it playing beside the
        wrong pictures for as long as the viewer was behind.
        """
        out: list[Frame] = []
        cursor = self.audio
        if cursor is None:
            return out
        while len(out) < MAX_AUDIO_FRAMES:
            frame = self._held
            if frame is None:
                taken = cursor.take_frames(1)
                if not taken:
                    break
                frame = taken[0].frame
            if _later(frame, picture):
                self._held = frame
                break
            self._held = None
            out.append(frame)
        return out


def _later(a: Frame, b: Frame) -> bool:
    """Return True if ``a`` starts after ``b`` (their pts in their own time bases)."""
    ta, tb = a.time_base, b.time_base
    return a.pts * ta.numerator * tb.denominator > b.pts * tb.numerator * ta.denominator


def _audio_format(rendition: AudioRendition) -> AudioFormat:
    config = rendition.pipeline.config
    return AudioFormat(AudioCodec.AAC, config.sample_rate, config.channels, config.extradata)


async def mp4(request: web.Request) -> web.StreamResponse:
    """Stream the camera as progressive fMP4 from a keyframe on."""
    key = request.match_info["camera"]
    media = find_media(request.app, key)
    if media is None:
        return error(404, f"no camera {key[:40]!r}")
    name = media.camera.name
    try:
        options = parse_stream_options(request.query, MP4_PARAMS)
    except ParamError as exc:
        return error(400, exc)
    kinds = media.renditions.kinds()
    if H264_KIND not in kinds:
        return error(404, f"camera {name} has no video to encode")
    try:
        video = media.renditions.acquire(h264_key())
    except CapacityError as exc:
        return error(503, exc)
    with video:
        audio = None
        try:
            if AudioEncoding.AAC.value in kinds:
                audio = media.renditions.acquire(audio_key(AudioEncoding.AAC))
        except CapacityError as exc:
            return error(503, exc)
        try:
            return await _serve(
                request,
                request.app[MP4_CAMERAS][name],
                video.rendition.ring,
                None if audio is None else audio.rendition,
                options,
            )
        finally:
            if audio is not None:
                audio.release()


async def _serve(
    request: web.Request,
    camera: Mp4Camera,
    ring: Ring,
    audio: AudioRendition | None,
    options: StreamOptions,
) -> web.StreamResponse:
    settings: AxisSettings = request.app[SETTINGS]
    limits = request.app[LIMITS]
    remote = request.remote or ""
    with contextlib.ExitStack() as leave:
        try:
            cursor = leave.enter_context(
                ring.subscribe(
                    keyframe_start(ring, time.monotonic_ns()),
                    maxlag_ns=options.maxlag_ns,
                    max_buffer_bytes=limits.client_buffer_bytes,
                    kind="mp4",
                    remote=remote,
                )
            )
            sound = None
            if audio is not None:
                sound = leave.enter_context(audio.ring.subscribe(kind="mp4 audio", remote=remote))
        except CapacityError as exc:
            return error(503, exc)
        if not await ready_within(cursor, settings.keyframe_wait):
            name = camera.media.camera.name
            return error(503, f"camera {name} has produced no picture to encode yet")
        muxer = ProgressiveMuxer(None if audio is None else _audio_format(audio))
        return await serve_cursor(
            request,
            cursor,
            MP4_HEADERS,
            clients=camera.egress,
            deadline=settings.write_deadline,
            duration=options.duration,
            wrap=_Wrap(muxer, cursor, sound),
        )


def add_routes(app: web.Application) -> None:
    """Add ``/mp4/{camera}`` and the key the cameras' fMP4 sides are kept under."""
    app[MP4_CAMERAS] = {}
    app.router.add_get(MP4_PATH, mp4)


def add_camera(app: web.Application, media: CameraMedia, config: GatewayConfig) -> Mp4Camera:
    """Make the fMP4 side of one camera."""
    app[LIMITS] = config.limits
    camera = app[MP4_CAMERAS][media.camera.name] = Mp4Camera(media)
    return camera
