"""WHEP (RFC 9725's egress twin, draft-ietf-wish-whep) on ``/whep/{camera}``.

``POST`` an SDP offer, get ``201 Created`` with the answer, the session's ``Location``
and ``ETag``, and a ``Link`` per ICE server; ``PATCH`` the session with a trickle-ICE
fragment (RFC 8840) to add candidates or restart ICE; ``DELETE`` it to leave. A
request that cannot become a session (wrong type, too large, not SDP, no H.264 the
encode can send, over a limit) is answered before any peer connection exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

from aiohttp import web

from gateway.config import GatewayConfig, VideoSource, WebRTCConfig, is_loopback
from gateway.errors import CapacityError, LocalProtocolError, RemoteProtocolError
from gateway.hub import CameraMedia, Ring
from gateway.media import StreamKind
from gateway.publish.axis import SETTINGS
from gateway.publish.keys import find_media
from gateway.publish.streaming import keyframe_start
from gateway.transcode.audio_codecs import AudioEncoding
from gateway.transcode.audio_rendition import audio_key
from gateway.transcode.encode import H264_KIND, h264_key

from .ice import IceRestartUnsupported, add_remote_candidates, remote_ufrag, restart_ice
from .offer import MAX_OFFER_BYTES, announce, check_offer, ice_server_links
from .rtp import PreparedFrames
from .sdpfrag import is_ice_restart, parse_sdpfrag
from .session import WhepSession, new_tag
from .tracks import SharedTrack

log = logging.getLogger("gateway.webrtc")

ENDPOINT = "/whep/{camera}"
SESSION = "/whep/{camera}/{session}"
SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
#: Every WHEP response may be read by a player on another origin (RFC 9725 §4.8).
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Patch, Accept-Post",
}
#: Seconds between sweeps for sessions that never connected or whose peer went silent.
SWEEP_SECONDS = 0.5
#: A trickle or restart fragment at most (a browser's has a handful of candidates).
MAX_FRAG_BYTES = 16 * 1024


def error(status: int, reason: object) -> web.Response:
    """Return a one-line ``text/plain`` error with the WHEP CORS headers."""
    return web.Response(
        status=status,
        text=f"Error: {reason}\n",
        headers={**CORS, "Cache-Control": "no-store"},
    )


class Sessions:
    """Every WHEP session of the app: the limits, the sweep, and the figures."""

    def __init__(self, config: WebRTCConfig) -> None:
        """Admit sessions within ``config``'s limits."""
        self.config = config
        self.live: dict[str, WhepSession] = {}
        #: Peer connections ever made (a refused request makes none).
        self.peer_connections = 0
        #: Sessions ended, by cause (``deleted``, ``connect_timeout``, ``consent_expired``...).
        self.ended: dict[str, int] = {}
        #: Requests turned away, by HTTP status.
        self.refused: dict[int, int] = {}
        #: Per camera: sessions started, and what ended sessions sent (by figure).
        self.started: dict[str, int] = {}
        self.sent: dict[str, dict[str, int]] = {}

    def count(self, camera: str) -> int:
        """Return the live sessions of ``camera``."""
        return sum(1 for s in self.live.values() if s.camera == camera)

    def admit(self, camera: str) -> None:
        """Raise ``CapacityError`` if a new session of ``camera`` is over a limit."""
        config = self.config
        if len(self.live) >= config.max_sessions:
            raise CapacityError(f"the gateway has {config.max_sessions} WebRTC sessions already")
        if self.count(camera) >= config.max_sessions_per_camera:
            limit = config.max_sessions_per_camera
            raise CapacityError(f"camera {camera} has {limit} WebRTC sessions already")

    def refuse(self, status: int, reason: object) -> web.Response:
        """Count and return a refusal."""
        self.refused[status] = self.refused.get(status, 0) + 1
        return error(status, reason)

    def opened(self, session: WhepSession) -> None:
        """Count ``session`` in (its peer connection exists)."""
        self.peer_connections += 1
        self.live[session.id] = session
        self.started[session.camera] = self.started.get(session.camera, 0) + 1

    def closed(self, session: WhepSession) -> None:
        """Forget ``session`` (its ``close`` calls this once), keeping what it sent."""
        self.live.pop(session.id, None)
        cause = session.close_cause or "closed"
        self.ended[cause] = self.ended.get(cause, 0) + 1
        totals = self.sent.setdefault(session.camera, {})
        for figure, value in session.sent().items():
            totals[figure] = totals.get(figure, 0) + value

    def sent_by(self, camera: str) -> dict[str, int]:
        """Return what ``camera``'s sessions have sent, ended and live ones."""
        totals = dict(self.sent.get(camera, {}))
        for session in self.live.values():
            if session.camera == camera:
                for figure, value in session.sent().items():
                    totals[figure] = totals.get(figure, 0) + value
        return totals

    def stats(self) -> dict[str, object]:
        """Return the app-wide figures for ``/metrics``."""
        return {
            "peer_connections": self.peer_connections,
            "refused": dict(self.refused),
            "ended": dict(self.ended),
        }

    def sweep(self, now_ns: int) -> None:
        """End the sessions whose peers never connected or went silent."""
        for session in list(self.live.values()):
            expired = session.expired(now_ns)
            if expired is not None:
                cause, reason = expired
                session.close(reason, cause=cause)

    async def aclose(self) -> None:
        """End every session and wait until each is freed."""
        tasks = [
            s.close("the gateway is stopping", cause="stopping") for s in list(self.live.values())
        ]
        await asyncio.gather(*tasks, return_exceptions=True)


