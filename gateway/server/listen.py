"""Run the gateway's aiohttp app: bind first, then start the cameras, then serve.

``serving`` binds the listening socket before ``AppRunner.setup()`` runs the app's
cleanup contexts (which start the simulators and the camera ingests), so a busy port
fails in one line before any camera is contacted. Accepting starts once the app is
ready; connections go through ``Guard`` (caps, deadlines, quiet errors). The process's
open-file soft limit is raised to its hard limit first, and ``max_connections`` is kept
under it with room for cameras, encoders and WebRTC sockets: a flood is then refused
with ``503`` instead of failing ``accept()`` with ``EMFILE``, which asyncio logs per
attempt with a traceback and uvloop swallows while accepting nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from gateway.config import ServerConfig
from gateway.errors import GatewayError
from gateway.server.protocol import SERVER_NAME, Guard, GuardedHandler
from gateway.server.table import ConnectionTable

log = logging.getLogger("gateway.server")

#: The guard of the running server, for ``/api`` and ``/metrics`` figures.
CONNECTIONS = web.AppKey("connections", Guard)

#: Pending connections the kernel queues while the loop is busy (nginx uses 511), at
#: most; fewer under a low open-file limit (``listen_backlog``).
BACKLOG = 1024

#: Soft limit aimed at when the hard limit is unlimited (Linux's default fs.nr_open).
UNLIMITED_TARGET = 1 << 20


@dataclass(frozen=True, slots=True)
class FileLimit:
    """The open-file soft limit before and after ``raise_open_file_limit``."""

    before: int
    after: int

    def describe(self) -> str:
        """Return the start-up log line's words."""
        if self.after > self.before:
            return f"open files: soft limit raised from {self.before} to {self.after}"
        return f"open files: limit {self.after} (the hard limit)"


def raise_open_file_limit() -> FileLimit:
    """Raise ``RLIMIT_NOFILE``'s soft limit to the hard limit (each client is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return FileLimit(soft, soft)
        return FileLimit(soft, target)
    return FileLimit(soft, soft)


def listen_backlog(open_files: int) -> int:
    """Return the accept queue length for a process allowed ``open_files`` descriptors."""
    return max(16, min(BACKLOG, open_files // 16))


def connection_cap(max_connections: int, open_files: int) -> int:
    """Return ``max_connections`` kept under ``open_files`` with a reserve for the rest.

    The loop accepts a whole queue of connections (up to the backlog) before the guard
    sees the first of them, so the cap leaves room for a queue on top of the reserve.
    """
    if open_files == resource.RLIM_INFINITY:
        return max_connections
    reserve = max(64, open_files // 8) + listen_backlog(open_files)
    return max(1, min(max_connections, open_files - reserve))


def _reason(exc: OSError) -> str:
    # uvloop's strerror repeats the address; the errno's own words are the line we want.
    # getaddrinfo errors carry negative errnos and their own strerror.
    text = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _BoundSite(web.BaseSite):
    """A site over a server bound before ``AppRunner.setup``; ``start`` begins accepting."""

    __slots__ = ("_bound", "_url")

    def __init__(self, runner: web.BaseRunner, bound: asyncio.Server, url: str) -> None:
        super().__init__(runner)
        self._bound = bound
        self._url = url

    @property
    def name(self) -> str:
        """Return the URL served."""
        return self._url

    async def start(self) -> None:
        """Start accepting connections."""
        await super().start()
        self._server = self._bound
        await self._bound.start_serving()


@dataclass(frozen=True, slots=True)
class Listening:
    """A running server."""

    #: ``http://host:port/`` with the bound port.
    url: str
    port: int
    guard: Guard


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_NAME


@asynccontextmanager
async def serving(
    app: web.Application, config: ServerConfig, *, raise_file_limit: bool = True
) -> AsyncIterator[Listening]:
    """Bind ``config``'s address, start ``app`` (its cameras), serve until the block exits.

    A bind failure raises ``GatewayError("cannot listen on HOST:PORT: <reason>")`` before
    the app starts. ``raise_file_limit=False`` leaves the process's limit alone (tests).
    """
    limit = raise_open_file_limit() if raise_file_limit else None
    open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cap = connection_cap(config.max_connections, open_files)
    loop = asyncio.get_running_loop()
    table: ConnectionTable[GuardedHandler] = ConnectionTable(
        header_timeout=config.header_timeout,
        keepalive_timeout=config.keepalive_timeout,
        max_connections=cap,
        max_per_address=min(cap, config.max_connections_per_address),
    )
    # aiohttp's own keep-alive timer stays as a backstop that never fires before ours.
    backstop = config.header_timeout + config.keepalive_timeout + 60.0
    guard = Guard(
        table, loop=loop, handler_args={"keepalive_timeout": backstop, "access_log": None}
    )
    shown = _shown(config.host, config.port)
    try:
        bound = await loop.create_server(
            guard,
            config.host,
            config.port,
            reuse_address=True,
            backlog=listen_backlog(open_files),
            start_serving=False,
        )
    except OSError as exc:
        raise GatewayError(f"cannot listen on {shown}: {_reason(exc)}") from None
    port = int(bound.sockets[0].getsockname()[1]) if bound.sockets else config.port
    url = f"http://{_shown(config.host, port)}/"
    if limit is not None:
        log.info("%s", limit.describe())
    if cap < config.max_connections:
        log.warning(
            "max_connections lowered from %d to %d: the open-file limit is %d",
            config.max_connections,
            cap,
            open_files,
        )
    app[CONNECTIONS] = guard
    app.on_response_prepare.append(_server_header)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    try:
        await runner.setup()
    except BaseException:
        bound.close()
        raise
    try:
        assert runner.server is not None
        guard.attach(runner.server)
        await _BoundSite(runner, bound, url).start()
        yield Listening(url, port, guard)
    finally:
        await runner.cleanup()
        guard.close()
