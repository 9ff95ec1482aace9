"""On-demand cameras end to end: no camera connection while unwatched, one per output family.

Each test runs the gateway on loopback with an in-process simulated camera and counts
the simulator's open connections per path: none before the first consumer, one while
watched, none again ``idle_seconds`` after the last consumer left.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from gateway.app import CAMERAS
from gateway.publish.axis import AxisSettings
from tests.app.stream_client import api_camera, open_stream, until
from tests.publish.axis_client import COM, Gateway, camera_toml, gateway, open_mjpeg, read_parts

MJPEG = "/axis-cgi/mjpg/video.cgi"
MPEG2 = "/axis-cgi/mpeg2/video.cgi"
AUDIO = "/axis-cgi/audio/receive.cgi"
#: The cameras' idle_seconds: long enough to see the linger, short for the suite.
IDLE = 1.0
#: What the loop's timer and a loaded machine may take off a measured linger.
SLACK = 0.1


def on_demand_toml(idle: float = IDLE, extra: str = "", after: str = "") -> str:
    """Return a simulated on-demand camera ``cam`` (MJPEG, plus ``extra``) and ``after``."""
    return camera_toml(extra=f"on_demand = true\nidle_seconds = {idle}\n{extra}") + after


def upstream(gw: Gateway, path: str = MJPEG) -> int:
    """Return the connections open at the camera's simulator on ``path``."""
    sim = gw.app[CAMERAS]["cam"].sim
    assert sim is not None
    return sim.connections[path]


def requested(gw: Gateway) -> int:
    """Return every request the camera's simulator received."""
    sim = gw.app[CAMERAS]["cam"].sim
    assert sim is not None
    return sim.requests_total


async def states(gw: Gateway) -> dict[str, Any]:
    """Return each stream's ``/api`` state."""
    camera = await api_camera(gw)
    return {kind: stream["state"] for kind, stream in camera["streams"].items()}


async def closes_after(gw: Gateway, left: float, path: str = MJPEG) -> float:
    """Return the seconds from ``left`` (monotonic) until the camera connection closed."""
    await until(lambda: upstream(gw, path) == 0, within=15.0, every=0.02)
    return time.monotonic() - left


async def unwatched(gw: Gateway) -> None:
    """Assert the camera is idle and was never asked for anything."""
    assert requested(gw) == 0
    camera = await api_camera(gw)
    assert camera["on_demand"] is True
    assert {stream["state"] for stream in camera["streams"].values()} == {"idle"}


async def test_an_mjpeg_viewer_opens_the_camera_and_idle_seconds_after_it_left_it_closes() -> None:
    async with gateway(on_demand_toml()) as gw:
        await unwatched(gw)
        reader, writer, client = await open_mjpeg(gw.port, MJPEG)
        assert client.status == 200
        await read_parts(reader, client, count=3)
        assert upstream(gw) == 1
        camera = await api_camera(gw)
        assert camera["streams"]["mjpeg"]["state"] == "live"
        assert camera["streams"]["mjpeg"]["consumers"] == 1
        assert camera["streams"]["mjpeg"]["on_demand"]["open"] is True
        # A second viewer shares the connection.
        reader2, writer2, client2 = await open_mjpeg(gw.port, MJPEG)
        await read_parts(reader2, client2, count=2)
        writer2.close()
        assert gw.app[CAMERAS]["cam"].sim is not None
        assert requested(gw) == 1
        writer.close()
        left = time.monotonic()
        assert await closes_after(gw, left) >= IDLE - SLACK
        await until(lambda: gw.ingest().state.value == "idle")
        camera = await api_camera(gw)
        assert camera["streams"]["mjpeg"]["state"] == "idle"
        assert camera["streams"]["mjpeg"]["on_demand"]["closed"] == 1
        # The next viewer opens it again.
        reader, writer, client = await open_mjpeg(gw.port, MJPEG)
        await read_parts(reader, client, count=1)
        assert requested(gw) == 2
        writer.close()


def _sim_time(body: bytes) -> int:
    match = COM.search(body[:200])
    assert match is not None
    return int(match[2])