class WebRtcCamera:
    """The WHEP side of one camera: its sessions and the payloads they share."""

    def __init__(self, media: CameraMedia, sessions: Sessions) -> None:
        """Serve ``media``'s shared encode to ``sessions``' players."""
        self.media = media
        self.sessions = sessions
        #: The RTP payloads of the rings' frames, made once for every session.
        self._prepared: dict[int, tuple[Ring, PreparedFrames]] = {}

    def prepared(self, ring: Ring, *, video: bool) -> PreparedFrames:
        """Return the shared payload cache of ``ring`` (a new encode gets a new one)."""
        held = self._prepared.get(id(ring))
        if held is None or held[0] is not ring:
            cache = PreparedFrames(clock_rate=90_000 if video else 48_000, video=video)
            held = self._prepared[id(ring)] = (ring, cache)
            # Drop the caches of encodes that stopped.
            for key, (old, _) in list(self._prepared.items()):
                if old.closed:
                    del self._prepared[key]
        return held[1]

    def own(self) -> list[WhepSession]:
        """Return the camera's live sessions."""
        name = self.media.camera.name
        return [s for s in self.sessions.live.values() if s.camera == name]

    def clients(self) -> list[dict[str, object]]:
        """Return the ``/api`` client entries of the camera's WebRTC sessions."""
        return [s.snapshot() for s in self.own()]

    def stats(self) -> dict[StreamKind, dict[str, object]]:
        """Return nothing per stream: the encode's figures are the rendition's."""
        return {}

    def summary(self) -> dict[str, object]:
        """Return the WebRTC output's figures for ``/api`` ``outputs.webrtc``."""
        own = self.own()
        name = self.media.camera.name
        return {
            "sessions": len(own),
            "connected": sum(1 for s in own if s.state == "connected"),
            "sessions_started": self.sessions.started.get(name, 0),
            "payloads_prepared": sum(c.made for _, c in self._prepared.values()),
            **self.sessions.sent_by(name),
            "rtt_ms": {s.id[:8]: round(s.rtt * 1000, 1) for s in own if s.rtt is not None},
        }

    async def aclose(self) -> None:
        """End the camera's sessions."""
        tasks = [s.close("the camera is stopping", cause="stopping") for s in self.own()]
        await asyncio.gather(*tasks, return_exceptions=True)


