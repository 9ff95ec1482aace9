"""The simulator's aiohttp application, its shared state, and a server to run it."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from gateway.sim import handlers
from gateway.sim.auth import Authenticator
from gateway.sim.options import Quirk, QuirkError, SimOptions, parse_quirks
from gateway.sim.state import STATE, SimState

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _plain(status: int, text: str, headers: CIMultiDict[str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", headers=headers)


#: Answers to the status quirks, which replace any endpoint's response.
_STATUS_QUIRKS: dict[Quirk, Callable[[], web.Response]] = {
    Quirk.STATUS_503: lambda: _plain(503, "Error: service unavailable (simulated)\r\n"),
    Quirk.HTML_ERROR: lambda: web.Response(
        text="<html><head><title>Error</title></head>"
        "<body><h1>Video is not available</h1></body></html>\r\n",
        content_type="text/html",
    ),
    Quirk.STATUS_401: lambda: _plain(
        401,
        "Error: unauthorized (simulated)\r\n",
        CIMultiDict({"WWW-Authenticate": 'Basic realm="AXIS_SIM"'}),
    ),
}


@web.middleware
async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request, apply quirks and auth, and turn parameter errors into 400."""
    state = request.app[STATE]
    path = request.path
    state.requests[path] += 1
    state.connections[path] += 1
    try:
        try:
            quirks = {**state.quirks, **parse_quirks(request.query.getall("quirk", []))}
        except QuirkError as exc:
            return _plain(400, f"Error: {exc}\r\n")
        request[handlers.QUIRKS] = quirks
        for quirk, respond in _STATUS_QUIRKS.items():
            if quirk in quirks:
                return respond()
        if state.auth is not None:
            header = request.headers.get("Authorization")
            challenges = state.auth.check(request.method, request.raw_path, header)
            if challenges is not None:
                response = _plain(401, "Error: unauthorized\r\n", CIMultiDict())
                for challenge in challenges:
                    response.headers.add("WWW-Authenticate", challenge)
                return response
        try:
            return await handler(request)
        except handlers.ParamError as exc:
            return _plain(400, f"Error: {exc}\r\n")
    finally:
        state.connections[path] -= 1
        if not state.connections[path]:
            del state.connections[path]


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[STATE].hub.close()


async def _on_shutdown(app: web.Application) -> None:
    # Runs before aiohttp waits for handlers: end every stream now, not at the timeout.
    state = app[STATE]
    state.closing.set()
    await state.hub.close()


def create_sim_app(options: SimOptions) -> web.Application:
    """Return the simulator as an aiohttp Application (sources start on first use)."""
    app = web.Application(middlewares=[_gate])
    state = SimState(options, options.parsed_quirks)
    if options.auth is not None and options.user is not None:
        state.auth = Authenticator(options.auth, options.user, nonce_ttl=options.nonce_ttl)
    app[STATE] = state
    app.cleanup_ctx.append(_lifetime)
    app.on_shutdown.append(_on_shutdown)
    for path in ("/axis-cgi/mjpg/video.cgi", "/mjpg/video.mjpg", r"/mjpg/{camera:\d+}/video.mjpg"):
        app.router.add_get(path, handlers.mjpeg)
    for path in ("/axis-cgi/jpg/image.cgi", "/jpg/image.jpg", r"/jpg/{camera:\d+}/image.jpg"):
        app.router.add_get(path, handlers.snapshot)
    app.router.add_get("/axis-cgi/mpeg2/video.cgi", handlers.mpeg2)
    app.router.add_get("/axis-cgi/audio/receive.cgi", handlers.audio)
    app.router.add_get("/axis-cgi/audio/getparam.cgi", handlers.audio_params)
    return app


class SimServer:
    """Runs the simulator on a TCP port; ``url`` is its base URL once started."""

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.app = create_sim_app(options)
        self.url = ""
        self._runner: web.AppRunner | None = None

    @property
    def connections(self) -> collections.Counter[str]:
        """Return requests in progress per path (0 for paths not in progress)."""
        return self.app[STATE].connections

    @property
    def requests(self) -> collections.Counter[str]:
        """Return requests received per path."""
        return self.app[STATE].requests

    @property
    def requests_total(self) -> int:
        """Return the number of requests received."""
        return sum(self.app[STATE].requests.values())

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 picks a free port) and set ``url``."""
        runner = web.AppRunner(
            self.app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"

    async def stop(self) -> None:
        """End every stream and stop listening."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def run_sim(options: SimOptions, host: str, port: int) -> None:
    """Serve the simulator until cancelled, logging its URL once."""
    server = SimServer(options)
    await server.start(host, port)
    try:
        log.info("Axis camera simulator serving on %s/", server.url)
        await asyncio.Event().wait()
    finally:
        await server.stop()
