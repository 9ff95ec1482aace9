"""Backpressure: a 1 byte/s client among 50 normal ones; maxlag cuts."""

from __future__ import annotations

import asyncio
import socket
import statistics

from gateway.publish.axis import AxisSettings

from .axis_client import Gateway, camera_toml, gateway, log_source, mjpeg

DEADLINE = 3.0


async def _slow_reader(gw: Gateway, target: str, stop: asyncio.Event) -> str:
    """Read one byte per second until the gateway closes the connection."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", gw.port))
        await loop.sock_sendall(sock, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        while not stop.is_set():
            try:
                data = await loop.sock_recv(sock, 1)
            except ConnectionResetError:
                return "reset"
            if not data:
                return "eof"
            await asyncio.sleep(1.0)
        return "still open"
    finally:
        sock.close()


async def _watch_slow(gw: Gateway, held: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for entry in gw.fanout().clients():
            if entry["target_fps"] == 1000:
                held.append(int(entry.get("frames_held", 0)))  # type: ignore[call-overload]
        await asyncio.sleep(0.2)


async def test_slow_client_is_isolated_bounded_and_closed_at_the_deadline() -> None:
    async with gateway(camera_toml(), AxisSettings(write_deadline=DEADLINE)) as gw:
        await gw.live()
        source = log_source(gw)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        held: list[int] = []
        started = loop.time()
        slow = asyncio.ensure_future(_slow_reader(gw, "/mjpg/video.mjpg?des_fps=1000", stop))
        watcher = asyncio.ensure_future(_watch_slow(gw, held, stop))
        until = loop.time() + 7.0
        normal = await asyncio.gather(
            *(
                mjpeg(gw.port, "/mjpg/video.mjpg", until=until, keep_payload=False)
                for _ in range(50)
            )
        )
        closed_after = None
        if slow.done():
            closed_after = loop.time() - started
        stop.set()
        result = await slow
        await watcher
        # The slow client is gone from the hub at the deadline, whatever its socket says.
        assert gw.fanout().client_count() == 0
        assert result in {"reset", "eof"} or closed_after is None
        for client in normal:
            parts = [p for p in client.parts if p.arrived >= client.parts[0].arrived + 1.0]
            numbers = [p.sim[0] for p in parts]
            # No skips: every frame the camera sent, so its full rate (in camera time,
            # not 25 fps: a loaded machine's simulator skips the ticks it is late for).
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
            # Not held back: each frame reaches the client a steady time after it reached
            # the gateway (delivery latency, so the camera's own jitter does not count).
            latency_ms = [
                (p.arrived * 1e9 - source.received_ns(n)) / 1e6
                for p, n in zip(parts, numbers, strict=True)
            ]
            assert statistics.pstdev(latency_ms) < 25, statistics.pstdev(latency_ms)
        assert held
        assert max(held) <= 2


async def test_slow_client_leaves_the_api_at_the_deadline() -> None:
    async with gateway(camera_toml(), AxisSettings(write_deadline=DEADLINE)) as gw:
        await gw.live()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        started = loop.time()
        slow = asyncio.ensure_future(_slow_reader(gw, "/mjpg/video.mjpg", stop))
        while gw.fanout().client_count() == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        while gw.fanout().client_count() and loop.time() - started < DEADLINE + 5:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        gone_after = loop.time() - started
        stop.set()
        await slow
        assert DEADLINE - 0.5 <= gone_after <= DEADLINE + 1.5, gone_after


async def test_maxlag_cuts_instead_of_queueing() -> None:
    async with gateway(camera_toml(), AxisSettings(write_deadline=20.0)) as gw:
        await gw.live()
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", gw.port))
            await loop.sock_sendall(
                sock, b"GET /mjpg/video.mjpg?maxlag=100 HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            await asyncio.sleep(2.0)  # not reading: the kernel queue fills, lag grows
            (entry,) = gw.fanout().clients()
            assert entry["cuts"] == 1
            assert int(entry["lag_ms"]) >= 500  # type: ignore[call-overload]
            assert int(entry["frames_held"]) <= 2  # type: ignore[call-overload]
            received = 0
            while received < 3_000_000:  # drain what the kernel holds, then keep reading
                data = await loop.sock_recv(sock, 65536)
                assert data
                received += len(data)
            (entry,) = gw.fanout().clients()
            assert int(entry["lag_ms"]) < 500  # type: ignore[call-overload]
            assert int(entry["skipped"]) > 0  # type: ignore[call-overload]
        finally:
            sock.close()
