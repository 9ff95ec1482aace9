"""Axis-compatible MJPEG and JPEG endpoints (VAPIX §5.2.1, §5.2.2, §5.2.5 to 5.2.7).

Errors follow DESIGN §5: ``400 text/plain`` with ``Error: <what is wrong>``; an unknown
camera is 404; the gateway running out of room (clients, variants) is 503.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.errors import RemoteProtocolError
from gateway.hub import StreamFullError, Subscription
from gateway.transcode import (
    ImageParams,
    ParamError,
    VariantHandle,
    VariantLimitError,
    parse_image_params,
)

from .egress import ClientEgress
from .fanout import AxisSettings, CameraFanout
from .options import MjpegOptions, check_quad, parse_mjpeg_options, part_header

#: Every camera's fan-out by camera name (the app fills it in its cleanup context).
FANOUTS = web.AppKey("axis_fanouts", dict[str, CameraFanout])
#: Timing knobs (tests shorten the write deadline).
SETTINGS = web.AppKey("axis_settings", AxisSettings)

MJPEG_PATHS = ("/axis-cgi/mjpg/video.cgi", "/mjpg/video.mjpg", r"/mjpg/{camera:\d+}/video.mjpg")
JPEG_PATHS = ("/axis-cgi/jpg/image.cgi", "/jpg/image.jpg", r"/jpg/{camera:\d+}/image.jpg")
#: The response head of §5.2.7; no caching, one response per connection.
MJPEG_HEADERS = {
    "Content-Type": "multipart/x-mixed-replace;boundary=myboundary",
    "Cache-Control": "no-cache",
    "Pragma": "no-cache",
}
CRLF = b"\r\n"
#: RFC 2046 §5.1.1 close delimiter, sent when ``duration``/``nbrofframes`` ends a stream.
CLOSE_DELIMITER = b"--myboundary--\r\n"
#: Seconds between checks of a client whose gateway buffer is full or lag too high.
POLL = 0.05


class _MultipartResponse(web.StreamResponse):
    """A response whose body the endpoint writes to the socket itself (no chunking)."""

    # As for WebSockets: the body is not HTTP-framed by aiohttp; the connection closes.
    _length_check = False


def _error(status: int, reason: object) -> web.Response:
    return web.Response(status=status, text=f"Error: {reason}\n", content_type="text/plain")


def _fanout(request: web.Request) -> CameraFanout:
    """Return the camera of the path's N, else ``camera=``, else camera 1; or raise 404."""
    key = request.match_info.get("camera") or request.query.get("camera") or "1"
    for fanout in request.app[FANOUTS].values():
        if fanout.camera.name == key or (key.isdigit() and fanout.camera.index == int(key)):
            return fanout
    raise web.HTTPNotFound(text=f"Error: no camera {key[:40]!r}\n", content_type="text/plain")


async def mjpeg(request: web.Request) -> web.StreamResponse:
    """Stream the camera as multipart JPEG at the client's rate and image parameters."""
    fanout = _fanout(request)
    try:
        options = parse_mjpeg_options(request.query)
        image = parse_image_params(request.query, fanout.source_size)
    except ParamError as exc:
        return _error(400, exc)
    if fanout.client_count() >= fanout.max_clients:
        return _error(503, f"camera {fanout.camera.name} has {fanout.max_clients} clients already")
    handle: VariantHandle | None = None
    try:
        stream = fanout.source
        if not image.is_passthrough:
            handle = fanout.pool.acquire(image)
            stream = fanout.variants[image]
        sub = stream.subscribe(
            target_fps=options.target_fps,
            priority=options.priority,
            kind="mjpeg",
            remote=request.remote or "",
        )
    except (VariantLimitError, StreamFullError) as exc:
        if handle is not None:
            handle.release()
        return _error(503, exc)
    try:
        with sub:
            fanout.update_rate()
            return await _serve(request, fanout, sub, options)
    finally:
        if handle is not None:
            handle.release()
        fanout.update_rate()


