"""What the Axis byte-stream endpoints (MPEG-2, audio) share: parameters and sources.

The egress loop itself (a cursor to a socket) is ``gateway.publish.streaming``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from gateway.config import CameraConfig, find_camera
from gateway.hub import Cursor, Ring
from gateway.publish.egress import ClientEgress
from gateway.publish.streaming import cursor_clients

from .fanout import AxisSettings
from .options import MAX_SECONDS, MIN_MAXLAG_MS, integer

#: Parses one query value; raises ParamError with a one-line reason.
Parser = Callable[[str], int]

#: Every configured camera, so an endpoint can tell "no such camera" (404) from "this
#: camera has no such stream" (404 with another reason). The app fills it.
CAMERA_CONFIGS = web.AppKey("axis_cameras", tuple[CameraConfig, ...])


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """What one MPEG-2 or audio client asked for, besides the camera."""

    #: Seconds to stream (None: until the client leaves).
    duration: int | None = None
    #: Cut the client's backlog beyond this lag, in ns (None: ``client_buffer_bytes``).
    maxlag_ns: int | None = None
    #: Seconds of the past to start with (``buffer.cgi``; None: the newest cut point).
    prebuffer: int | None = None


#: Parameter -> parser, per endpoint (VAPIX §5.3.1, §5.3.3, §5.5.1). Other keys are
#: ignored, as the MJPEG endpoint and the camera do; ``camera`` is the handler's.
DURATION = integer("duration", 0, MAX_SECONDS)
MAXLAG = integer("maxlag", 0, MAX_SECONDS * 1000)
PREBUFFER = integer("prebuffer", 0, MAX_SECONDS)
VIDEO_PARAMS: dict[str, Parser] = {"duration": DURATION, "maxlag": MAXLAG}
BUFFER_PARAMS: dict[str, Parser] = {**VIDEO_PARAMS, "prebuffer": PREBUFFER}
AUDIO_PARAMS: dict[str, Parser] = {"maxlag": MAXLAG}


def parse_stream_options(query: Mapping[str, str], table: Mapping[str, Parser]) -> StreamOptions:
    """Validate the parameters ``table`` knows; raise ParamError with a one-line reason."""
    values = {key: parse(query[key]) for key, parse in table.items() if key in query}
    maxlag = values.get("maxlag")
    return StreamOptions(
        duration=values.get("duration") or None,
        # VAPIX §5.3.1: "Values lower than 500 will be interpreted as 500".
        maxlag_ns=None if maxlag is None else max(maxlag, MIN_MAXLAG_MS) * 1_000_000,
        prebuffer=values.get("prebuffer"),
    )


def find_config(request: web.Request) -> CameraConfig:
    """Return the camera of ``camera=`` (name or 1-based index, default 1), or raise 404."""
    key = request.query.get("camera") or "1"
    cameras: tuple[CameraConfig, ...] = request.app[CAMERA_CONFIGS]
    camera = find_camera(cameras, key)
    if camera is None:
        raise web.HTTPNotFound(text=f"Error: no camera {key[:40]!r}\n", content_type="text/plain")
    return camera


class CursorSource:
    """One camera's byte-stream fan-out: its ring and each client's socket, for the API."""

    def __init__(
        self,
        camera: CameraConfig,
        ring: Ring,
        *,
        max_clients: int,
        client_buffer_bytes: int,
        settings: AxisSettings,
    ) -> None:
        """Serve ``ring`` (bounded to ``max_clients`` cursors) to ``camera``'s clients."""
        self.camera = camera
        self.ring = ring
        self.max_clients = max_clients
        self.client_buffer_bytes = client_buffer_bytes
        self.settings = settings
        #: The client sockets, for the API's queue figures.
        self.egress: dict[Cursor, ClientEgress] = {}

    def clients(self) -> list[dict[str, object]]:
        """Return the ``/api`` client entries of this camera's stream."""
        return cursor_clients(self.ring, self.egress)


def error(status: int, reason: object) -> web.Response:
    """Return an Axis-style error: ``text/plain`` ``Error: <reason>``."""
    return web.Response(status=status, text=f"Error: {reason}\n", content_type="text/plain")
