"""Helpers for the Axis endpoint tests: the app on loopback and a raw multipart client."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from gateway.app import CAMERAS, create_app
from gateway.config import parse_config
from gateway.hub import CameraMedia, pts_ns
from gateway.ingest import CameraStream
from gateway.media import Frame, StreamKind
from gateway.publish.axis import FANOUTS, AxisSettings, CameraFanout
from gateway.transcode import PCM_KEY, PcmRendition

COM = re.compile(rb"sim frame=(\d+) t=(\d+)")


def camera_toml(name: str = "cam", fps: int = 25, source: str = "sim", extra: str = "") -> str:
    """Return one [[cameras]] table with only MJPEG on."""
    return (
        f'[[cameras]]\nname = "{name}"\nsource = "{source}"\nmjpeg = true\nfps = {fps}\n'
        f'resolution = "640x480"\nstall_timeout = 5.0\n{extra}'
    )


@dataclass
class Gateway:
    """A running gateway app on 127.0.0.1."""

    app: web.Application
    base: str
    port: int

    def fanout(self, name: str = "cam") -> CameraFanout:
        """Return the camera's fan-out."""
        return self.app[FANOUTS][name]

    def ingest(self, name: str = "cam") -> CameraStream:
        """Return the camera's MJPEG ingest."""
        return self.app[CAMERAS][name].streams[StreamKind.MJPEG]

    def media(self, name: str = "cam") -> CameraMedia:
        """Return the camera's media."""
        return self.app[CAMERAS][name].media

    def pcm(self, name: str = "cam") -> PcmRendition:
        """Return the camera's decoded audio."""
        pcm = self.media(name).renditions.get(PCM_KEY)
        assert pcm is not None
        return pcm

    def sim_requests(self, name: str = "cam") -> int:
        """Return MJPEG requests the camera's simulator received."""
        sim = self.app[CAMERAS][name].sim
        assert sim is not None
        return sim.requests["/axis-cgi/mjpg/video.cgi"]

    def sim_connections(self, name: str = "cam") -> int:
        """Return MJPEG connections open at the camera's simulator."""
        sim = self.app[CAMERAS][name].sim
        assert sim is not None
        return sim.connections["/axis-cgi/mjpg/video.cgi"]

    async def live(self, name: str = "cam", within: float = 10.0) -> None:
        """Wait until the camera produced a few frames."""
        deadline = time.monotonic() + within
        while self.fanout(name).source.frames_published < 3:
            assert time.monotonic() < deadline, "camera never went live"
            await asyncio.sleep(0.05)


@dataclass
class SourceLog:
    """Every frame a camera's ingest handed the fan-out, by simulator frame number."""

    #: Frame number -> (the simulator's capture ns, the gateway's ``received_ns``, its
    #: source time: ``pts`` in ns, the camera's smoothed clock the hub selects frames by).
    frames: dict[int, tuple[int, int, int]] = field(default_factory=dict)

    def received_ns(self, number: int) -> int:
        """Return when frame ``number`` reached the gateway (``X-Delta-Time``, lag)."""
        return self.frames[number][1]

    def source_ns(self, number: int) -> int:
        """Return the gateway's source time of frame ``number`` (what the hub selects by)."""
        return self.frames[number][2]

    def interval_ns(self, number: int, nominal_ns: int) -> int:
        """Return how long after its predecessor frame ``number`` reached the gateway."""
        before = self.frames.get(number - 1)
        return nominal_ns if before is None else self.frames[number][2] - before[2]

    def fps(self, first: int, last: int) -> float:
        """Return frames per second of camera time the camera sent from ``first`` to ``last``."""
        sent = sum(first <= n <= last for n in self.frames)
        return (sent - 1) * 1e9 / (self.frames[last][0] - self.frames[first][0])


#: What the hub's pick may add to a gap beyond the source's own intervals: its tolerance
#: (half an interval) follows a running average of the intervals.
SPACING_SLACK_NS = 8_000_000


