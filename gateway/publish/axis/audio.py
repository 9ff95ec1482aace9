"""Axis-compatible audio endpoints (VAPIX §5.5): ``receive.cgi`` and ``getparam.cgi``.

One ``AudioSource`` per camera with ``audio = true`` reads the camera media's audio
``Ring`` (every part is a cut point) and relays the parts byte for byte. (The decoded
level ``/api`` shows comes from the camera's PCM rendition.)
"""

from __future__ import annotations

from aiohttp import web

from gateway.errors import CapacityError
from gateway.hub import CameraMedia, Delivery
from gateway.media import Payload
from gateway.publish.streaming import ready_within, serve_cursor
from gateway.transcode import ParamError

from .fanout import AxisSettings
from .handlers import MJPEG_HEADERS, SETTINGS
from .options import CRLF
from .streaming import (
    AUDIO_PARAMS,
    CursorSource,
    error,
    find_config,
    parse_stream_options,
)

#: Distinct part content types whose heads are cached (a camera normally sends one).
MAX_PART_HEADS = 8
RECEIVE_PATH = "/axis-cgi/audio/receive.cgi"
GETPARAM_PATH = "/axis-cgi/audio/getparam.cgi"
#: §5.5.2: the same head as MJPEG, boundary ``myboundary``.
AUDIO_HEADERS = MJPEG_HEADERS


class AudioSource(CursorSource):
    """One camera's audio clients: its media's ring of parts and their sockets."""

    def __init__(
        self, media: CameraMedia, *, client_buffer_bytes: int, settings: AxisSettings
    ) -> None:
        """Read ``media``'s audio ring (the camera must have one)."""
        if media.audio is None:
            raise ValueError(f"camera {media.camera.name} has no audio source")
        super().__init__(
            media.camera,
            media.audio,
            max_clients=media.settings.max_clients,
            client_buffer_bytes=client_buffer_bytes,
            settings=settings,
        )
        self._heads: dict[str, bytes] = {}

    def head(self, content_type: str) -> bytes:
        """Return the delimiter and headers of a part of ``content_type`` (§5.5.2)."""
        head = self._heads.get(content_type)
        if head is None:
            head = b"--myboundary\r\nContent-Type: %s\r\n\r\n" % content_type.encode("latin-1")
            if len(self._heads) < MAX_PART_HEADS:  # a camera that varies it gets no cache
                self._heads[content_type] = head
        return head

    def parts(self, taken: list[Delivery]) -> list[Payload]:
        """Return the multipart chunks of the taken audio frames, each with its own type."""
        chunks: list[Payload] = []
        for delivery in taken:
            chunks += (self.head(delivery.frame.content_type), delivery.data, CRLF)
        return chunks


#: Every camera's audio source by camera name (cameras with ``audio = true``).
AUDIO_SOURCES = web.AppKey("axis_audio", dict[str, AudioSource])


def _source(request: web.Request) -> AudioSource:
    camera = find_config(request)
    source = request.app[AUDIO_SOURCES].get(camera.name)
    if source is None:
        raise web.HTTPNotFound(
            text=f"Error: camera {camera.name} has no audio stream\n", content_type="text/plain"
        )
    return source


async def receive(request: web.Request) -> web.StreamResponse:
    """Stream the camera's audio parts, byte for byte, as multipart (§5.5.1/5.5.2)."""
    source = _source(request)
    try:
        options = parse_stream_options(request.query, AUDIO_PARAMS)
    except ParamError as exc:
        return error(400, exc)
    try:
        cursor = source.ring.subscribe(
            maxlag_ns=options.maxlag_ns,
            max_buffer_bytes=source.client_buffer_bytes,
            kind="audio",
            remote=request.remote or "",
        )
    except CapacityError:
        name, limit = source.camera.name, source.max_clients
        return error(503, f"camera {name} has {limit} audio clients already")
    settings = request.app[SETTINGS]
    with cursor:
        if not await ready_within(cursor, settings.stream_wait):
            return error(503, f"camera {source.camera.name} has sent no audio yet")
        return await serve_cursor(
            request,
            cursor,
            AUDIO_HEADERS,
            clients=source.egress,
            deadline=settings.write_deadline,
            duration=options.duration,
            wrap=source.parts,
        )


async def getparam(request: web.Request) -> web.Response:
    """Return the ``root.Audioc`` parameters (§5.5.4); ``connectedClients`` is live."""
    source = _source(request)
    values = (
        # The gateway only relays the camera's audio: "get" is Axis' simplex mode.
        ("duplexMode", "get"),
        ("maxNumberOfClients", source.max_clients),
        ("forwardOnPost", "no"),
        ("buttonMode", "push"),
        ("clientBufferSize", source.client_buffer_bytes),
        ("connectedClients", len(source.ring)),
        ("connectedPostClients", 0),
    )
    body = "".join(f"root.Audioc.{name}={value}\r\n" for name, value in values) + "\r\n"
    return web.Response(text=body, content_type="text/plain")


def add_routes(app: web.Application) -> None:
    """Add ``receive.cgi`` and ``getparam.cgi`` (the app fills AUDIO_SOURCES)."""
    app.router.add_get(RECEIVE_PATH, receive)
    app.router.add_get(GETPARAM_PATH, getparam)
