"""aiohttp Application assembly: typed AppKeys, routes, startup/cleanup (access: gateway/access)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway import __version__, app_metrics
from gateway.access import add_access, camera_view, principal
from gateway.config import CameraConfig, GatewayConfig
from gateway.hub import CameraMedia, EgressBudget, MediaSettings, RenditionHandle
from gateway.ingest import CameraStream, redact, register_secrets
from gateway.media import StreamKind
from gateway.metrics import CONTENT_TYPE, make_registry, render
from gateway.publish import axis, mp4, webrtc
from gateway.publish import web as web_page
from gateway.publish.hls import server as hls
from gateway.publish.keys import MEDIA
from gateway.sim import SimOptions, SimServer
from gateway.transcode import PCM_KEY, rendition_specs

log = logging.getLogger("gateway.app")


@dataclass(slots=True)
class CameraRuntime:
    """Everything live for one configured camera."""

    config: CameraConfig
    #: The camera's media: sources, renditions, upstream rate (every publisher reads it).
    media: CameraMedia
    #: One ingest per enabled upstream stream.
    streams: dict[StreamKind, CameraStream] = field(default_factory=dict)
    #: The in-process simulator standing in for the camera (``source = "sim"``).
    sim: SimServer | None = None
    #: Each publisher's side of the camera (Axis, fMP4), in ``PUBLISHERS`` order.
    publishers: list[CameraPublisher] = field(default_factory=list)
    #: Renditions the camera holds for as long as it runs (the PCM level meter; not for an
    #: on-demand camera, whose audio it would keep open).
    held: list[RenditionHandle[Any]] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        """Return the ``/api/cameras`` shape for this camera (credentials redacted)."""
        streams = {kind: s.snapshot() for kind, s in self.streams.items()}
        extra = [self.media.stats()]
        extra += [publisher.stats() for publisher in self.publishers]
        pcm = self.media.renditions.get(PCM_KEY)
        if pcm is not None:
            extra.append({StreamKind.AUDIO: pcm.stats()})
        for figures in extra:
            for kind, values in figures.items():
                if kind in streams:
                    streams[kind].update(values)
        return {
            "name": self.config.name,
            "index": self.config.index,
            "source": redact(self.config.source),
            "on_demand": self.config.on_demand,
            "streams": {kind.value: values for kind, values in streams.items()},
            "renditions": self.media.renditions.stats(),
            "outputs": {
                spec.name: publisher.summary()
                for spec, publisher in zip(PUBLISHERS, self.publishers, strict=True)
            },
            "clients": [c for publisher in self.publishers for c in publisher.clients()],
        }

    async def aclose(self) -> None:
        """Stop the ingest, then the media (its readers end), then the simulator.

        Idempotent: the app calls it at shutdown and again at cleanup.
        """
        for stream in self.streams.values():
            await stream.stop()
        for handle in self.held:
            handle.release()
        for publisher in self.publishers:
            await publisher.aclose()
        await self.media.aclose()
        if self.sim is not None:
            await self.sim.stop()


class CameraPublisher(Protocol):
    """One publisher's side of one camera: its clients and figures for ``/api``."""

    def clients(self) -> list[dict[str, object]]:
        """Return the ``/api`` client entries."""
        ...

    def stats(self) -> dict[StreamKind, dict[str, object]]:
        """Return what the publisher adds to ``/api`` ``streams``."""
        ...

    def summary(self) -> dict[str, object]:
        """Return the publisher's own figures for ``/api`` ``outputs``."""
        ...

    async def aclose(self) -> None:
        """Let work in progress finish (the media ends the streaming clients)."""


@dataclass(frozen=True, slots=True)
class Publisher:
    """An output of the gateway: its routes, and what it keeps per camera."""

    #: The output's name in ``/api`` ``outputs``.
    name: str
    add_routes: Callable[[web.Application], None]
    add_camera: Callable[[web.Application, CameraMedia, GatewayConfig], CameraPublisher]


#: Every output, each reading the cameras' media as an equal (DESIGN §2).
PUBLISHERS = (
    Publisher("axis", axis.add_routes, axis.add_camera),
    Publisher("mp4", mp4.add_routes, mp4.add_camera),
    Publisher("hls", hls.add_routes, hls.add_camera),
    Publisher("webrtc", webrtc.add_routes, webrtc.add_camera),
)

CONFIG = web.AppKey("config", GatewayConfig)
CAMERAS = web.AppKey("cameras", dict[str, CameraRuntime])
REGISTRY = web.AppKey("registry", CollectorRegistry)
#: The app-wide ``max_egress_mbps`` shared by every camera stream and variant.
BUDGET = web.AppKey("budget", EgressBudget)


