"""``gateway serve`` as a subprocess (optionally under a lowered open-file limit) for tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.server.raw import exchange, get

#: Runs the command line with RLIMIT_NOFILE set first (soft = hard: the gateway cannot
#: raise it), as systemd's default of 1,024 would.
LIMITED = (
    "import resource, sys\n"
    "n = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))\n"
    "from gateway.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def free_port() -> int:
    """Return a loopback port nobody listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def camera_config(port: int, server: str = "", camera: str = "") -> str:
    """Return a config: ``[server]`` on ``port`` plus ``server`` lines, one small sim camera."""
    return (
        f'[server]\nlisten = "127.0.0.1:{port}"\n{server}\n'
        '[[cameras]]\nname = "cam"\nsource = "sim"\nmjpeg = true\nmpeg2 = false\n'
        f'audio = false\nfps = 25\nresolution = "320x240"\n{camera}'
    )


@dataclass
class GatewayProcess:
    """A running ``gateway serve`` and what it wrote to stderr."""

    process: asyncio.subprocess.Process
    port: int
    lines: list[str] = field(default_factory=list)
    returncode: int | None = None

    @property
    def text(self) -> str:
        """Return stderr so far."""
        return "\n".join(self.lines)

    def open_descriptors(self) -> int:
        """Return how many descriptors the gateway holds (Linux /proc)."""
        return len(list(Path(f"/proc/{self.process.pid}/fd").iterdir()))

    async def line(self, pattern: str, within: float = 30.0) -> str:
        """Wait for a stderr line matching ``pattern``; return it."""
        deadline = time.monotonic() + within
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in self.lines:
                if regex.search(line):
                    return line
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n{self.text}")

    async def live(self, within: float = 30.0) -> None:
        """Wait until ``/healthz`` answers and the camera is live."""
        await self.line(r"serving on ", within)
        await self.line(r"camera cam mjpeg: live", within)
        reply = await exchange(self.port, get("/healthz"))
        assert reply.status == 200, reply.data


async def _collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while line := await stream.readline():
        lines.append(line.decode(errors="replace").rstrip("\n"))


@asynccontextmanager
async def gateway_process(
    config: str, tmp_path: Path, *, nofile: int | None = None
) -> AsyncIterator[GatewayProcess]:
    """Run ``gateway serve --config`` on ``config``; SIGINT it at exit (``returncode`` set)."""
    path = tmp_path / "gateway.toml"
    path.write_text(config)
    port = int(re.search(r"127\.0\.0\.1:(\d+)", config)[1])  # type: ignore[index]
    command = ["serve", "--config", str(path)]
    if nofile is None:
        argv = [sys.executable, "-m", "gateway", *command]
    else:
        argv = [sys.executable, "-c", LIMITED, str(nofile), *command]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    gw = GatewayProcess(process, port)
    reader = asyncio.ensure_future(_collect(process.stderr, gw.lines))
    try:
        yield gw
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        try:
            gw.returncode = await asyncio.wait_for(process.wait(), 30.0)
        except TimeoutError:
            process.kill()
            gw.returncode = await process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, 5.0)
        reader.cancel()
