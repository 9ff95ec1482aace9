"""MPEG-2 fan-out under load: a throttled reader with maxlag, 100 clients on one upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.app import CAMERAS
from gateway.publish.axis import MPEG2_SOURCES, AxisSettings
from tests.app.stream_client import (
    SEQUENCE_HEADER,
    api_camera,
    decode_mpeg2,
    open_raw,
    open_stream,
    read_body,
    streams_toml,
    until,
    whole_pictures,
)
from tests.publish.axis_client import Gateway, gateway

GOP_NS = 16 * 1_000_000_000 // 25
UPSTREAM = "/axis-cgi/mpeg2/video.cgi"


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async with gateway(streams_toml(), AxisSettings(write_deadline=5.0)) as running:
        ring = running.app[MPEG2_SOURCES]["cam"].ring
        await until(lambda: ring.newest_cut is not None)
        yield running


async def test_throttled_reader_stays_within_maxlag_and_decodes_across_cuts(gw: Gateway) -> None:
    ring = gw.app[MPEG2_SOURCES]["cam"].ring
    loop = asyncio.get_running_loop()
    sock, client = await open_raw(gw.port, "/axis-cgi/mpeg2/video.cgi?maxlag=1000")
    assert client.status == 200
    lags: list[int] = []
    try:
        await until(lambda: len(ring) == 1)
        (cursor,) = ring
        # Below the stream's rate (~125 kB/s): it falls behind all the time.
        for _ in range(120):
            data = await loop.sock_recv(sock, 4096)
            assert data
            client.body += data
            lags.append(cursor.lag_ns)
            await asyncio.sleep(0.05)
        camera = await api_camera(gw)
    finally:
        sock.close()
    (entry,) = [c for c in camera["clients"] if c["kind"] == "mpeg2"]
    assert entry["maxlag_ms"] == 1000
    assert entry["cuts"] >= 2, entry
    assert entry["dropped_bytes"] > 0
    # Bytes in the kernel cannot be recalled: the lag may pass maxlag by about a GOP.
    assert max(lags) <= 1_000_000_000 + GOP_NS + 200_000_000, max(lags)
    body = bytes(client.body)
    assert body.startswith(SEQUENCE_HEADER)
    # Each cut resumes at a sequence header, and everything received decodes.
    assert body.count(SEQUENCE_HEADER) >= entry["cuts"] + 1
    pictures, errors, logs = decode_mpeg2(whole_pictures(body))
    assert (errors, logs) == (0, [])
    assert pictures > 0


async def test_unlimited_reader_is_bounded_by_client_buffer_bytes() -> None:
    limits = "[limits]\nclient_buffer_bytes = 200000\n"
    async with gateway(limits + streams_toml(), AxisSettings(write_deadline=5.0)) as gw:
        ring = gw.app[MPEG2_SOURCES]["cam"].ring
        await until(lambda: ring.newest_cut is not None)
        sock, client = await open_raw(gw.port, "/axis-cgi/mpeg2/video.cgi")
        try:
            await until(lambda: len(ring) == 1)
            (cursor,) = ring
            # It reads nothing: the backlog (kernel queue) passes 200 kB after ~2 s.
            await until(lambda: cursor.cuts >= 1, within=4.0)
            assert cursor.maxlag_ns is None
            sock.setblocking(True)
            sock.settimeout(5.0)
            while len(client.body) < 100_000:
                client.body += sock.recv(65536)
        finally:
            sock.close()
        body = bytes(client.body)
        assert body.startswith(SEQUENCE_HEADER)
        assert body.count(SEQUENCE_HEADER) >= 2, "it resumed at a cut point"


async def test_stalled_reader_is_closed_after_the_write_deadline() -> None:
    async with gateway(streams_toml(), AxisSettings(write_deadline=1.0)) as gw:
        ring = gw.app[MPEG2_SOURCES]["cam"].ring
        await until(lambda: ring.newest_cut is not None)
        sock, _ = await open_raw(gw.port, "/axis-cgi/mpeg2/video.cgi")
        try:
            await until(lambda: len(ring) == 1)
            # It never reads: the gateway drops it once nothing moved for the deadline.
            await until(lambda: len(ring) == 0, within=10.0)
        finally:
            sock.close()


async def test_hundred_clients_share_one_upstream(gw: Gateway) -> None:
    sim = gw.app[CAMERAS]["cam"].sim
    assert sim is not None
    ring = gw.app[MPEG2_SOURCES]["cam"].ring
    opened = await asyncio.gather(
        *(open_stream(gw.port, "/axis-cgi/mpeg2/video.cgi?duration=2") for _ in range(100))
    )
    try:
        assert all(client.status == 200 for _, _, client in opened)
        assert len(ring) == 100
        assert sim.connections[UPSTREAM] == 1
        await asyncio.gather(*(read_body(r, c, seconds=10) for r, _, c in opened))
    finally:
        for _, writer, _ in opened:
            writer.close()
    bodies = [bytes(client.body) for _, _, client in opened]
    assert all(client.eof for _, _, client in opened)
    assert all(body.startswith(SEQUENCE_HEADER) for body in bodies)
    assert min(len(b) for b in bodies) > 100_000
    for body in bodies[:: 100 // 4]:
        pictures, errors, logs = decode_mpeg2(body)
        assert (errors, logs) == (0, [])
        assert pictures >= 40
    assert sim.connections[UPSTREAM] == 1
    await until(lambda: len(ring) == 0)
