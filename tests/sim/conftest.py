"""Fixtures for the simulator tests: a running simulator and a raw-socket HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from gateway.sim import SimOptions, SimServer


@dataclass
class Raw:
    """A response read off a raw socket, unparsed beyond the head."""

    status_line: bytes
    headers: dict[str, str]
    body: bytes
    #: True when the server closed the connection (False: we stopped reading on a timeout).
    closed: bool

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])


Fetch = Callable[..., Awaitable[Raw]]


async def raw_get(
    url: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    version: str = "1.1",
    within: float = 5.0,
    max_bytes: int | None = None,
) -> Raw:
    """GET target and read until the server closes, within seconds pass or max_bytes arrive."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    # Connection: close, so short answers end at once instead of idling in keep-alive.
    lines = [f"GET {target} HTTP/{version}", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = bytearray()
    closed = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    try:
        while max_bytes is None or len(data) < max_bytes:
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await reader.read(65536)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            data += chunk
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    parsed: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.decode("latin-1").partition(":")
        parsed[name.strip().lower()] = value.strip()
    return Raw(status_line, parsed, body, closed)


def split_parts(body: bytes, boundary: bytes = b"myboundary", eol: bytes = b"\r\n") -> list[Part]:
    """Split a multipart body on its delimiter lines into (headers, payload) parts."""
    parts: list[Part] = []
    pieces = re.split(re.escape(b"--" + boundary + eol), body)
    for piece in pieces[1:]:
        head, sep, payload = piece.partition(eol + eol)
        if not sep:
            continue  # a part cut short by the end of the read
        headers = {}
        for line in head.split(eol):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append(Part(headers, payload.removesuffix(eol)))
    return parts


@dataclass
class Part:
    """One multipart part."""

    headers: dict[str, str]
    payload: bytes


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer(SimOptions(size=(320, 240)))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def fetch(sim: SimServer) -> Fetch:
    """Return raw_get bound to the sim fixture."""

    async def get(target: str, **kwargs: object) -> Raw:
        return await raw_get(sim.url, target, **kwargs)  # type: ignore[arg-type]

    return get


@pytest.fixture
def parts() -> Callable[..., list[Part]]:
    """Return split_parts (conftest helpers are reachable only through fixtures)."""
    return split_parts


@pytest.fixture
def raw() -> Fetch:
    """Return raw_get, for tests that start their own simulator."""
    return raw_get
