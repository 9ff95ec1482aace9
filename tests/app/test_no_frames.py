"""A camera that has never produced a frame: every stream request waits briefly, then 503.

Not ``200`` and silence (issue 11, item 5): a player or script is told at once what is
wrong. The camera here accepts connections and never answers (or refuses them); each
output is asked once, with the waits shortened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from gateway.publish.axis import AxisSettings
from gateway.publish.webrtc import SESSIONS
from tests.publish.axis_client import Gateway, camera_toml, gateway
from tests.publish.webrtc.whep_sdp import chromium_offer

SETTINGS = AxisSettings(stream_wait=0.5, snapshot_wait=0.5, keyframe_wait=0.5)
#: What the gateway may take beyond its wait on a loaded machine.
LATE = 4.0


@asynccontextmanager
async def silent_camera() -> AsyncIterator[str]:
    """Run a camera that accepts every connection and never sends a byte; yield its URL."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
        await server.wait_closed()


@asynccontextmanager
async def dead_gateway(source: str, extra: str = "") -> AsyncIterator[Gateway]:
    """Run the gateway with one camera ``cam`` at ``source`` (every stream on) and WHEP."""
    toml = camera_toml(source=source, extra="mpeg2 = true\naudio = true\n" + extra)
    toml += '[webrtc]\naddresses = ["127.0.0.1"]\n[hls]\nsegment_seconds = 0.5\n'
    toml += "part_seconds = 0.1\n"
    async with gateway(toml, SETTINGS) as gw:
        yield gw


async def refused(http: aiohttp.ClientSession, method: str, url: str, **kwargs: object) -> str:
    """Return the body of a 503 that came within the bounds."""
    started = time.monotonic()
    async with http.request(method, url, **kwargs) as response:  # type: ignore[arg-type]
        assert response.status == 503, (url, response.status)
        assert response.content_type == "text/plain"
        text = await response.text()
    assert 0.4 <= time.monotonic() - started < LATE
    return text


PATHS = {
    "/axis-cgi/mjpg/video.cgi": "Error: camera cam has produced no image yet\n",
    "/mjpg/1/video.mjpg?resolution=160x120": "Error: camera cam has produced no image yet\n",
    "/axis-cgi/jpg/image.cgi": "Error: camera has produced no image yet\n",
    "/axis-cgi/mpeg2/video.cgi": "Error: camera cam has sent no MPEG-2 picture to start at yet\n",
    "/axis-cgi/mpeg2/buffer.cgi?prebuffer=5": (
        "Error: camera cam has sent no MPEG-2 picture to start at yet\n"
    ),
    "/axis-cgi/audio/receive.cgi": "Error: camera cam has sent no audio yet\n",
    "/mp4/cam": "Error: camera cam has produced no picture to encode yet\n",
}


@pytest.mark.parametrize("on_demand", [False, True], ids=["always", "on_demand"])
async def test_every_stream_of_a_silent_camera_is_a_503_with_a_reason(on_demand: bool) -> None:
    extra = "on_demand = true\nidle_seconds = 0.5\n" if on_demand else ""
    async with (
        silent_camera() as url,
        dead_gateway(url, extra) as gw,
        aiohttp.ClientSession() as http,
    ):
        for path, reason in PATHS.items():
            assert await refused(http, "GET", gw.base + path) == reason
        # LL-HLS: the first playlist waits three target durations for a segment.
        text = await refused(http, "GET", gw.base + "/hls/cam/index.m3u8")
        assert text == "Error: camera cam has no video yet\n"
        sessions = gw.app[SESSIONS]
        offer = chromium_offer()
        headers = {"Content-Type": "application/sdp"}
        text = await refused(http, "POST", gw.base + "/whep/cam", data=offer, headers=headers)
        assert text == "Error: camera cam has produced no picture to encode yet\n"
        assert sessions.peer_connections == 0
        assert sessions.refused == {503: 1}


async def test_a_camera_refusing_connections_is_a_503_for_mjpeg_and_audio() -> None:
    async with dead_gateway("http://127.0.0.1:9") as gw, aiohttp.ClientSession() as http:
        path = "/axis-cgi/mjpg/video.cgi"
        assert await refused(http, "GET", gw.base + path) == PATHS[path]
        path = "/axis-cgi/audio/receive.cgi"
        assert await refused(http, "GET", gw.base + path) == PATHS[path]


async def test_a_live_camera_is_served_without_waiting() -> None:
    settings = AxisSettings(stream_wait=0.0, snapshot_wait=0.0)
    async with gateway(camera_toml(), settings) as gw, aiohttp.ClientSession() as http:
        await gw.live()
        async with http.get(gw.base + "/axis-cgi/mjpg/video.cgi") as response:
            assert response.status == 200
            await response.content.readuntil(b"\r\n\r\n")
        async with http.get(gw.base + "/jpg/image.jpg") as response:
            assert response.status == 200