async def _serve(
    request: web.Request, fanout: CameraFanout, sub: Subscription, options: MjpegOptions
) -> web.StreamResponse:
    response = _MultipartResponse(headers=MJPEG_HEADERS)
    response.force_close()
    writer = await response.prepare(request)
    transport = request.transport
    if writer is None or transport is None or transport.is_closing():
        return response
    egress = ClientEgress(transport, writer)
    fanout.egress[sub] = egress
    try:
        if await _pump(sub, egress, options, fanout.settings.write_deadline):
            egress.write((CLOSE_DELIMITER,), 0)
    except ConnectionError:
        pass  # the client left; leaving the subscription is all there is to do
    finally:
        fanout.egress.pop(sub, None)
    return response


async def _pump(
    sub: Subscription, egress: ClientEgress, options: MjpegOptions, deadline: float
) -> bool:
    """Write parts until the client, its duration or its frame count ends; True if ended."""
    loop = asyncio.get_running_loop()
    end = None if options.duration is None else loop.time() + options.duration
    previous_ns: int | None = None
    sent = 0
    while options.nbrofframes is None or sent < options.nbrofframes:
        if end is None:
            frame = await sub.next()
        else:
            try:
                frame = await asyncio.wait_for(sub.next(), end - loop.time())
            except TimeoutError:
                return True
        if frame is None or egress.closing:
            return False
        delta = None
        if options.deltatime:
            delta = 0 if previous_ns is None else (frame.received_ns - previous_ns) // 1000
        previous_ns = frame.received_ns
        length = len(frame.payload) if options.showlength else None
        egress.write((part_header(length, delta), frame.payload, CRLF), frame.received_ns)
        sent += 1
        if not await _settle(sub, egress, options, int(deadline * 1e9)):
            return False
    return True


async def _settle(
    sub: Subscription, egress: ClientEgress, options: MjpegOptions, deadline_ns: int
) -> bool:
    """Wait until the gateway holds nothing for the client and its lag is allowed.

    Returns False when the client was closed: it kept a frame longer than the deadline.
    """
    cut = False
    while True:
        lag = egress.lag_ns()
        sub.record_lag(lag)
        if lag > deadline_ns:
            egress.close()
            return False
        if egress.closing:
            return False
        if egress.buffered():
            await egress.drained(POLL * 5)
            continue
        if options.maxlag_ns is None or lag <= options.maxlag_ns:
            return True
        # What the kernel holds cannot be recalled: send nothing more until the client
        # took it, then resume at the newest frame (the hub's slot), as one cut.
        if not cut:
            cut = True
            sub.record_cut()
        await asyncio.sleep(POLL)


async def snapshot(request: web.Request) -> web.StreamResponse:
    """Return the camera's newest image (optionally transformed); no upstream request."""
    fanout = _fanout(request)
    try:
        check_quad(request.query)
        params: ImageParams = parse_image_params(request.query, fanout.source_size)
    except ParamError as exc:
        return _error(400, exc)
    wait = request.app[SETTINGS].snapshot_wait
    try:
        frame = await asyncio.wait_for(fanout.source.first_frame(), wait)
    except TimeoutError:
        frame = None
    if frame is None:
        return _error(503, "camera has produced no image yet")
    try:
        frame = await fanout.pool.snapshot(params, frame)
    except VariantLimitError as exc:
        return _error(503, exc)
    except RemoteProtocolError as exc:
        return _error(502, f"the camera's image could not be transcoded: {exc}")
    return web.Response(
        body=bytes(frame.payload) if isinstance(frame.payload, memoryview) else frame.payload,
        headers={"Content-Type": "image/jpeg", "Cache-Control": "no-cache"},
    )


def add_routes(app: web.Application) -> None:
    """Add the MJPEG and JPEG endpoints to ``app`` (it must hold FANOUTS and SETTINGS)."""
    for path in MJPEG_PATHS:
        app.router.add_get(path, mjpeg)
    for path in JPEG_PATHS:
        app.router.add_get(path, snapshot)