def _stream_kinds(camera: CameraConfig) -> list[StreamKind]:
    enabled = {StreamKind.MJPEG: camera.mjpeg, StreamKind.MPEG2: camera.mpeg2}
    enabled[StreamKind.AUDIO] = camera.audio
    return [kind for kind, on in enabled.items() if on]


def _media(app: web.Application, camera: CameraConfig) -> CameraMedia:
    """Return the camera's media with the renditions ``gateway/transcode`` makes."""
    config, settings = app[CONFIG], app[axis.SETTINGS]
    return CameraMedia(
        camera,
        loop=asyncio.get_running_loop(),
        settings=MediaSettings(
            max_clients=config.limits.max_clients_per_camera,
            upstream_lower_after=settings.upstream_lower_after,
        ),
        budget=app[BUDGET],
        specs=rendition_specs(
            variant_linger=settings.variant_linger,
            max_variants=settings.max_variants,
            encode_linger=settings.encode_linger,
        ),
    )


async def _cameras_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the simulators, each camera's media and one ingest per stream; stop them all."""
    config = app[CONFIG]
    runtimes = app[CAMERAS]
    try:
        for camera in config.cameras:
            media = _media(app, camera)
            runtime = runtimes[camera.name] = CameraRuntime(camera, media)
            app[MEDIA][camera.name] = media
            runtime.publishers = [p.add_camera(app, media, config) for p in PUBLISHERS]
            if media.audio is not None and not camera.on_demand:
                runtime.held.append(media.renditions.acquire(PCM_KEY))
            base_url = None
            if camera.is_sim:
                size = camera.resolution or (640, 480)
                fps, mpeg2_format = float(camera.fps or 25), camera.sim_mpeg2_format.value
                runtime.sim = SimServer(SimOptions(fps=fps, size=size, mpeg2_format=mpeg2_format))
                await runtime.sim.start("127.0.0.1", 0)
                base_url = runtime.sim.url
                log.info("camera %s: simulator on %s", camera.name, base_url)
            for kind in _stream_kinds(camera):
                stream = CameraStream(
                    camera, kind, base_url=base_url, on_frame=media.on_frame(kind)
                )
                runtime.streams[kind] = stream
                media.attach(kind, stream)
                if not camera.on_demand:  # else the media starts it for its first consumer
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
    waiter (``InvalidStateError``, the connection left open). Closed sources and rings
    wake every pump, which returns at once. ``_cameras_ctx`` closes again (idempotent)
    for a startup that failed.
    """
    for runtime in app[CAMERAS].values():
        await runtime.aclose()


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
    """Return the state of every camera the client may see (a viewer's reduced view)."""
    grant = principal(request)
    runtimes = [r for r in request.app[CAMERAS].values() if grant.may_view(r.config.name)]
    return web.json_response({"cameras": [camera_view(grant, r.snapshot()) for r in runtimes]})


async def api_camera(request: web.Request) -> web.Response:
    """Return the state of one camera (the access middleware refused cameras not allowed)."""
    runtime = camera_runtime(request, request.match_info["camera"])
    return web.json_response(camera_view(principal(request), runtime.snapshot()))


async def metrics(request: web.Request) -> web.Response:
    """Return Prometheus metrics."""
    body = render(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def create_app(
    config: GatewayConfig, *, axis_settings: axis.AxisSettings | None = None
) -> web.Application:
    """Build the gateway application for ``config`` (``axis_settings``: test timings)."""
    register_secrets(config.secrets())
    app = web.Application()
    add_access(app, config)
    app[CONFIG] = config
    app[CAMERAS] = {}
    app[BUDGET] = EgressBudget.from_mbps(config.limits.max_egress_mbps)
    app[axis.SETTINGS] = axis_settings or axis.AxisSettings()
    app[axis.CAMERA_CONFIGS] = config.cameras
    app.cleanup_ctx.append(_cameras_ctx)
    app.on_shutdown.append(_end_clients)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/cameras", api_cameras)
    app.router.add_get("/api/cameras/{camera}", api_camera)
    app.router.add_get("/metrics", metrics)
    app[MEDIA] = {}
    for publisher in PUBLISHERS:
        publisher.add_routes(app)
    app_metrics.install(app)
    media = app[MEDIA]
    app.cleanup_ctx.append(app_metrics.sampling_ctx(media.values))
    app[REGISTRY] = make_registry(
        lambda: [r.snapshot() for r in app[CAMERAS].values()],
        app[webrtc.SESSIONS].stats,
        media=lambda: media,
        extra=app_metrics.collectors(app),
    )
    web_page.add_routes(app)
    return app
