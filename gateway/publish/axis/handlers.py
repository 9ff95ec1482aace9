"""Axis-compatible MJPEG and JPEG endpoints (VAPIX §5.2.1, §5.2.2, §5.2.5 to 5.2.7).

Errors follow DESIGN §5: ``400 text/plain`` with ``Error: <what is wrong>``; an unknown
camera is 404; the gateway running out of room (clients, variants) is 503.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.config import find_camera
from gateway.errors import CapacityError, RemoteProtocolError
from gateway.hub import RenditionHandle, Stream, Subscription
from gateway.media import Frame, Payload, StreamKind
from gateway.publish.egress import ClientEgress
from gateway.publish.streaming import open_body
from gateway.transcode import ImageParams, JpegVariant, ParamError, parse_image_params

from .fanout import AxisSettings, CameraFanout
from .options import (
    CRLF,
    MjpegOptions,
    PartCache,
    check_quad,
    parse_mjpeg_options,
    part_header,
)

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
#: RFC 2046 §5.1.1 close delimiter, sent when ``duration``/``nbrofframes`` ends a stream.
CLOSE_DELIMITER = b"--myboundary--\r\n"
#: Seconds between checks of a client whose gateway buffer is full or lag too high.
POLL = 0.05


def _error(status: int, reason: object) -> web.Response:
    return web.Response(status=status, text=f"Error: {reason}\n", content_type="text/plain")


def _fanout(request: web.Request) -> CameraFanout:
    """Return the camera of the path's N, else ``camera=``, else camera 1; or raise 404."""
    key = request.match_info.get("camera") or request.query.get("camera") or "1"
    fanouts = request.app[FANOUTS]
    camera = find_camera((fanout.camera for fanout in fanouts.values()), key)
    if camera is None:
        raise web.HTTPNotFound(text=f"Error: no camera {key[:40]!r}\n", content_type="text/plain")
    return fanouts[camera.name]


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
    handle: RenditionHandle[JpegVariant] | None = None
    try:
        stream = fanout.source
        if not image.is_passthrough:
            handle = fanout.variant(image)
            stream = handle.rendition.stream
        sub = stream.subscribe(
            target_fps=options.target_fps,
            priority=options.priority,
            kind="mjpeg",
            remote=request.remote or "",
        )
    except CapacityError as exc:
        if handle is not None:
            handle.release()
        return _error(503, exc)
    media = fanout.media
    try:
        with sub:
            media.update_rate()
            # A camera that never sent a picture (or an idle on-demand one that is
            # connecting for this client) must not get a 200 and silence.
            if await _first_frame(stream, fanout.settings.stream_wait) is None:
                return _error(503, f"camera {fanout.camera.name} has produced no image yet")
            parts = None if options.deltatime else fanout.part_cache(stream, options.showlength)
            return await _serve(request, fanout, sub, options, parts)
    finally:
        if handle is not None:
            handle.release()
        media.update_rate()


async def _first_frame(stream: Stream, within: float) -> Frame | None:
    """Return ``stream``'s newest frame, waiting ``within`` seconds for one (None: none came)."""
    if stream.latest is not None:
        return stream.latest
    try:
        return await asyncio.wait_for(stream.first_frame(), within)
    except TimeoutError:
        return None


async def _serve(
    request: web.Request,
    fanout: CameraFanout,
    sub: Subscription,
    options: MjpegOptions,
    parts: PartCache | None,
) -> web.StreamResponse:
    response, egress = await open_body(request, MJPEG_HEADERS)
    if egress is None:
        return response
    fanout.egress[sub] = egress
    try:
        pump = _Pump(sub, egress, options, fanout.settings.write_deadline, parts)
        if await pump.run():
            egress.write((CLOSE_DELIMITER,), 0)
    except ConnectionError:
        pass  # the client left; leaving the subscription is all there is to do
    finally:
        fanout.egress.pop(sub, None)
    return response


#: Source time between lag (SIOCOUTQ) checks of a client the fast path writes to.
LAG_EVERY_NS = 100_000_000