async def test_a_snapshot_of_an_idle_camera_connects_takes_a_fresh_frame_and_lingers() -> None:
    async with gateway(on_demand_toml()) as gw, aiohttp.ClientSession() as http:
        await unwatched(gw)
        asked = time.time_ns()
        async with http.get(gw.base + "/jpg/image.jpg") as response:
            assert response.status == 200
            assert response.content_type == "image/jpeg"
            first = await response.read()
        answered = time.monotonic()
        # A picture the camera took for this request (the simulator starts a new
        # connection on a frame at most two intervals old), not one from before.
        assert _sim_time(first) >= asked - 100_000_000
        assert upstream(gw) == 1  # lingering for the next snapshot
        async with http.get(gw.base + "/jpg/image.jpg") as response:
            assert response.status == 200
            await response.read()
        assert requested(gw) == 1  # the second one came from the open connection
        assert await closes_after(gw, answered) >= IDLE - SLACK
        await until(lambda: gw.fanout().source.latest is None, within=1.0)
        closed = time.time_ns()
        async with http.get(gw.base + "/jpg/image.jpg") as response:
            assert response.status == 200
            third = await response.read()
        assert requested(gw) == 2
        assert _sim_time(third) >= closed - 100_000_000


async def test_an_fmp4_viewer_opens_the_camera_through_the_encode() -> None:
    async with gateway(on_demand_toml()) as gw, aiohttp.ClientSession() as http:
        await unwatched(gw)
        async with http.get(gw.base + "/mp4/cam") as response:
            assert response.status == 200
            assert response.content_type == "video/mp4"
            received = b""
            while b"moof" not in received:
                received += await response.content.read(4096)
            assert upstream(gw) == 1
            camera = await api_camera(gw)
            assert camera["streams"]["mjpeg"]["consumers"] == 1  # the encode's one reader
        left = time.monotonic()
        # The encode lingers (encode_linger) but consumes nothing: the camera closes on time.
        assert await closes_after(gw, left) >= IDLE - SLACK
        assert (await states(gw))["mjpeg"] == "idle"
        assert gw.media().renditions.consumers() == {}


async def test_an_hls_session_holds_the_camera_until_it_goes_idle() -> None:
    toml = on_demand_toml(after="[hls]\nidle_seconds = 1.0\n")
    async with gateway(toml) as gw, aiohttp.ClientSession() as http:
        await unwatched(gw)
        async with http.get(gw.base + "/hls/cam/index.m3u8") as response:
            assert response.status == 200
            assert "#EXT-X-STREAM-INF" in await response.text()
        asked = time.monotonic()
        assert upstream(gw) == 1
        # The segmenter claims the encode until HLS idles (counted from the answer, which
        # left a moment before ``asked``), then the camera lingers.
        assert await closes_after(gw, asked) >= 1.0 + IDLE - 0.5
        assert (await states(gw))["mjpeg"] == "idle"


async def test_each_stream_opens_for_its_own_consumers() -> None:
    toml = on_demand_toml(extra="mpeg2 = true\naudio = true\n")
    async with gateway(toml) as gw:
        await unwatched(gw)
        reader, writer, client = await open_stream(gw.port, AUDIO)
        assert client.status == 200
        await reader.readexactly(200)
        assert (upstream(gw, AUDIO), upstream(gw, MPEG2), upstream(gw, MJPEG)) == (1, 0, 0)
        assert (await states(gw)) == {"mjpeg": "idle", "mpeg2": "idle", "audio": "live"}
        reader2, writer2, client2 = await open_stream(gw.port, MPEG2)
        assert client2.status == 200
        await reader2.readexactly(200)
        assert upstream(gw, MPEG2) == 1
        writer.close()
        writer2.close()
        left = time.monotonic()
        assert await closes_after(gw, left, AUDIO) >= IDLE - SLACK
        assert await closes_after(gw, left, MPEG2) >= IDLE - SLACK
        assert upstream(gw, MJPEG) == 0
        # The PCM level meter is not a consumer of an on-demand camera's audio.
        assert gw.media().renditions.consumers() == {}


async def test_a_camera_that_is_not_on_demand_connects_at_start() -> None:
    async with gateway(camera_toml()) as gw:
        await gw.live()
        assert upstream(gw) == 1
        assert (await api_camera(gw))["on_demand"] is False


async def test_an_on_demand_camera_that_never_answers_is_a_503_and_is_let_go() -> None:
    settings = AxisSettings(stream_wait=0.5, snapshot_wait=0.2)
    toml = on_demand_toml(idle=0.5).replace('source = "sim"', 'source = "http://127.0.0.1:9"')
    async with gateway(toml, settings) as gw, aiohttp.ClientSession() as http:
        started = time.monotonic()
        async with http.get(gw.base + "/jpg/image.jpg") as response:
            assert response.status == 503
            assert await response.text() == "Error: camera has produced no image yet\n"
        # An on-demand camera connects first: the snapshot waits stream_wait.
        assert 0.4 <= time.monotonic() - started < 3.0
        await until(lambda: gw.ingest().state.value == "idle", within=10.0)
        assert (await states(gw))["mjpeg"] == "idle"
