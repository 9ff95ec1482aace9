"""Axis-compatible MPEG-2 endpoints (VAPIX §5.3): live ``video.cgi`` and ``buffer.cgi``.

One ``Mpeg2Source`` per camera with ``mpeg2 = true`` reads the camera media's MPEG-2
``Ring``, which is at once the fan-out and the prebuffer. A client gets the camera's
bytes from a cut point on (sequence header before a GOP's first picture), so what it
receives always decodes; when it falls behind it is cut forward to the newest cut point.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from aiohttp import web

from gateway.errors import CapacityError
from gateway.hub import CameraMedia
from gateway.media import NS_PER_SECOND
from gateway.publish.streaming import ready_within, serve_cursor
from gateway.transcode import ParamError

from .fanout import AxisSettings
from .handlers import SETTINGS
from .streaming import (
    BUFFER_PARAMS,
    VIDEO_PARAMS,
    CursorSource,
    Parser,
    error,
    find_config,
    parse_stream_options,
)

#: The response head of §5.3.2; one response per connection, the body ends with it.
MPEG2_HEADERS = {"Content-Type": "video/mpeg", "Cache-Control": "no-cache", "Pragma": "no-cache"}
VIDEO_PATH = "/axis-cgi/mpeg2/video.cgi"
BUFFER_PATH = "/axis-cgi/mpeg2/buffer.cgi"


class Mpeg2Source(CursorSource):
    """One camera's MPEG-2 clients: its media's ring (fan-out and prebuffer) and sockets."""

    def __init__(
        self, media: CameraMedia, *, client_buffer_bytes: int, settings: AxisSettings
    ) -> None:
        """Read ``media``'s MPEG-2 ring (the camera must have one)."""
        if media.mpeg2 is None:
            raise ValueError(f"camera {media.camera.name} has no MPEG-2 source")
        super().__init__(
            media.camera,
            media.mpeg2,
            max_clients=media.settings.max_clients,
            client_buffer_bytes=client_buffer_bytes,
            settings=settings,
        )


#: Every camera's MPEG-2 source by camera name (cameras with ``mpeg2 = true``).
MPEG2_SOURCES = web.AppKey("axis_mpeg2", dict[str, Mpeg2Source])


def prebuffer_length(provided_ns: int) -> str:
    """Return ``X-Prebuffer-Length``: seconds provided, rounded down to the millisecond."""
    return repr((provided_ns // 1_000_000) / 1000)


async def video(request: web.Request) -> web.StreamResponse:
    """Stream the camera's MPEG-2 from the newest cut point (§5.3.1)."""
    return await _stream(request, VIDEO_PARAMS, buffered=False)


async def buffer(request: web.Request) -> web.StreamResponse:
    """Stream the camera's MPEG-2 from ``prebuffer`` seconds in the past (§5.3.3)."""
    return await _stream(request, BUFFER_PARAMS, buffered=True)


async def _stream(
    request: web.Request, table: Mapping[str, Parser], *, buffered: bool
) -> web.StreamResponse:
    camera = find_config(request)
    source = request.app[MPEG2_SOURCES].get(camera.name)
    if source is None:
        return error(404, f"camera {camera.name} has no MPEG-2 stream")
    try:
        options = parse_stream_options(request.query, table)
    except ParamError as exc:
        return error(400, exc)
    ring = source.ring
    start: Literal["newest_cut"] | int = "newest_cut"
    newest = ring.newest
    if options.prebuffer and newest is not None:
        # The held cut point nearest the time asked; the oldest one if asked for more.
        near = ring.cut_near(newest.received_ns - options.prebuffer * NS_PER_SECOND)
        if near is not None:
            start = near
    try:
        cursor = ring.subscribe(
            start,
            maxlag_ns=options.maxlag_ns,
            max_buffer_bytes=source.client_buffer_bytes,
            kind="mpeg2",
            remote=request.remote or "",
        )
    except CapacityError:
        return error(503, f"camera {camera.name} has {source.max_clients} MPEG-2 clients already")
    settings = request.app[SETTINGS]
    with cursor:
        if not await ready_within(cursor, settings.stream_wait):
            return error(503, f"camera {camera.name} has sent no MPEG-2 picture to start at yet")
        headers = dict(MPEG2_HEADERS)
        if buffered:
            # prebuffer=0 is the live start of video.cgi (the newest cut point): 0.0.
            provided = cursor.provided_ns if options.prebuffer else 0
            headers["X-Prebuffer-Length"] = prebuffer_length(provided)
        return await serve_cursor(
            request,
            cursor,
            headers,
            clients=source.egress,
            deadline=settings.write_deadline,
            duration=options.duration,
        )


def add_routes(app: web.Application) -> None:
    """Add ``video.cgi`` and ``buffer.cgi`` (the app fills MPEG2_SOURCES)."""
    app.router.add_get(VIDEO_PATH, video)
    app.router.add_get(BUFFER_PATH, buffer)
