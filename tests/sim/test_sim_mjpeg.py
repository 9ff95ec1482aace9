"""MJPEG and snapshot endpoints and their parameters over real sockets."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import av
import pytest

from gateway.sim import SimOptions, SimServer
from gateway.sim.pattern import read_block_code
from gateway.sim.state import STATE

Fetch = Callable[..., Awaitable[Any]]
Parts = Callable[..., list[Any]]


def decode_jpeg(data: bytes) -> av.VideoFrame:
    with av.open(io.BytesIO(data), "r", format="mjpeg") as container:
        return next(container.decode(video=0))


def comment(jpeg: bytes) -> tuple[int, int]:
    match = re.match(rb"\xff\xd8\xff\xfe..sim frame=(\d+) t=(\d+)", jpeg, re.DOTALL)
    assert match is not None
    return int(match[1]), int(match[2])


@pytest.mark.parametrize(
    "path", ["/axis-cgi/mjpg/video.cgi", "/mjpg/video.mjpg", "/mjpg/2/video.mjpg"]
)
async def test_mjpeg_response_is_camera_like_identity(
    fetch: Fetch, parts: Parts, path: str
) -> None:
    raw = await fetch(path + "?nbrofframes=3")
    assert raw.status_line == b"HTTP/1.1 200 OK"
    assert raw.closed
    assert raw.headers["content-type"] == "multipart/x-mixed-replace;boundary=myboundary"
    assert "content-length" not in raw.headers
    assert "transfer-encoding" not in raw.headers  # an identity body, ended by close
    assert raw.headers["connection"] == "close"
    assert raw.body.startswith(b"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: ")
    found = parts(raw.body)
    assert len(found) == 3
    for part in found:
        assert len(part.payload) == int(part.headers["content-length"])
        frame = decode_jpeg(part.payload)
        assert (frame.width, frame.height) == (320, 240)
        assert read_block_code(frame.to_ndarray(format="gray")) == comment(part.payload)


async def test_http_1_0_request_gets_http_1_0_identity(fetch: Fetch) -> None:
    raw = await fetch("/mjpg/video.mjpg?nbrofframes=1", version="1.0")
    assert raw.status_line == b"HTTP/1.0 200 OK"
    assert raw.closed
    assert "transfer-encoding" not in raw.headers


async def test_channels_and_resolution(fetch: Fetch, parts: Parts) -> None:
    for target in (
        "/mjpg/3/video.mjpg?nbrofframes=1&resolution=160x120",
        "/axis-cgi/mjpg/video.cgi?camera=3&nbrofframes=1&resolution=160x120",
    ):
        payload = parts((await fetch(target)).body)[0].payload
        frame = decode_jpeg(payload)
        assert (frame.width, frame.height) == (160, 120)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("camera=5", b"Error: camera must be 1..4, got '5'"),
        ("camera=0", b"Error: camera must be 1..4"),
        ("resolution=big", b"Error: resolution must be WIDTHxHEIGHT"),
        ("resolution=641x480", b"Error: resolution: must be even"),
        ("req_fps=5&des_fps=2", b"Error: req_fps and des_fps cannot be used at the same time"),
        ("req_fps=5&fps=2", b"Error: req_fps and des_fps"),
        ("fps=0", b"Error: fps must be a positive number"),
        ("nbrofframes=-1", b"Error: nbrofframes must be a non-negative integer"),
        ("duration=x", b"Error: duration must be"),
    ],
)
async def test_bad_parameters_are_400(fetch: Fetch, query: str, message: bytes) -> None:
    raw = await fetch("/axis-cgi/mjpg/video.cgi?" + query)
    assert raw.status == 400
    assert raw.headers["content-type"].startswith("text/plain")
    assert raw.body.startswith(message)


async def test_nbrofframes_exact_and_frames_consecutive(fetch: Fetch, parts: Parts) -> None:
    found = parts((await fetch("/axis-cgi/mjpg/video.cgi?nbrofframes=7")).body)
    numbers = [comment(p.payload)[0] for p in found]
    assert len(numbers) == 7
    assert numbers == list(range(numbers[0], numbers[0] + 7))


@pytest.mark.parametrize(("query", "expected"), [("", 25), ("des_fps=10", 10), ("req_fps=5", 5)])
async def test_rate_and_duration(fetch: Fetch, parts: Parts, query: str, expected: int) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    raw = await fetch(f"/axis-cgi/mjpg/video.cgi?duration=1&deltatime=1&{query}")
    elapsed = loop.time() - start
    assert raw.closed
    assert 0.9 < elapsed < 1.6
    found = parts(raw.body)
    assert abs(len(found) - expected) <= max(2, expected // 8)
    # Even spacing in capture time (X-Delta-Time: the schedule the frames were taken on,
    # which the COM stamps show only as late as the loop ran the tick): every gap within
    # one source interval of the target.
    gaps = [int(p.headers["x-delta-time"]) / 1e6 for p in found[1:]]
    assert all(abs(gap - 1 / expected) < 0.045 for gap in gaps), gaps


async def test_source_rate_30(raw: Fetch, parts: Parts) -> None:
    server = SimServer(SimOptions(fps=30, size=(160, 120)))
    await server.start()
    try:
        response = await raw(server.url, "/axis-cgi/mjpg/video.cgi?duration=1")
    finally:
        await server.stop()
    assert 27 <= len(parts(response.body)) <= 33


async def test_showlength_and_deltatime(fetch: Fetch, parts: Parts) -> None:
    hidden = parts((await fetch("/mjpg/video.mjpg?nbrofframes=2&showlength=0")).body)
    assert all("content-length" not in p.headers for p in hidden)
    shown = parts((await fetch("/mjpg/video.mjpg?nbrofframes=2&showlength=1")).body)
    assert all("content-length" in p.headers for p in shown)
    timed = parts((await fetch("/mjpg/video.mjpg?nbrofframes=4&deltatime=1&des_fps=5")).body)
    deltas = [int(p.headers["x-delta-time"]) for p in timed]
    assert deltas[0] == 0
    assert all(abs(d - 200_000) <= 40_000 for d in deltas[1:]), deltas


@pytest.mark.parametrize("path", ["/axis-cgi/jpg/image.cgi", "/jpg/image.jpg", "/jpg/4/image.jpg"])
async def test_snapshot(sim: SimServer, path: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(sim.url + path) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        body = await response.read()
        assert int(response.headers["Content-Length"]) == len(body)
    frame = decode_jpeg(body)
    assert read_block_code(frame.to_ndarray(format="gray")) == comment(body)


async def test_many_clients_share_one_encoded_frame(
    sim: SimServer, fetch: Fetch, parts: Parts
) -> None:
    results = await asyncio.gather(*(fetch("/mjpg/video.mjpg?nbrofframes=5") for _ in range(20)))
    payloads = {p.payload for r in results for p in parts(r.body)}
    # 20 clients x 5 frames, but the same bytes: they were encoded once.
    assert len(payloads) <= 8
    sources = sim.app[STATE].hub.sources
    assert len(sources) == 1


async def test_connections_count_live_streams_and_disconnect_frees(sim: SimServer) -> None:
    path = "/axis-cgi/mjpg/video.cgi"
    async with aiohttp.ClientSession() as session:
        async with session.get(sim.url + path) as response:
            await response.content.readexactly(1000)
            assert sim.connections[path] == 1
            async with session.get(sim.url + "/mjpg/video.mjpg") as other:
                await other.content.readexactly(10)
                assert sim.connections[path] == 1
                assert sim.connections["/mjpg/video.mjpg"] == 1
        for _ in range(60):
            if not sim.connections[path]:
                break
            await asyncio.sleep(0.05)
    assert sim.connections[path] == 0
    assert sim.requests[path] == 1
    assert sim.requests_total == 2


async def test_stop_ends_streams_promptly() -> None:
    server = SimServer(SimOptions(size=(160, 120)))
    await server.start()
    reader, writer = await asyncio.open_connection(*server.url[7:].split(":"))
    writer.write(b"GET /mjpg/video.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readexactly(500)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await server.stop()
    assert loop.time() - start < 1.5
    rest = await asyncio.wait_for(reader.read(), 2)
    assert isinstance(rest, bytes)
    writer.close()
    leftover = [t for t in asyncio.all_tasks() if t.get_name().startswith("sim-")]
    assert leftover == []
