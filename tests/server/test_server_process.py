"""``gateway serve`` as a user runs it: a busy port, bad requests, the Server header."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.process import camera_config, free_port, gateway_process
from tests.server.raw import exchange, get
from tests.server.test_server_serving import BAD_INPUTS


def serve(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_busy_port_is_one_line_and_no_camera_is_contacted(tmp_path: Path) -> None:
    with socket.socket() as busy, socket.socket() as camera:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        camera.bind(("127.0.0.1", 0))
        camera.listen()
        camera.setblocking(False)
        config = tmp_path / "g.toml"
        config.write_text(
            f'[server]\nlisten = "127.0.0.1:{port}"\n[[cameras]]\nname = "front"\n'
            f'source = "http://127.0.0.1:{camera.getsockname()[1]}"\n'
        )
        done = serve(["--config", str(config)])
        with pytest.raises(BlockingIOError):
            camera.accept()  # the gateway never connected to the camera
    assert done.returncode == 2
    line = f"gateway: error: cannot listen on 127.0.0.1:{port}: address already in use\n"
    assert done.stderr == line


def test_a_busy_port_starts_no_simulator_either() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = serve(["--listen", f"127.0.0.1:{port}"])
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"gateway: error: cannot listen on 127.0.0.1:{port}: address already in use"
    ]


def test_an_unknown_host_is_one_line_after_the_no_users_warning() -> None:
    done = serve(["--listen", "no-such-host.invalid:8080"])
    assert done.returncode == 2
    warning, line = done.stderr.splitlines()
    assert "without [[users]]: only loopback clients are admitted" in warning
    assert line.startswith("gateway: error: cannot listen on no-such-host.invalid:8080: ")


async def test_seventeen_bad_requests_cost_six_lines_and_no_traceback(tmp_path: Path) -> None:
    port = free_port()
    async with gateway_process(camera_config(port), tmp_path) as gw:
        await gw.live()
        served = len(gw.lines)
        for data in (BAD_INPUTS * 2)[:17]:
            reply = await exchange(port, data)
            assert reply.status == 400
            assert reply.header("Server") == "gateway"
            assert b"MARKER" not in reply.data
        for path, status in (("/healthz", 200), ("/api/cameras", 200), ("/nowhere", 404)):
            reply = await exchange(port, get(path))
            assert (reply.status, reply.header("Server")) == (status, "gateway")
        await gw.line(r"12 more bad requests in \d+ s: ", within=15.0)
    lines = gw.lines[served:]
    assert gw.returncode == 0
    assert "Traceback" not in gw.text
    assert "MARKER" not in gw.text
    bad = [line for line in lines if "bad request" in line]
    assert len(bad) == 6, "\n".join(lines)
    one_each = [line for line in lines if "gateway.server: bad request from 127.0.0.1: " in line]
    assert len(one_each) == 5
    # Nothing else but the shutdown line.
    assert [line for line in lines if line not in bad] == [lines[-1]]
    assert lines[-1].endswith("shutting down")