def assert_evenly_spaced(
    numbers: list[int], source: SourceLog, fps: float, nominal_ns: int
) -> None:
    """Assert every gap between the delivered frames ``numbers`` is 1/``fps`` of source time.

    The hub picks the first source frame at each due time (less half an interval), by the
    gateway's source time (the frames' ``pts``), so a gap can differ from 1/``fps`` by the
    interval before either frame: one camera interval on an idle machine, more where
    frames reached the gateway late (a loaded machine). ``nominal_ns``: the camera's.
    """
    period = 1e9 / fps
    for a, b in itertools.pairwise(numbers):
        gap = source.source_ns(b) - source.source_ns(a)
        room = max(source.interval_ns(a, nominal_ns), source.interval_ns(b, nominal_ns))
        assert abs(gap - period) <= room + SPACING_SLACK_NS, (fps, a, b, gap / 1e6, room / 1e6)


def log_source(gw: Gateway, name: str = "cam") -> SourceLog:
    """Record every frame the camera's ingest hands its fan-out from now on."""
    ingest = gw.ingest(name)
    original = ingest.on_frame
    assert original is not None
    log = SourceLog()

    def spy(frame: Frame) -> None:
        match = COM.search(bytes(frame.payload[:200]))
        if match is not None:  # else a test looking the frame up fails (KeyError)
            log.frames[int(match[1])] = (int(match[2]), frame.received_ns, pts_ns(frame))
        original(frame)

    ingest.on_frame = spy
    return log


@asynccontextmanager
async def gateway(
    toml: str, settings: AxisSettings | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[Gateway]:
    """Run the gateway for ``toml`` on loopback until the block ends."""
    app = create_app(parse_config(toml, {}), axis_settings=settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Gateway(app, f"http://{host}:{port}", port)
    finally:
        await runner.cleanup()


@dataclass
class Part:
    """One received multipart part."""

    headers: dict[str, str]
    payload: bytes
    #: Monotonic arrival time (s).
    arrived: float
    #: Payload size (the payload may be kept truncated).
    size: int = 0

    @property
    def sim(self) -> tuple[int, int]:
        """Return the simulator's (frame number, capture ns) from the COM segment."""
        match = COM.search(self.payload[:200])
        assert match is not None, "no sim COM segment"
        return int(match[1]), int(match[2])


@dataclass
class MjpegClient:
    """A raw HTTP client reading the gateway's multipart stream part by part."""

    status: int = 0
    head: dict[str, str] = field(default_factory=dict)
    parts: list[Part] = field(default_factory=list)
    ended: str = ""


async def open_mjpeg(
    port: int, target: str, *, host: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, MjpegClient]:
    """Send the request and read the response head."""
    reader, writer = await asyncio.open_connection(host, port, limit=2**20)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    client = MjpegClient()
    client.status, client.head = await read_head(reader)
    return reader, writer, client


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """Read a response head: the status code and the headers (lower-case names)."""
    status_line = (await reader.readline()).decode()
    head: dict[str, str] = {}
    while (line := (await reader.readline()).decode().strip()) != "":
        name, _, value = line.partition(":")
        head[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), head


async def read_parts(
    reader: asyncio.StreamReader,
    client: MjpegClient,
    *,
    until: float | None = None,
    count: int | None = None,
    keep_payload: bool = True,
) -> None:
    """Read Content-Length parts until EOF, ``until`` (monotonic) or ``count`` parts."""
    loop = asyncio.get_running_loop()
    try:
        while count is None or len(client.parts) < count:
            timeout = None if until is None else until - loop.time()
            if timeout is not None and timeout <= 0:
                client.ended = "time"
                return
            async with asyncio.timeout(timeout):
                line = await reader.readline()
                if not line:
                    client.ended = "eof"
                    return
                if line == b"--myboundary--\r\n":
                    client.ended = "close-delimiter"
                    return
                assert line == b"--myboundary\r\n", line
                headers: dict[str, str] = {}
                while (h := await reader.readline()) != b"\r\n":
                    name, _, value = h.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                payload = await reader.readexactly(int(headers["content-length"]))
                assert await reader.readexactly(2) == b"\r\n"
            arrived = loop.time()
            kept = payload if keep_payload else payload[:200]
            client.parts.append(Part(headers, kept, arrived, len(payload)))
    except TimeoutError:
        client.ended = "time"


async def mjpeg(port: int, target: str, **kwargs: object) -> MjpegClient:
    """Open ``target`` and read parts (see ``read_parts``); close the connection."""
    reader, writer, client = await open_mjpeg(port, target)
    try:
        if client.status == 200:
            await read_parts(reader, client, **kwargs)  # type: ignore[arg-type]
        else:
            client.ended = (await reader.read(4096)).decode()
    finally:
        writer.close()
    return client