SESSIONS = web.AppKey("webrtc_sessions", Sessions)
WEBRTC_CAMERAS = web.AppKey("webrtc_cameras", dict[str, WebRtcCamera])


async def _read_offer(request: web.Request) -> str:
    """Return the offer's text, or raise ``_Refused`` with a one-line reason."""
    if request.content_type != SDP:
        raise _http(415, f"Content-Type must be {SDP}")
    length = request.content_length
    if length is not None and length > MAX_OFFER_BYTES:
        raise _http(413, f"offer is larger than {MAX_OFFER_BYTES} bytes")
    # ``read(n)`` returns what has arrived so far, up to n bytes: an offer in several
    # TCP segments or chunks is read until its end (or until it is too large).
    body = bytearray()
    while len(body) <= MAX_OFFER_BYTES:
        part = await request.content.read(MAX_OFFER_BYTES + 1 - len(body))
        if not part:
            break
        body += part
    if len(body) > MAX_OFFER_BYTES:
        raise _http(413, f"offer is larger than {MAX_OFFER_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise _http(400, "offer is not UTF-8 text") from None


class _Refused(Exception):
    """A request turned away: its status and one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def _http(status: int, reason: str) -> _Refused:
    return _Refused(status, reason)


def _video_start(ring: Ring) -> Literal["newest_cut"] | int:
    return keyframe_start(ring, time.monotonic_ns())


def _audio_start(ring: Ring) -> int:
    return ring.next_seq


async def post(request: web.Request) -> web.StreamResponse:
    """Make a session from an SDP offer: ``201`` with the answer, or a one-line 4xx/5xx."""
    sessions = request.app[SESSIONS]
    key = request.match_info["camera"]
    media = find_media(request.app, key)
    if media is None:
        return sessions.refuse(404, f"no camera {key[:40]!r}")
    try:
        offer = await _read_offer(request)
        summary = check_offer(offer)
    except _Refused as exc:
        return sessions.refuse(exc.status, exc)
    except RemoteProtocolError as exc:
        return sessions.refuse(400, exc)
    name = media.camera.name
    kinds = media.renditions.kinds()
    if H264_KIND not in kinds:
        return sessions.refuse(404, f"camera {name} has no video to encode")
    camera = request.app[WEBRTC_CAMERAS][name]
    handles: list[Any] = []
    try:
        sessions.admit(name)
        handles.append(media.renditions.acquire(h264_key()))
        if summary.opus and AudioEncoding.OPUS.value in kinds:
            handles.append(media.renditions.acquire(audio_key(AudioEncoding.OPUS)))
    except CapacityError as exc:
        for handle in handles:
            handle.release()
        return sessions.refuse(503, exc)
    refusal = await _until_produced(request, media, sessions, handles)
    if refusal is not None:
        return refusal
    session = WhepSession(
        camera=name,
        remote=request.remote or "",
        config=sessions.config,
        handles=handles,
        on_closed=sessions.closed,
    )
    sessions.opened(session)
    remote = request.remote or ""
    for handle in handles:
        ring = handle.rendition.ring
        video = handle is handles[0]
        session.add(
            SharedTrack(
                "video" if video else "audio",
                ring,
                camera.prepared(ring, video=video),
                start=_video_start if video else _audio_start,
                remote=remote,
            )
        )
    try:
        answer = await session.answer(offer)
    except Exception as exc:  # aiortc raises ValueError, OperationError and others
        await session.close("offer rejected", cause="rejected")
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return sessions.refuse(400, f"offer rejected: {reason}")
    headers = {
        **CORS,
        "Content-Type": SDP,
        "Location": f"/whep/{name}/{session.id}",
        "ETag": session.etag,
        "Accept-Patch": SDPFRAG,
        "Cache-Control": "no-store",
    }
    # Bytes, not text: aiohttp would add "; charset=utf-8", a parameter application/sdp
    # does not have (RFC 8866 §8.1 registers none; SDP text is UTF-8, §6.10).
    response = web.Response(status=201, body=answer.encode(), headers=headers)
    for link in ice_server_links(sessions.config.ice_servers):
        response.headers.add("Link", link)
    log.info("webrtc %s: session %s answered (%s)", name, session.id[:8], remote)
    return response


async def _until_produced(
    request: web.Request, media: CameraMedia, sessions: Sessions, handles: list[Any]
) -> web.Response | None:
    """Wait for the camera's first picture (an on-demand camera connecting); 503 if none comes.

    A camera that never sent a picture would otherwise get a session and no media. The
    claims are held meanwhile (an on-demand camera connects for them) and given back on
    a refusal or a player that leaves; the limits are checked again after the wait.
    """
    name = media.camera.name
    video = StreamKind.MPEG2 if media.camera.video_source is VideoSource.MPEG2 else StreamKind.MJPEG
    failed: str | None = "the player left"
    try:
        if not await media.produced(video, request.app[SETTINGS].keyframe_wait):
            failed = f"camera {name} has produced no picture to encode yet"
        else:
            sessions.admit(name)
            failed = None
    except CapacityError as exc:
        failed = str(exc)
    finally:
        if failed is not None:
            for handle in handles:
                handle.release()
    return None if failed is None else sessions.refuse(503, failed)


def _session(request: web.Request) -> WhepSession | None:
    session = request.app[SESSIONS].live.get(request.match_info["session"])
    if session is None:
        return None
    media = find_media(request.app, request.match_info["camera"])
    if media is None or media.camera.name != session.camera:
        return None
    return session


async def delete(request: web.Request) -> web.StreamResponse:
    """End a session: ``200``, or ``404`` if there is none."""
    session = _session(request)
    if session is None:
        return request.app[SESSIONS].refuse(404, "no such WHEP session")
    await session.close("deleted by the player", cause="deleted")
    return web.Response(status=200, headers=CORS)


def _matches(if_match: str, etag: str) -> bool:
    """Return True if an ``If-Match`` value names ``etag`` or is ``*`` (RFC 9110 §13.1.1)."""
    tags = [t.strip() for t in if_match.split(",")]
    return "*" in tags or etag in tags or etag.strip('"') in tags


async def patch(request: web.Request) -> web.StreamResponse:
    """Trickle the player's candidates (``204``) or restart ICE (``200`` + our fragment)."""
    sessions = request.app[SESSIONS]
    session = _session(request)
    if session is None:
        return sessions.refuse(404, "no such WHEP session")
    if request.content_type != SDPFRAG:
        return sessions.refuse(415, f"Content-Type must be {SDPFRAG}")
    if_match = request.headers.get("If-Match")
    if if_match is None:
        return sessions.refuse(428, "If-Match with the session's ETag is required")
    if not _matches(if_match, session.etag):
        return sessions.refuse(412, "If-Match does not name the session's current ETag")
    body = await request.content.read(MAX_FRAG_BYTES + 1)
    if len(body) > MAX_FRAG_BYTES:
        return sessions.refuse(413, f"fragment is larger than {MAX_FRAG_BYTES} bytes")
    try:
        frag = parse_sdpfrag(body.decode("utf-8", errors="strict"), max_bytes=MAX_FRAG_BYTES)
    except (RemoteProtocolError, UnicodeDecodeError) as exc:
        reason = exc if isinstance(exc, RemoteProtocolError) else "fragment is not UTF-8"
        return sessions.refuse(400, reason)
    pc = session.pc
    current = remote_ufrag(pc)
    try:
        if not is_ice_restart(frag, current, retired=session.retired_ufrags):
            await add_remote_candidates(pc, frag, log=log)
            return web.Response(status=204, headers=CORS)
        answer = await restart_ice(pc, frag, log=log)
    except RemoteProtocolError as exc:
        return sessions.refuse(400, exc)
    except IceRestartUnsupported as exc:
        return sessions.refuse(501, exc)
    except LocalProtocolError:
        return sessions.refuse(409, "the session's ICE transport has ended")
    if current is not None:
        session.retired_ufrags.append(current)
    session.etag = new_tag()
    text = answer.to_text()
    if sessions.config.announce is not None:
        text = announce(text, sessions.config.announce)
    headers = {**CORS, "ETag": session.etag, "Cache-Control": "no-store"}
    response = web.Response(status=200, text=text, headers=headers)
    response.content_type = SDPFRAG
    log.info("webrtc %s: session %s restarted ICE", session.camera, session.id[:8])
    return response


async def options(request: web.Request) -> web.StreamResponse:
    """Answer CORS preflights; say what the endpoint accepts."""
    headers = {**CORS, "Accept-Post": SDP, "Accept-Patch": SDPFRAG}
    return web.Response(status=204, headers=headers)


#: The methods of each WHEP resource (RFC 9725 §4: anything else is 405).
ENDPOINT_METHODS = ("OPTIONS", "POST")
SESSION_METHODS = ("DELETE", "OPTIONS", "PATCH")


def _not_allowed(methods: tuple[str, ...]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Return a handler answering 405 like every WHEP error (one line, CORS) with Allow."""

    async def not_allowed(request: web.Request) -> web.Response:
        response = error(405, f"{request.method} is not allowed here")
        response.headers["Allow"] = ", ".join(methods)
        return response

    return not_allowed


async def _cors(request: web.Request, response: web.StreamResponse) -> None:
    """Give every ``/whep/`` response the CORS headers, the access check's 401/403 too."""
    # A player on another origin reads nothing of a response without them: not even
    # that it has to authenticate (the access middleware answers before any handler).
    if request.path.startswith("/whep/"):
        for name, value in CORS.items():
            response.headers.setdefault(name, value)


@contextlib.asynccontextmanager
async def _sweeping(app: web.Application) -> AsyncIterator[None]:
    sessions = app[SESSIONS]

    async def sweep() -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            sessions.sweep(time.monotonic_ns())

    task = asyncio.create_task(sweep())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sessions.aclose()


async def _sessions_ctx(app: web.Application) -> AsyncIterator[None]:
    async with _sweeping(app):
        yield


def add_routes(app: web.Application) -> None:
    """Add the WHEP endpoint and session routes."""
    app[SESSIONS] = Sessions(WebRTCConfig())
    app[WEBRTC_CAMERAS] = {}
    app.router.add_post(ENDPOINT, post)
    app.router.add_route("OPTIONS", ENDPOINT, options)
    # Last on each resource: aiohttp's own 405 has neither CORS nor the error line.
    app.router.add_route("*", ENDPOINT, _not_allowed(ENDPOINT_METHODS))
    app.router.add_delete(SESSION, delete)
    app.router.add_patch(SESSION, patch)
    app.router.add_route("OPTIONS", SESSION, options)
    app.router.add_route("*", SESSION, _not_allowed(SESSION_METHODS))
    app.cleanup_ctx.append(_sessions_ctx)
    app.on_response_prepare.append(_cors)


def webrtc_settings(config: GatewayConfig) -> WebRTCConfig:
    """Return ``[webrtc]``, gathering on the listen address when that is loopback.

    A gateway listening on loopback serves this host only; aioice's default (every
    interface but loopback) would hand the local player addresses it need not use.
    """
    webrtc = config.webrtc
    host = config.server.host
    if not webrtc.addresses and is_loopback(host):
        return replace(webrtc, addresses=("127.0.0.1" if host == "localhost" else host,))
    return webrtc


def add_camera(app: web.Application, media: CameraMedia, config: GatewayConfig) -> WebRtcCamera:
    """Make the WHEP side of one camera."""
    app[SESSIONS].config = webrtc_settings(config)
    camera = app[WEBRTC_CAMERAS][media.camera.name] = WebRtcCamera(media, app[SESSIONS])
    return camera
