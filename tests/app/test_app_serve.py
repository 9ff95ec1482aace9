"""The gateway application end to end on loopback: simulator -> ingest -> /api."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import default_config_text, parse_config
from gateway.sim import SimOptions, SimServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def wait_for(
    session: aiohttp.ClientSession, url: str, predicate: Any, within: float = 15.0
) -> Any:
    deadline = time.monotonic() + within
    while True:
        body = await get_json(session, url)
        if predicate(body) or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.2)


@pytest.fixture
async def demo() -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    runner, base = await start(create_app(parse_config(default_config_text(), {})))
    async with aiohttp.ClientSession() as session:
        yield session, base
    await runner.cleanup()


async def test_demo_camera_goes_live_at_25_fps(
    demo: tuple[aiohttp.ClientSession, str],
) -> None:
    session, base = demo
    assert (await get_json(session, base + "/healthz"))["status"] == "ok"

    def settled(body: Any) -> bool:
        streams = body["cameras"][0]["streams"]
        return all(s["state"] == "live" for s in streams.values()) and (
            streams["mjpeg"]["frames_in"] >= 60
        )

    body = await wait_for(session, base + "/api/cameras", settled)
    (camera,) = body["cameras"]
    assert (camera["name"], camera["index"], camera["source"]) == ("demo", 1, "sim")
    assert set(camera["streams"]) == {"mjpeg", "mpeg2", "audio"}
    mjpeg = camera["streams"]["mjpeg"]
    assert mjpeg["state"] == "live"
    assert 22.0 <= mjpeg["fps_in"] <= 28.0
    assert mjpeg["bytes_in"] > 0
    assert mjpeg["frames_dropped"] == 0
    assert mjpeg["last_error"] is None
    for key in ("reconnects", "frames_in", "frames_dropped", "bytes_in", "fps_in"):
        assert key in camera["streams"]["audio"]
    assert camera["clients"] == []
    by_index = await get_json(session, base + "/api/cameras/1")
    by_name = await get_json(session, base + "/api/cameras/demo")
    assert by_index["name"] == by_name["name"] == "demo"
    assert set(by_index) == set(camera)


async def test_unknown_camera_is_404(demo: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = demo
    async with session.get(base + "/api/cameras/nope") as response:
        assert response.status == 404
        assert (await response.text()).startswith("Error: no camera 'nope'")


async def test_wrong_password_clear_state_one_log_line_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cret-Pa55"
    sim = SimServer(SimOptions(auth="digest", user=("root", "right-password")))
    await sim.start("127.0.0.1", 0)
    text = (
        f'[[cameras]]\nname = "lobby"\nsource = "{sim.url}"\nusername = "root"\n'
        'password = "${CAM_PW}"\nstall_timeout = 2.0\n'
    )
    config = parse_config(text, {"CAM_PW": secret})
    caplog.set_level(logging.DEBUG)
    runner, base = await start(create_app(config))
    try:
        async with aiohttp.ClientSession() as session:
            body = await wait_for(
                session,
                base + "/api/cameras",
                lambda b: b["cameras"][0]["streams"]["mjpeg"]["last_error"] is not None,
            )
            await asyncio.sleep(2.0)  # long enough for a tight loop to show itself
            body = await get_json(session, base + "/api/cameras")
            raw = json.dumps(body)
    finally:
        await runner.cleanup()
        await sim.stop()
    stream = body["cameras"][0]["streams"]["mjpeg"]
    assert stream["state"] in ("backoff", "failed")
    assert "401" in stream["last_error"]
    assert secret not in raw
    assert secret not in caplog.text
    auth_lines = [
        r for r in caplog.records if r.levelno >= logging.WARNING and "401" in r.getMessage()
    ]
    assert len(auth_lines) == 1, [r.getMessage() for r in auth_lines]
    assert sim.requests_total <= 3  # backed off, not hammering the camera's account


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_users_require_basic_auth() -> None:
    text = (
        '[[users]]\nname = "op"\npassword = "pw"\n'
        '[[cameras]]\nname = "c"\nsource = "sim"\nmpeg2 = false\naudio = false\n'
    )
    runner, base = await start(create_app(parse_config(text, {})))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/api/cameras") as response:
                assert response.status == 401
                assert "Basic" in response.headers["WWW-Authenticate"]
            bad = {"Authorization": _basic("op", "nope")}
            async with session.get(base + "/api/cameras", headers=bad) as response:
                assert response.status == 401
            good = {"Authorization": _basic("op", "pw")}
            async with session.get(base + "/api/cameras", headers=good) as response:
                assert response.status == 200
            async with session.get(base + "/healthz") as response:
                assert response.status == 200
    finally:
        await runner.cleanup()


def test_gateway_serve_command_runs_the_demo() -> None:
    """The README's first command, as a user runs it: the demo camera goes live."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        body = asyncio.run(_poll_live(f"http://127.0.0.1:{port}"))
        assert body["cameras"][0]["streams"]["mjpeg"]["state"] == "live"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"serving on http://127.0.0.1:{port}/" in err
    assert err.rstrip().endswith("shutting down")
    assert "Traceback" not in err


async def _poll_live(base: str) -> Any:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                body = await get_json(session, base + "/api/cameras")
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.2)
                continue
            if body["cameras"][0]["streams"]["mjpeg"]["state"] == "live":
                return body
            await asyncio.sleep(0.2)
    raise AssertionError("demo camera never went live")


async def test_metrics_expose_ingest_state(demo: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = demo
    await wait_for(
        session,
        base + "/api/cameras",
        lambda b: b["cameras"][0]["streams"]["mjpeg"]["frames_in"] > 5,
    )
    async with session.get(base + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'gateway_stream_state{camera="demo",state="live",stream="mjpeg"} 1.0' in text
    frames = [
        line
        for line in text.splitlines()
        if line.startswith('gateway_stream_frames_in_total{camera="demo",stream="mjpeg"}')
    ]
    assert len(frames) == 1
    assert float(frames[0].split()[-1]) > 5
