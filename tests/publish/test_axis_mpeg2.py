"""Axis MPEG-2 endpoints over real sockets: headers, decoding, prebuffer, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.app import CAMERAS
from gateway.publish.axis import MPEG2_SOURCES, Mpeg2Source
from tests.app.stream_client import (
    PICTURE_START,
    SEQUENCE_HEADER,
    api_camera,
    decode_mpeg2,
    fetch,
    streams_toml,
    until,
    whole_pictures,
)
from tests.publish.axis_client import Gateway, camera_toml, gateway

#: Seconds of MPEG-2 the test camera keeps (the simulator's GOP is 16 pictures, 0.64 s).
PREBUFFER = 2.0
GOP_S = 16 / 25
VIDEO = "/axis-cgi/mpeg2/video.cgi"
PLAIN = camera_toml("plain", extra="mpeg2 = false\naudio = false\n")
CAMERAS_TOML = streams_toml(prebuffer=PREBUFFER) + PLAIN


def source(gw: Gateway, name: str = "cam") -> Mpeg2Source:
    """Return the camera's MPEG-2 source."""
    return gw.app[MPEG2_SOURCES][name]


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async with gateway(CAMERAS_TOML) as running:
        ring = source(running).ring
        await until(lambda: ring.newest_cut is not None)
        yield running


@pytest.fixture
async def full(gw: Gateway) -> Gateway:
    """The gateway once its prebuffer holds all it can (oldest GOPs evicted)."""
    ring = source(gw).ring
    await until(lambda: ring.evicted_frames > 0)
    return gw


async def test_video_cgi_head_and_body_decode(gw: Gateway) -> None:
    client = await fetch(gw.port, "/axis-cgi/mpeg2/video.cgi?duration=1")
    assert client.status == 200
    assert client.head["content-type"] == "video/mpeg"
    assert client.head["connection"] == "close"
    assert "transfer-encoding" not in client.head
    assert "content-length" not in client.head
    assert "x-prebuffer-length" not in client.head
    assert client.eof, "duration ends the response by closing the connection"
    body = bytes(client.body)
    assert body.startswith(SEQUENCE_HEADER), "a client starts at a cut point"
    pictures, errors, logs = decode_mpeg2(body)
    assert (errors, logs) == (0, [])
    # One second live from the newest cut point (up to a GOP old) at 25 fps.
    assert 20 <= pictures <= 25 + 16 + 3
    assert pictures == body.count(PICTURE_START)


async def test_buffer_cgi_prebuffer_0_below_and_above_what_is_held(full: Gateway) -> None:
    ring = source(full).ring
    held = ring.held_ns / 1e9
    asked = [0, 1, 5, 100]
    clients = await asyncio.gather(
        *(fetch(full.port, f"/axis-cgi/mpeg2/buffer.cgi?prebuffer={p}&duration=1") for p in asked)
    )
    for prebuffer, client in zip(asked, clients, strict=True):
        assert client.status == 200
        assert client.head["content-type"] == "video/mpeg"
        text = client.head["x-prebuffer-length"]
        provided = float(text)
        if prebuffer == 0:
            assert text == "0.0"
        # The cut point nearest the time asked, clamped to what is held; never more.
        assert provided <= held + 0.1, (prebuffer, provided, held)
        assert abs(provided - min(prebuffer, held)) <= GOP_S / 2 + 0.1, (prebuffer, provided)
        if prebuffer >= 5:
            assert provided >= PREBUFFER - GOP_S - 0.1
        body = bytes(client.body)
        assert body.startswith(SEQUENCE_HEADER)
        pictures, errors, logs = decode_mpeg2(whole_pictures(body))
        assert (errors, logs) == (0, []), prebuffer
        # The prebuffer's pictures plus about a second live.
        assert pictures >= int((provided + 0.9) * 25) - 3, (prebuffer, provided, pictures)


async def test_prebuffer_before_anything_is_held() -> None:
    toml = streams_toml() + PLAIN
    async with gateway(toml) as gw:
        # The very first request may come before the first GOP: it waits for it.
        client = await fetch(gw.port, "/axis-cgi/mpeg2/buffer.cgi?prebuffer=3&duration=1")
        assert client.status == 200
        assert float(client.head["x-prebuffer-length"]) <= source(gw).ring.held_ns / 1e9
        assert bytes(client.body).startswith(SEQUENCE_HEADER)