class _Pump:
    """One client's part writer: a coroutine for the slow path, ``deliver`` for the fast.

    While the coroutine is parked with nothing pending and the client took its last part
    whole, ``publish`` hands due frames to ``deliver``, which writes them from the publish
    path (no wakeup). Anything else (a short write, the frame count reached, the client
    gone) goes back to the coroutine, which settles as after any write.
    """

    __slots__ = (
        "armed",
        "deadline_ns",
        "egress",
        "end",
        "ended",
        "lag_at",
        "loop",
        "options",
        "parts",
        "previous_ns",
        "sent",
        "settle",
        "sub",
    )

    def __init__(
        self,
        sub: Subscription,
        egress: ClientEgress,
        options: MjpegOptions,
        deadline: float,
        parts: PartCache | None = None,
    ) -> None:
        self.sub = sub
        #: The stream's shared part cache (None with ``deltatime``: headers differ).
        self.parts = parts
        self.egress = egress
        self.options = options
        self.deadline_ns = int(deadline * 1e9)
        self.loop = asyncio.get_running_loop()
        self.end = None if options.duration is None else self.loop.time() + options.duration
        self.previous_ns: int | None = None
        self.sent = 0
        #: ``deliver`` may take frames (the coroutine is parked in ``wait``).
        self.armed = False
        #: ``deliver`` wrote a part the coroutine must settle.
        self.settle = False
        #: Set by ``deliver`` when the stream must end: True ended, False closed.
        self.ended: bool | None = None
        self.lag_at: int | None = None

    def part(self, frame: Frame) -> tuple[tuple[Payload, ...], int]:
        """Return the chunks of ``frame``'s part for this client and their total length."""
        self.sent += 1
        if self.parts is not None:
            return self.parts.get(frame)
        previous, self.previous_ns = self.previous_ns, frame.received_ns
        delta = None
        if self.options.deltatime:
            delta = 0 if previous is None else (frame.received_ns - previous) // 1000
        size = len(frame.payload)
        header = part_header(size if self.options.showlength else None, delta)
        return (header, frame.payload, CRLF), len(header) + size + len(CRLF)

    def write(self, frame: Frame) -> None:
        chunks, _ = self.part(frame)
        self.egress.write(chunks, frame.received_ns)

    def deliver(self, frame: Frame) -> bool:
        """Write ``frame`` now if the client can take it; False: leave it to the slot."""
        if not self.armed or not self.egress.can_send():
            return False
        if self.end is not None and self.loop.time() >= self.end:
            return False
        egress = self.egress
        chunks, total = self.part(frame)
        try:
            whole = egress.send(chunks, total, frame.received_ns)
        except ConnectionError:
            return self._stop(False)
        # The first round of ``_settle``, lag checked at most every LAG_EVERY_NS.
        at = self.lag_at
        if at is None or frame.received_ns - at >= LAG_EVERY_NS:
            self.lag_at = frame.received_ns
            lag = egress.lag_ns()
            self.sub.record_lag(lag)
            if lag > self.deadline_ns:
                egress.close()
                return self._stop(False)
        if not whole:
            self.settle = True
            self.armed = False
            self.sub.wake()
        elif self.options.nbrofframes is not None and self.sent >= self.options.nbrofframes:
            self.armed = False
            self.sub.wake()
        return True

    def _stop(self, ended: bool) -> bool:
        self.ended = ended
        self.armed = False
        self.sub.wake()
        return True

    async def run(self) -> bool:
        """Write parts until the client, its duration or its frame count ends; True if ended."""
        sub, egress, options, loop = self.sub, self.egress, self.options, self.loop
        fast = options.maxlag_ns is None and egress.can_send()
        if fast:
            sub.set_deliver(self.deliver)
        try:
            while options.nbrofframes is None or self.sent < options.nbrofframes:
                if self.end is not None and self.end <= loop.time():
                    return True  # as ``wait_for`` with no time left, frame pending or not
                frame = sub.poll()
                if frame is None:
                    if sub.closed:
                        return False
                    self.armed = fast
                    try:
                        if self.end is None:
                            await sub.wait()
                        else:
                            await asyncio.wait_for(sub.wait(), self.end - loop.time())
                    except TimeoutError:
                        return True
                    finally:
                        self.armed = False
                    if self.ended is not None:
                        return self.ended
                    if self.settle:
                        self.settle = False
                        if not await _settle(sub, egress, options, self.deadline_ns):
                            return False
                    continue
                if egress.closing:
                    return False
                self.write(frame)
                if not await _settle(sub, egress, options, self.deadline_ns):
                    return False
            return True
        finally:
            sub.set_deliver(None)


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
    settings = request.app[SETTINGS]
    media = fanout.media
    # An idle on-demand camera connects for the snapshot (the hold is its consumer) and
    # stays connected ``idle_seconds`` after, for the next one.
    wait = settings.snapshot_wait if media.demand is None else settings.stream_wait
    with media.hold(StreamKind.MJPEG):
        frame = await _first_frame(fanout.source, wait)
    if frame is None:
        return _error(503, "camera has produced no image yet")
    try:
        frame = await fanout.snapshots.snapshot(params, frame, fanout.running_variant(params))
    except CapacityError as exc:
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
