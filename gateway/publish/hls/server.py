"""LL-HLS over HTTP: one segmenter per camera, started on demand, read by every viewer.

The I/O around the sans-IO core (docs/interfaces.md, "gateway.publish.hls"). The first
request for a camera starts its ``HlsCamera``: it claims the camera's shared H.264 and
AAC encodes, and one task feeds their frames to the ``Segmenter``; every event resolves
one shared future ("the playlist changed"), so hundreds of blocked requests wait on one
future: no task of their own beyond aiohttp's request task, only their timeout's timer
handle. ``idle_seconds`` after the last request the camera
stops and releases the encodes.

URLs: ``/hls/{camera}/index.m3u8`` is the multivariant playlist; it names the media
playlist under a per-session directory, ``/hls/{camera}/{session}/media.m3u8``, whose
init segments, segments and parts sit beside it. A segmenter that restarts gets a new
session, so a media URL always means the same bytes: a CDN may cache them for good. A
request for an old session's playlist is redirected to the current one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping

from aiohttp import web

from gateway.access import carried_query
from gateway.config import GatewayConfig, HLSConfig
from gateway.errors import CapacityError, RemoteProtocolError
from gateway.hub import CameraMedia, Cursor, RenditionHandle
from gateway.media import StreamKind
from gateway.mux.progressive import AudioFormat
from gateway.mux.tracks import AudioCodec
from gateway.publish.keys import find_media
from gateway.transcode.audio_codecs import AudioEncoding
from gateway.transcode.audio_rendition import AudioRendition, audio_key
from gateway.transcode.encode import H264_KIND, H264Rendition, h264_key

from .live import (
    PlaylistRequest,
    Readiness,
    blocking_timeout,
    media_playlist,
    multivariant_playlist,
    parse_directives,
    readiness,
)
from .names import MEDIA_NAME, Kind, parse_name
from .parts import KeyframeWanted, PartStatus
from .playlist import carry_query, render
from .segmenter import Segmenter

_log = logging.getLogger(__name__)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
#: Parts, segments and init segments never change under their session's URL.
IMMUTABLE = "public, max-age=31536000, immutable"
#: Frames taken from a ring per round of the feed task.
TAKE = 64
#: The first segment's number. Not 0: hls.js (1.7) tracks an appended part by
#: ``part.fragment.sn || -1`` and so takes a part of segment 0 for none; it drops the
#: segment's parts as evicted after each append and loads them again, hundreds of
#: times, until it stalls and plays a second further behind.
FIRST_MSN = 1
#: How long a viewer counts as watching after its last playlist request, in target
#: durations (players reload at least once per target duration).
VIEWER_TARGETS = 3


#: Errors and redirects change from one moment to the next: a CDN must not keep them
#: (some cache errors for seconds by default, answering every viewer with the error).
NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, reason: str) -> web.Response:
    return web.Response(
        status=status, text=f"Error: {reason}\n", content_type="text/plain", headers=NO_STORE
    )


class HlsCamera:
    """One camera's LL-HLS session: the encodes it claims, its segmenter, its feed task."""

    def __init__(self, media: CameraMedia, config: HLSConfig) -> None:
        """Prepare the camera's HLS side (nothing runs until ``ensure_started``)."""
        self.media = media
        self.config = config
        self.segmenter: Segmenter | None = None
        #: The current session's directory name (new at every start).
        self.session = ""
        self._task: asyncio.Task[None] | None = None
        self._changed: asyncio.Future[None] | None = None
        self._handles: list[RenditionHandle[H264Rendition] | RenditionHandle[AudioRendition]] = []
        self._cursors: list[Cursor] = []
        self._idle: asyncio.TimerHandle | None = None
        self._last_request = 0.0
        #: Requests waiting in ``changed`` (held: not idle, whatever their start).
        self._waiting = 0
        self._renders: dict[tuple[int, bool], bytes] = {}
        self._viewers: dict[object, float] = {}
        #: Starts, and the seconds from a start to its first complete segment, when the
        #: first playlist goes out (None before one).
        self.starts = 0
        self.cold_start_seconds: float | None = None
        self._started_at = 0.0

    # -- lifetime ----------------------------------------------------------------------

    def touch(self, viewer: object | None = None) -> None:
        """Note a request (``viewer``: who asked for a playlist); push the idle stop back."""
        loop = asyncio.get_running_loop()
        self._last_request = loop.time()
        if viewer is not None:
            self._viewers[viewer] = self._last_request
        if self._idle is None and self.segmenter is not None:
            self._idle = loop.call_later(self.config.idle_seconds, self._check_idle)

    def _check_idle(self) -> None:
        self._idle = None
        loop = asyncio.get_running_loop()
        left = self._last_request + self.config.idle_seconds - loop.time()
        if self._waiting:
            # A held request counts from its answer: idle_seconds may be shorter than
            # a cold start or a blocking reload's three target durations.
            left = max(left, self.config.idle_seconds)
        if left > 0:
            self._idle = loop.call_later(left, self._check_idle)
            return
        name, idle = self.media.camera.name, self.config.idle_seconds
        _log.info("camera %s: HLS idle for %gs, stopping session %s", name, idle, self.session)
        self.stop()

    def ensure_started(self) -> Segmenter:
        """Start the session if it is not running (claims the encodes); return its segmenter."""
        if self.segmenter is not None:
            return self.segmenter
        media = self.media
        video = media.renditions.acquire(h264_key())
        handles: list[RenditionHandle[H264Rendition] | RenditionHandle[AudioRendition]] = [video]
        audio_format = None
        try:
            ring = video.rendition.ring
            if AudioEncoding.AAC.value in media.renditions.kinds():
                audio = media.renditions.acquire(audio_key(AudioEncoding.AAC))
                handles.append(audio)
                config = audio.rendition.pipeline.config
                audio_format = AudioFormat(
                    AudioCodec.AAC, config.sample_rate, config.channels, config.extradata
                )
            ring.request_keyframe()
            cursors = [ring.subscribe(ring.next_seq, kind="hls", remote="segmenter")]
            if len(handles) > 1:
                sound = handles[1].rendition.ring.subscribe(kind="hls", remote="segmenter")
                cursors.append(sound)
        except Exception:
            for handle in handles:
                handle.release()
            raise
        self._handles, self._cursors = handles, cursors
        self.segmenter = Segmenter(
            part_target=self.config.part_seconds,
            segment_target=self.config.segment_seconds,
            audio=audio_format,
            wall_offset_ns=time.time_ns() - time.monotonic_ns(),
            first_msn=FIRST_MSN,
        )
        self.session = secrets.token_hex(4)
        self._renders.clear()
        self.starts += 1
        loop = asyncio.get_running_loop()
        self._started_at = loop.time()
        self.cold_start_seconds = None
        self._task = loop.create_task(self._feed(self.segmenter, *cursors))
        _log.info("camera %s: HLS session %s started", media.camera.name, self.session)
        return self.segmenter

    def stop(self) -> None:
        """End the session: stop feeding, release the encodes, wake every waiter."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for cursor in self._cursors:
            cursor.close()
        for handle in self._handles:
            handle.release()
        self._cursors, self._handles = [], []
        self.segmenter = None
        self._viewers.clear()
        self._renders.clear()
        self._wake()

    async def aclose(self) -> None:
        """Stop the session (the app is stopping)."""
        task = self._task
        self.stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the feed ----------------------------------------------------------------------

    async def _feed(self, segmenter: Segmenter, video: Cursor, audio: Cursor | None = None) -> None:
        """Move the encodes' frames into the segmenter as they come (one task per camera)."""
        loop = asyncio.get_running_loop()
        while await video.wait():
            now = time.monotonic_ns()
            events = []
            if audio is not None:
                # Audio first: a part completed by a picture carries the audio before it.
                for delivery in audio.take_frames(TAKE):
                    events += segmenter.push_audio(delivery.frame, now)
                audio.check_frames(0, now)
            for delivery in video.take_frames(TAKE):
                events += segmenter.push_video(delivery.frame, now)
            video.check_frames(0, now)
            if any(isinstance(event, KeyframeWanted) for event in events):
                video.request_keyframe()
            if events:
                if self.cold_start_seconds is None and segmenter.segments:
                    self.cold_start_seconds = round(loop.time() - self._started_at, 3)
                self._wake()

    def _wake(self) -> None:
        fut, self._changed = self._changed, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def changed(self, within: float) -> bool:
        """Wait until the segmenter publishes something; False on timeout or stop."""
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        fut = self._changed
        self._waiting += 1
        try:
            async with asyncio.timeout(within):
                await asyncio.shield(fut)
        except TimeoutError:
            return False
        finally:
            self._waiting -= 1
            self._last_request = asyncio.get_running_loop().time()
        return self.segmenter is not None

    async def until(self, segmenter: Segmenter, done: Callable[[], bool]) -> bool:
        """Wait until ``done()`` holds, within the blocking timeout; False when it does not
        (timeout, or the session ``segmenter`` belongs to stopped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + blocking_timeout(segmenter)
        while not done():
            left = deadline - loop.time()
            if left <= 0 or not await self.changed(left) or self.segmenter is not segmenter:
                return False
        return True

    # -- answers -----------------------------------------------------------------------

    def rendered(self, segmenter: Segmenter, skip: bool) -> bytes:
        """Return the media playlist text (one render per playlist version and kind)."""
        key = (segmenter.version, skip)
        text = self._renders.get(key)
        if text is None:
            if len(self._renders) > 8:
                self._renders.clear()
            text = self._renders[key] = render(media_playlist(segmenter, skip=skip)).encode()
        return text

    def viewers(self) -> int:
        """Return the viewers that asked for a playlist within the last few target durations."""
        segmenter = self.segmenter
        if segmenter is None:
            return 0
        horizon = asyncio.get_running_loop().time() - VIEWER_TARGETS * segmenter.target_duration
        self._viewers = {k: t for k, t in self._viewers.items() if t >= horizon}
        return len(self._viewers)

    def clients(self) -> list[dict[str, object]]:
        """Return no per-connection entries: HLS viewers are requests (see ``stats``)."""
        return []

    def stats(self) -> dict[StreamKind, dict[str, object]]:
        """Return nothing per source stream (the session's figures are ``summary``)."""
        return {}

    def summary(self) -> dict[str, object]:
        """Return the HLS session's figures for ``/api`` ``outputs.hls``."""
        segmenter = self.segmenter
        return {
            "state": "idle" if segmenter is None else "running",
            "session": self.session or None,
            "viewers": self.viewers() if segmenter is not None else 0,
            "starts": self.starts,
            "cold_start_seconds": self.cold_start_seconds,
            "segments": 0 if segmenter is None else len(segmenter.segments),
            "target_duration": None if segmenter is None else segmenter.target_duration,
        }


#: Every camera's HLS side by camera name.
HLS_CAMERAS = web.AppKey("hls_cameras", dict[str, HlsCamera])


def _camera(request: web.Request) -> HlsCamera | web.Response:
    key = request.match_info["camera"]
    media = find_media(request.app, key)
    if media is None:
        return _error(404, f"no camera {key[:40]!r}")
    if H264_KIND not in media.renditions.kinds():
        return _error(404, f"camera {media.camera.name} has no video to encode")
    return request.app[HLS_CAMERAS][media.camera.name]


def _start(camera: HlsCamera) -> Segmenter | web.Response:
    try:
        return camera.ensure_started()
    except CapacityError as exc:
        return _error(503, str(exc))


async def _until_started(camera: HlsCamera, segmenter: Segmenter) -> web.Response | None:
    """Wait for the first complete segment of a session (a cold start); 503 if it does not come.

    A playlist of parts alone is valid LL-HLS, but a player that reads segments only
    finds nothing to play in it (FFmpeg's HLS demuxer gives up: "Empty segment").
    """
    if not await camera.until(segmenter, lambda: bool(segmenter.segments)):
        return _error(503, f"camera {camera.media.camera.name} has no video yet")
    return None


async def multivariant(request: web.Request) -> web.StreamResponse:
    """Answer ``index.m3u8``: starts the camera's session on the first request."""
    camera = _camera(request)
    if isinstance(camera, web.Response):
        return camera
    segmenter = _start(camera)
    if isinstance(segmenter, web.Response):
        return segmenter
    camera.touch()
    failed = await _until_started(camera, segmenter)
    if failed is not None:
        return failed
    media_uri = f"{camera.session}/{MEDIA_NAME}"
    text = render(multivariant_playlist(segmenter, media_uri=media_uri)).encode()
    return web.Response(body=_carried(request, text), headers=_playlist_headers(None))


async def session_file(request: web.Request) -> web.StreamResponse:
    """Answer a media playlist, init segment, segment or part of a session."""
    name = request.match_info["name"]
    resource = parse_name(name)
    session = request.match_info["session"]
    if resource is None or resource.kind is Kind.MULTIVARIANT or len(session) > 16:
        return _error(404, "no such HLS resource")
    camera = _camera(request)
    if isinstance(camera, web.Response):
        return camera
    if resource.kind is Kind.MEDIA:
        return await _media(request, camera, session)
    segmenter = camera.segmenter
    if segmenter is None or session != camera.session:
        return _error(404, "no such HLS session (it ended): reload the playlist")
    camera.touch()
    if resource.kind is Kind.PART:
        # A preload hint's part: answered the moment its last frame arrives.
        number, index = resource.number, resource.index

        def arrived() -> bool:
            return segmenter.part_status(number, index) is not PartStatus.PENDING

        if not await camera.until(segmenter, arrived):
            return _error(503, "the part did not come in time")
    chunks = segmenter.lookup(resource)
    if chunks is None:
        return _error(404, f"no {name} in this session")
    response = web.StreamResponse(headers={"Content-Type": "video/mp4", "Cache-Control": IMMUTABLE})
    response.content_length = sum(len(chunk) for chunk in chunks)
    try:
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        # The player gave up on a held part (hls.js aborts a hinted part's load when
        # it moves on): nothing to tell anyone.
        pass
    return response


async def _media(request: web.Request, camera: HlsCamera, session: str) -> web.StreamResponse:
    try:
        directives = parse_directives(request.query.items())
    except RemoteProtocolError as exc:
        return _error(400, str(exc))
    segmenter = _start(camera)
    if isinstance(segmenter, web.Response):
        return segmenter
    if session != camera.session:
        # The session restarted: its numbers mean nothing to the new one, so the player
        # gets the current playlist (without the old directives).
        raise web.HTTPFound(f"../{camera.session}/{MEDIA_NAME}", headers=NO_STORE)
    camera.touch(_viewer(request))
    failed = await _until_started(camera, segmenter)
    if failed is not None:
        return failed
    answer = await _blocked(camera, segmenter, directives)
    if answer is not None:
        return answer
    body = _carried(request, camera.rendered(segmenter, directives.skip))
    return web.Response(body=body, headers=_playlist_headers(directives))


def _carried(request: web.Request, playlist: bytes) -> bytes:
    """Return ``playlist`` with the request's viewing token on every URI, if it had one."""
    query = carried_query(request)
    return playlist if query is None else carry_query(playlist, query)


async def _blocked(
    camera: HlsCamera, segmenter: Segmenter, directives: PlaylistRequest
) -> web.Response | None:
    """Hold a blocking playlist request until its part exists (RFC 8216bis §6.2.5.2)."""

    def decided() -> bool:
        return readiness(segmenter, directives) is not Readiness.WAIT

    if not await camera.until(segmenter, decided):
        return _error(503, "the playlist did not reach the requested part in time")
    if readiness(segmenter, directives) is Readiness.TOO_FAR:
        return _error(400, "_HLS_msn/_HLS_part is beyond what the server will wait for")
    return None


def _viewer(request: web.Request) -> object:
    """Return who a playlist request comes from (connection peer: an estimate)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return peer or request.remote


def _playlist_headers(directives: PlaylistRequest | None) -> Mapping[str, str]:
    # A blocking request names one playlist version in its URL: cacheable by URL for a
    # while (a CDN collapses the viewers' requests); anything else changes every part.
    blocking = directives is not None and directives.msn is not None
    return {
        "Content-Type": PLAYLIST_TYPE,
        "Cache-Control": "public, max-age=6" if blocking else "no-cache",
    }


async def unknown(request: web.Request) -> web.Response:
    """Answer any other path under ``/hls/`` (a session name that is not one, ``..``)."""
    return _error(404, "no such HLS resource")


def add_routes(app: web.Application) -> None:
    """Add ``/hls/{camera}/index.m3u8`` and the session files."""
    app[HLS_CAMERAS] = {}
    app.router.add_get(r"/hls/{camera}/index.m3u8", multivariant)
    app.router.add_get(r"/hls/{camera}/{session:[0-9a-f]{1,16}}/{name}", session_file)
    # Last: the same one-line 404 as a bad name, not aiohttp's own page.
    app.router.add_get(r"/hls/{path:.*}", unknown)


def add_camera(app: web.Application, media: CameraMedia, config: GatewayConfig) -> HlsCamera:
    """Make the HLS side of one camera (started by its first request)."""
    camera = app[HLS_CAMERAS][media.camera.name] = HlsCamera(media, config.hls)
    return camera
