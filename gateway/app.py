"""aiohttp Application assembly: typed AppKeys, routes, access control, startup/cleanup."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway import __version__
from gateway.config import CameraConfig, GatewayConfig, UserConfig, is_loopback
from gateway.hub import EgressBudget
from gateway.ingest import CameraStream, redact, register_secrets
from gateway.media import StreamKind
from gateway.metrics import CONTENT_TYPE, make_registry, render
from gateway.publish import axis
from gateway.publish import web as web_page
from gateway.sim import SimOptions, SimServer

log = logging.getLogger("gateway.app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class CameraRuntime:
    """Everything live for one configured camera."""

    config: CameraConfig
    streams: dict[StreamKind, CameraStream] = field(default_factory=dict)
    #: The in-process simulator standing in for the camera (``source = "sim"``).
    sim: SimServer | None = None
    #: MJPEG fan-out to Axis clients (None when the camera's MJPEG stream is off).
    fanout: axis.CameraFanout | None = None
    #: MPEG-2 fan-out and prebuffer (None when the camera's MPEG-2 stream is off).
    mpeg2: axis.Mpeg2Source | None = None
    #: Audio fan-out, decoder and level meter (None when the camera's audio is off).
    audio: axis.AudioSource | None = None

    def snapshot(self) -> dict[str, Any]:
        """Return the ``/api/cameras`` shape for this camera (credentials redacted)."""
        streams = {kind.value: s.snapshot() for kind, s in self.streams.items()}
        clients: list[dict[str, object]] = []
        if self.fanout is not None:
            clients += self.fanout.clients()
        if self.mpeg2 is not None:
            streams[StreamKind.MPEG2.value].update(self.mpeg2.stats())
            clients += self.mpeg2.clients()
        if self.audio is not None:
            streams[StreamKind.AUDIO.value].update(self.audio.stats())
            clients += self.audio.clients()
        return {
            "name": self.config.name,
            "index": self.config.index,
            "source": redact(self.config.source),
            "streams": streams,
            "clients": clients,
        }

    async def aclose(self) -> None:
        """Stop the ingest, then the fan-outs (their clients end), then the simulator.

        Idempotent: the app calls it at shutdown and again at cleanup.
        """
        for stream in self.streams.values():
            await stream.stop()
        if self.fanout is not None:
            await self.fanout.aclose()
        if self.mpeg2 is not None:
            self.mpeg2.close()
        if self.audio is not None:
            await self.audio.aclose()
        if self.sim is not None:
            await self.sim.stop()


CONFIG = web.AppKey("config", GatewayConfig)
CAMERAS = web.AppKey("cameras", dict[str, CameraRuntime])
REGISTRY = web.AppKey("registry", CollectorRegistry)
#: The app-wide ``max_egress_mbps`` shared by every camera stream and variant.
BUDGET = web.AppKey("budget", EgressBudget)

#: Paths anyone may reach: liveness must work for orchestrators without credentials.
PUBLIC_PATHS = frozenset({"/healthz"})


def _stream_kinds(camera: CameraConfig) -> list[StreamKind]:
    enabled = {StreamKind.MJPEG: camera.mjpeg, StreamKind.MPEG2: camera.mpeg2}
    enabled[StreamKind.AUDIO] = camera.audio
    return [kind for kind, on in enabled.items() if on]


async def _cameras_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the simulators and one ingest per camera stream; stop them all on exit."""
    config = app[CONFIG]
    runtimes = app[CAMERAS]
    loop = asyncio.get_running_loop()
    try:
        for camera in config.cameras:
            runtime = CameraRuntime(camera)
            runtimes[camera.name] = runtime
            base_url = None
            if camera.is_sim:
                size = camera.resolution or (640, 480)
                runtime.sim = SimServer(SimOptions(fps=float(camera.fps or 25), size=size))
                await runtime.sim.start("127.0.0.1", 0)
                base_url = runtime.sim.url
                log.info("camera %s: simulator on %s", camera.name, base_url)
            for kind in _stream_kinds(camera):
                stream = CameraStream(camera, kind, base_url=base_url)
                runtime.streams[kind] = stream
                if kind is StreamKind.MJPEG:
                    runtime.fanout = _fanout(app, camera, stream, loop)
                elif kind is StreamKind.MPEG2:
                    runtime.mpeg2 = _mpeg2(app, camera, stream)
                else:
                    runtime.audio = _audio(app, camera, stream, loop)
                await stream.start()
        yield
    finally:
        for runtime in runtimes.values():
            await runtime.aclose()


async def _end_clients(app: web.Application) -> None:
    """Stop every camera before aiohttp waits for the handlers: streaming clients return.

    aiohttp runs ``on_shutdown`` before it gives the handlers ``shutdown_timeout`` and
    then cancels them. A streaming handler never ends by itself, and one that ends in
    the loop turn the timeout fires makes aiohttp set a result on its cancelled handler
    waiter (``InvalidStateError``, the connection left open). Closed fan-outs and rings
    wake every pump, which returns at once. ``_cameras_ctx`` closes again (idempotent)
    for a startup that failed.
    """
    for runtime in app[CAMERAS].values():
        await runtime.aclose()


