"""Axis audio endpoints over real sockets: framing, byte identity, getparam, level, load."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.app import CAMERAS
from gateway.publish.axis import AUDIO_SOURCES, AudioSource
from tests.app.stream_client import (
    api_camera,
    fetch,
    open_raw,
    open_stream,
    read_body,
    streams_toml,
    until,
)
from tests.publish.axis_client import Gateway, camera_toml, gateway

RECEIVE = "/axis-cgi/audio/receive.cgi"
GETPARAM = "/axis-cgi/audio/getparam.cgi"
PLAIN = camera_toml("plain", extra="mpeg2 = false\naudio = false\n")
#: One part as §5.5.2 shows it (the simulator's parts are 512 G.726 samples: 256 bytes).
PART = re.compile(rb"--myboundary\r\nContent-Type: audio/32KADPCM\r\n\r\n(.{256})\r\n", re.DOTALL)


def source(gw: Gateway, name: str = "cam") -> AudioSource:
    """Return the camera's audio source."""
    return gw.app[AUDIO_SOURCES][name]


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async with gateway(streams_toml() + PLAIN) as running:
        ring = source(running).ring
        await until(lambda: ring.frames_published >= 3)
        yield running


def parts(body: bytes) -> list[bytes]:
    """Return the payloads of the whole parts at the start of ``body``; assert the framing."""
    out = []
    at = 0
    while match := PART.match(body, at):
        out.append(match[1])
        at = match.end()
    # Whatever follows the last whole part is the beginning of the next one.
    assert b"--myboundary\r\nContent-Type: audio/32KADPCM\r\n\r\n".startswith(body[at : at + 48])
    return out


async def test_receive_head_and_parts(gw: Gateway) -> None:
    reader, writer, client = await open_stream(gw.port, RECEIVE)
    try:
        await read_body(reader, client, seconds=1.0)
    finally:
        writer.close()
    assert client.status == 200
    assert client.head["content-type"] == "multipart/x-mixed-replace;boundary=myboundary"
    assert "transfer-encoding" not in client.head
    assert "content-length" not in client.head
    received = parts(bytes(client.body))
    # 64 ms parts: about 15 in a second, starting at once with the newest one.
    assert 12 <= len(received) <= 20
    assert b"Content-Length" not in client.body


async def test_audio_bytes_are_the_cameras(gw: Gateway) -> None:
    sim = gw.app[CAMERAS]["cam"].sim
    assert sim is not None
    port = int(sim.url.rsplit(":", 1)[1])
    direct = asyncio.ensure_future(fetch(port, RECEIVE, seconds=2.0))
    await asyncio.sleep(0.3)
    relayed = await fetch(gw.port, RECEIVE, seconds=1.2)
    camera = await direct
    assert camera.head["content-type"] == relayed.head["content-type"]
    body = bytes(relayed.body)
    body = body[: body.rfind(b"\r\n--myboundary\r\n") + 2]
    assert len(parts(body)) >= 10
    # The simulator serves one tone to every connection: what the gateway relays is a
    # stretch of what the camera sent, byte for byte, framing included.
    assert body in bytes(camera.body)


async def test_getparam_lines_and_live_client_count(gw: Gateway) -> None:
    async def getparam() -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(gw.base + GETPARAM) as response,
        ):
            assert response.status == 200
            assert response.content_type == "text/plain"
            return await response.text()

    assert await getparam() == (
        "root.Audioc.duplexMode=get\r\n"
        "root.Audioc.maxNumberOfClients=500\r\n"
        "root.Audioc.forwardOnPost=no\r\n"
        "root.Audioc.buttonMode=push\r\n"
        "root.Audioc.clientBufferSize=4000000\r\n"
        "root.Audioc.connectedClients=0\r\n"
        "root.Audioc.connectedPostClients=0\r\n"
        "\r\n"
    )
    opened = [await open_stream(gw.port, RECEIVE) for _ in range(3)]
    assert "root.Audioc.connectedClients=3\r\n" in await getparam()
    for _, writer, _ in opened:
        writer.close()
    await until(lambda: len(source(gw).ring) == 0)
    assert "root.Audioc.connectedClients=0\r\n" in await getparam()


async def test_decoded_level_and_counters_in_api(gw: Gateway) -> None:
    # The simulator's tone is a sine at 0.4 of full scale: 20*log10(0.4/sqrt(2)) = -10.97.
    await until(lambda: gw.pcm().decoder.counters.blocks_out >= 10)
    camera = await api_camera(gw)
    audio = camera["streams"]["audio"]
    assert audio["level_dbfs"] == pytest.approx(-10.97, abs=1.0)
    assert audio["decoder_codec"] == "g726"
    decoder = audio["decoder"]
    assert decoder["blocks_out"] >= 10
    assert decoder["decode_errors"] == 0
    assert decoder["samples_out"] == 512 * decoder["blocks_out"]


async def test_audio_clients_in_api_and_maxlag_cut(gw: Gateway) -> None:
    # 4 kB/s of audio: a client that stops reading with maxlag=500 is cut forward.
    sock, client = await open_raw(gw.port, RECEIVE + "?maxlag=100")
    try:
        await until(lambda: len(source(gw).ring) == 1)
        (cursor,) = source(gw).ring
        assert cursor.maxlag_ns == 500_000_000
        await until(lambda: cursor.cuts >= 1, within=15.0)
        camera = await api_camera(gw)
        (entry,) = [c for c in camera["clients"] if c["kind"] == "audio"]
        assert entry["maxlag_ms"] == 500
        assert entry["cuts"] >= 1
        for key in ("remote", "lag_ms", "delivered", "bytes", "kernel_queued_bytes"):
            assert key in entry
        loop = asyncio.get_running_loop()
        while len(client.body) < 20_000:
            client.body += await loop.sock_recv(sock, 65536)
    finally:
        sock.close()
    # Cut at part boundaries: the stream is whole parts, nothing torn.
    assert len(parts(bytes(client.body))) >= 20_000 // 304


async def test_hundred_audio_clients_share_one_upstream(gw: Gateway) -> None:
    sim = gw.app[CAMERAS]["cam"].sim
    assert sim is not None
    opened = await asyncio.gather(*(open_stream(gw.port, RECEIVE) for _ in range(100)))
    try:
        assert all(client.status == 200 for _, _, client in opened)
        assert len(source(gw).ring) == 100
        assert sim.connections[RECEIVE] == 1
        await asyncio.gather(*(read_body(r, c, seconds=1.5) for r, _, c in opened))
    finally:
        for _, writer, _ in opened:
            writer.close()
    counts = [len(parts(bytes(client.body))) for _, _, client in opened]
    assert min(counts) >= 15, counts
    assert sim.connections[RECEIVE] == 1
    await until(lambda: len(source(gw).ring) == 0)


async def test_errors(gw: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{gw.base}{RECEIVE}?maxlag=abc") as response:
            assert response.status == 400
            assert response.content_type == "text/plain"
            expected = "Error: maxlag must be an integer from 0 to 10000000000, got 'abc'\n"
            assert await response.text() == expected
        for path in (RECEIVE, GETPARAM):
            async with session.get(gw.base + path, params={"camera": "x"}) as response:
                assert response.status == 404
                assert await response.text() == "Error: no camera 'x'\n"
            async with session.get(gw.base + path, params={"camera": "2"}) as response:
                assert response.status == 404
                assert await response.text() == "Error: camera plain has no audio stream\n"
    assert len(source(gw).ring) == 0