INVALID = [
    ("maxlag=abc", "maxlag must be an integer from 0 to 10000000000, got 'abc'"),
    ("maxlag=-1", "maxlag must be an integer from 0 to 10000000000, got '-1'"),
    ("duration=1e9", "duration must be an integer from 0 to 10000000, got '1e9'"),
    ("duration=1000000000", "duration must be an integer from 0 to 10000000, got '1000000000'"),
    ("duration=x", "duration must be an integer from 0 to 10000000, got 'x'"),
]
BUFFER_INVALID = [
    ("prebuffer=-1", "prebuffer must be an integer from 0 to 10000000, got '-1'"),
    ("prebuffer=2.5", "prebuffer must be an integer from 0 to 10000000, got '2.5'"),
]


async def test_bad_parameters_are_400_with_a_reason(gw: Gateway) -> None:
    cases = [("video.cgi", q, r) for q, r in INVALID]
    cases += [("buffer.cgi", q, r) for q, r in INVALID + BUFFER_INVALID]
    async with aiohttp.ClientSession() as session:
        for path, query, reason in cases:
            async with session.get(f"{gw.base}/axis-cgi/mpeg2/{path}?{query}") as response:
                assert response.status == 400, (path, query)
                assert response.content_type == "text/plain"
                assert await response.text() == f"Error: {reason}\n"
    assert len(source(gw).ring) == 0


async def test_unknown_camera_and_camera_without_mpeg2_are_404(gw: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("video.cgi", "buffer.cgi"):
            url = f"{gw.base}/axis-cgi/mpeg2/{path}"
            async with session.get(url, params={"camera": "9"}) as response:
                assert response.status == 404
                assert await response.text() == "Error: no camera '9'\n"
            for key in ("plain", "2"):
                async with session.get(url, params={"camera": key}) as response:
                    assert response.status == 404
                    assert await response.text() == "Error: camera plain has no MPEG-2 stream\n"


async def test_camera_selection_and_ignored_parameters(gw: Gateway) -> None:
    queries = ("camera=1", "camera=cam", "foo=bar&duration=1", "maxlag=100")
    clients = await asyncio.gather(
        *(fetch(gw.port, f"/axis-cgi/mpeg2/video.cgi?duration=1&{q}") for q in queries)
    )
    for query, client in zip(queries, clients, strict=True):
        assert client.status == 200, query
        assert bytes(client.body).startswith(SEQUENCE_HEADER)


async def test_api_shows_prebuffer_and_mpeg2_clients(gw: Gateway) -> None:
    full = gw
    task = asyncio.ensure_future(
        fetch(full.port, "/axis-cgi/mpeg2/video.cgi?duration=2&maxlag=700")
    )
    await until(lambda: len(source(full).ring) == 1)
    await asyncio.sleep(0.5)
    camera = await api_camera(full)
    mpeg2 = camera["streams"]["mpeg2"]
    assert 0 < mpeg2["prebuffer_seconds"] <= PREBUFFER
    assert mpeg2["prebuffer_bytes"] > 0
    assert mpeg2["prebuffer_limit_seconds"] == PREBUFFER
    clients = [c for c in camera["clients"] if c["kind"] == "mpeg2"]
    assert len(clients) == 1
    entry = clients[0]
    assert entry["maxlag_ms"] == 700
    assert entry["delivered"] > 0
    assert entry["bytes"] > 0
    for key in ("remote", "lag_ms", "cuts", "kernel_queued_bytes", "buffered_bytes"):
        assert key in entry
    await task
    await until(lambda: len(source(full).ring) == 0)
    assert full.app[CAMERAS]["cam"].media.mpeg2 is source(full).ring


async def test_full_camera_is_503_with_a_reason() -> None:
    toml = "[limits]\nmax_clients_per_camera = 2\n" + streams_toml()
    async with gateway(toml) as gw:
        ring = source(gw).ring
        await until(lambda: ring.newest_cut is not None)
        first = [asyncio.ensure_future(fetch(gw.port, VIDEO + "?duration=2")) for _ in range(2)]
        await until(lambda: len(ring) == 2)
        async with aiohttp.ClientSession() as session, session.get(gw.base + VIDEO) as response:
            assert response.status == 503
            assert await response.text() == "Error: camera cam has 2 MPEG-2 clients already\n"
        assert all(client.status == 200 for client in await asyncio.gather(*first))