def _fanout(
    app: web.Application,
    camera: CameraConfig,
    stream: CameraStream,
    loop: asyncio.AbstractEventLoop,
) -> axis.CameraFanout:
    """Feed the camera's MJPEG ingest into a fan-out that sets the upstream rate."""
    fanout = axis.CameraFanout(
        camera,
        budget=app[BUDGET],
        max_clients=app[CONFIG].limits.max_clients_per_camera,
        settings=app[axis.SETTINGS],
        loop=loop,
    )
    fanout.ingest = stream
    stream.on_frame = fanout.on_frame
    app[axis.FANOUTS][camera.name] = fanout
    return fanout


def _mpeg2(app: web.Application, camera: CameraConfig, stream: CameraStream) -> axis.Mpeg2Source:
    """Feed the camera's MPEG-2 ingest into its ring (fan-out and prebuffer)."""
    limits = app[CONFIG].limits
    source = axis.Mpeg2Source(
        camera,
        max_clients=limits.max_clients_per_camera,
        client_buffer_bytes=limits.client_buffer_bytes,
        settings=app[axis.SETTINGS],
    )
    source.ingest = stream
    stream.on_frame = source.on_frame
    app[axis.MPEG2_SOURCES][camera.name] = source
    return source


def _audio(
    app: web.Application,
    camera: CameraConfig,
    stream: CameraStream,
    loop: asyncio.AbstractEventLoop,
) -> axis.AudioSource:
    """Feed the camera's audio ingest into its ring and its decoder."""
    limits = app[CONFIG].limits
    source = axis.AudioSource(
        camera,
        loop=loop,
        max_clients=limits.max_clients_per_camera,
        client_buffer_bytes=limits.client_buffer_bytes,
        settings=app[axis.SETTINGS],
    )
    source.ingest = stream
    stream.on_frame = source.on_frame
    app[axis.AUDIO_SOURCES][camera.name] = source
    return source


def _check_basic(header: str, users: tuple[UserConfig, ...]) -> UserConfig | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not sep:
        return None
    for user in users:
        same_name = hmac.compare_digest(user.name.encode(), name.encode())
        if same_name & hmac.compare_digest(user.password.value.encode(), password.encode()):
            return user
    return None


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admit loopback clients anonymously when no users exist, else require Basic auth."""
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    users = request.app[CONFIG].users
    if not users:
        if is_loopback(request.remote or ""):
            return await handler(request)
        raise web.HTTPForbidden(
            text="Error: anonymous access is allowed only from loopback; configure [[users]]\n"
        )
    if _check_basic(request.headers.get("Authorization", ""), users) is None:
        raise web.HTTPUnauthorized(
            text="Error: authentication required\n",
            headers={"WWW-Authenticate": 'Basic realm="gateway", charset="UTF-8"'},
        )
    return await handler(request)


def camera_runtime(request: web.Request, key: str) -> CameraRuntime:
    """Return the camera named or numbered ``key``, or raise 404."""
    camera = request.app[CONFIG].camera(key)
    if camera is None:
        raise web.HTTPNotFound(text=f"Error: no camera {key!r}\n")
    return request.app[CAMERAS][camera.name]


async def healthz(request: web.Request) -> web.Response:
    """Report liveness."""
    return web.json_response({"status": "ok", "version": __version__})


async def api_cameras(request: web.Request) -> web.Response:
    """Return the state of every camera."""
    runtimes = request.app[CAMERAS].values()
    return web.json_response({"cameras": [r.snapshot() for r in runtimes]})


async def api_camera(request: web.Request) -> web.Response:
    """Return the state of one camera."""
    return web.json_response(camera_runtime(request, request.match_info["camera"]).snapshot())


async def metrics(request: web.Request) -> web.Response:
    """Return Prometheus metrics."""
    body = render(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def create_app(
    config: GatewayConfig, *, axis_settings: axis.AxisSettings | None = None
) -> web.Application:
    """Build the gateway application for ``config`` (``axis_settings``: test timings)."""
    register_secrets(config.secrets())
    app = web.Application(middlewares=[access_middleware])
    app[CONFIG] = config
    app[CAMERAS] = {}
    app[BUDGET] = EgressBudget.from_mbps(config.limits.max_egress_mbps)
    app[axis.SETTINGS] = axis_settings or axis.AxisSettings()
    app[axis.FANOUTS] = {}
    app[axis.MPEG2_SOURCES] = {}
    app[axis.AUDIO_SOURCES] = {}
    app[axis.CAMERA_CONFIGS] = config.cameras
    app[REGISTRY] = make_registry(lambda: [r.snapshot() for r in app[CAMERAS].values()])
    app.cleanup_ctx.append(_cameras_ctx)
    app.on_shutdown.append(_end_clients)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/cameras", api_cameras)
    app.router.add_get("/api/cameras/{camera}", api_camera)
    app.router.add_get("/metrics", metrics)
    axis.add_routes(app)
    web_page.add_routes(app)
    return app
