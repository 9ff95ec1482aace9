"""A scripted loopback camera for CameraStream tests: one responder per connection."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from gateway.config import CameraConfig
from gateway.ingest import CameraStream
from gateway.ingest.backoff import ReconnectPolicy

PASSWORD = "Tr0ub4dor&3-secret"
SEQ = b"\x00\x00\x01\xb3\x28\x01\xe0\x33\xff\xff\xe0\x18\x00\x00\x01\xb5\x14\x8a\x00\x01\x00\x00"
PICTURE = b"\x00\x00\x01\x00" + b"\x11" * 600
FAST = ReconnectPolicy(initial=0.05, maximum=0.2, auth_delay=60.0, jitter=0.0)


@dataclass
class Request:
    """One request the fake camera received."""

    path: str
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


Responder = Callable[[Request], Awaitable[None]]


@dataclass
class FakeCamera:
    """A loopback HTTP server answering each connection with the next responder in ``plan``."""

    plan: list[Responder]
    requests: list[Request] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Stop listening, end every connection and wait until each socket is closed."""
        assert self.server is not None
        # The loop accepts a waiting connection (one the client just gave up on) in one
        # turn and makes its transport in the next; if the server closed in between, the
        # transport fails to attach (Python 3.11) and its socket is never closed. Callbacks
        # run in order, so one turn here lets an accept already made finish first.
        await asyncio.sleep(0)
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(w.wait_closed() for w in self.writers), return_exceptions=True)
        await self.server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Called from connection_made. The task's done callback closes the socket even if
        # the task is cancelled before its first step (a connection accepted as the test
        # ends: the loop's teardown cancels it), when no ``finally`` in it would run.
        def done(task: asyncio.Task[None]) -> None:
            writer.close()
            if not task.cancelled():
                task.exception()  # a client that left early: nothing to report

        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        task.add_done_callback(done)
        self.writers.append(writer)
        self.tasks.add(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        request = Request(lines[0].split(" ")[1], headers, reader, writer)
        self.requests.append(request)
        responder = self.plan[min(len(self.requests) - 1, len(self.plan) - 1)]
        with contextlib.suppress(ConnectionError):
            await responder(request)
            await writer.drain()


async def send(request: Request, data: bytes) -> None:
    request.writer.write(data)
    await request.writer.drain()


def mpeg(frames: int = 1000, interval: float = 0.01, *, chunked: bool = False) -> Responder:
    """Stream MPEG-2 pictures; stop sending (stall) after ``frames`` but keep the socket."""

    async def respond(request: Request) -> None:
        te = b"Transfer-Encoding: chunked\r\n" if chunked else b""
        await send(request, b"HTTP/1.0 200 OK\r\nServer: fake\r\nContent-Type: video/mpeg\r\n" + te)
        await send(request, b"\r\n")
        for i in range(frames):
            data = (SEQ if i == 0 else b"") + PICTURE
            if chunked:
                data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
            await send(request, data)
            await asyncio.sleep(interval)
        await asyncio.sleep(30)  # stall

    return respond


#: The smallest part the MJPEG demuxer takes as a JPEG (SOI ... EOI).
JPEG = b"\xff\xd8" + b"\x00" * 64 + b"\xff\xd9"


def mjpeg(interval: float = 0.01, *, gate: asyncio.Event | None = None) -> Responder:
    """Stream JPEG parts until the client goes; answer only once ``gate`` is set."""

    async def respond(request: Request) -> None:
        if gate is not None:
            await gate.wait()  # the request is in: the stream is connecting
        await send(
            request,
            b"HTTP/1.0 200 OK\r\n"
            b"Content-Type: multipart/x-mixed-replace; boundary=myboundary\r\n\r\n",
        )
        while True:
            part = b"--myboundary\r\nContent-Type: image/jpeg\r\n"
            part += b"Content-Length: %d\r\n\r\n" % len(JPEG) + JPEG + b"\r\n"
            await send(request, part)
            await asyncio.sleep(interval)

    return respond


def close_after(frames: int) -> Responder:
    async def respond(request: Request) -> None:
        await send(request, b"HTTP/1.0 200 OK\r\nContent-Type: video/mpeg\r\n\r\n" + SEQ)
        for _ in range(frames):
            await send(request, PICTURE)
            await asyncio.sleep(0.01)

    return respond


def status(line: str, content_type: str = "text/plain", extra: str = "") -> Responder:
    async def respond(request: Request) -> None:
        head = f"HTTP/1.1 {line}\r\nContent-Type: {content_type}\r\n{extra}\r\n"
        await send(request, head.encode() + b"<html>no</html>")

    return respond


def digest_ok(request: Request, password: str, nonce: str) -> bool:
    """Check a Digest MD5 qop=auth answer, written independently of gateway.ingest.auth."""
    value = request.headers.get("authorization", "")
    if not value.startswith("Digest "):
        return False
    f: dict[str, str] = dict(re.findall(r'(\w+)="?([^",]*)"?', value))

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{f['username']}:cam:{password}")
    ha2 = md5(f"GET:{f['uri']}")
    expected = md5(f"{ha1}:{f['nonce']}:{f['nc']}:{f['cnonce']}:auth:{ha2}")
    return f["nonce"] == nonce and f["response"] == expected and f["uri"] == request.path


def digest_guard(inner: Responder, *, nonce: str = "n1", stale_first: bool = False) -> Responder:
    seen_stale: list[bool] = []

    async def respond(request: Request) -> None:
        current = nonce
        if stale_first and not seen_stale and "authorization" in request.headers:
            seen_stale.append(True)
            challenge = 'Digest realm="cam", nonce="n2", qop="auth", stale=true'
            await status("401 Unauthorized", extra=f"WWW-Authenticate: {challenge}\r\n")(request)
            return
        if seen_stale:
            current = "n2"
        if digest_ok(request, PASSWORD, current):
            await inner(request)
            return
        challenge = f'Digest realm="cam", nonce="{current}", qop="auth", algorithm=MD5'
        await status("401 Unauthorized", extra=f"WWW-Authenticate: {challenge}\r\n")(request)

    return respond


@contextlib.asynccontextmanager
async def running(*cameras: FakeCamera) -> AsyncIterator[None]:
    for camera in cameras:
        await camera.start()
    try:
        yield
    finally:
        for camera in cameras:
            await camera.stop()


@contextlib.asynccontextmanager
async def streaming(stream: CameraStream) -> AsyncIterator[CameraStream]:
    await stream.start()
    try:
        yield stream
    finally:
        await stream.stop()


def camera_for(fake: FakeCamera, **kw: object) -> CameraConfig:
    return CameraConfig(name="cam1", index=1, source=fake.url, mpeg2=True, **kw)  # type: ignore[arg-type]


async def until(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Poll ``predicate`` (the stream has no event to wait on from outside) for ``limit`` s."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


class FakeClock:
    """Supervision time that jumps: ``sleep`` advances it at once (and lets the loop run).

    A sleep that would end after ``stop_at`` never ends (``parked`` tells), so a test
    stops the stream at a known time, not whenever its poll happens to look.
    """

    def __init__(self, stop_at: float = float("inf")) -> None:
        self.now = 0.0
        self.stop_at = stop_at
        self.parked = False

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if self.now + seconds > self.stop_at:
            self.parked = True
            await asyncio.Event().wait()  # until the stream is stopped (cancelled)
        self.now += seconds
        await asyncio.sleep(0)


def states(stream: CameraStream) -> list[str]:
    return [s.value for _, s in stream.history]
