"""Helpers for the MPEG-2 and audio endpoint tests: a gateway with every stream on,
raw byte-stream clients, and FFmpeg decoding of what they received."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av

from tests.demux.mpeg2_helpers import decode
from tests.publish.axis_client import Gateway, camera_toml, read_head

#: MPEG-2 start codes (ISO/IEC 13818-2 §6.2.1): sequence header, picture.
SEQUENCE_HEADER = b"\x00\x00\x01\xb3"
PICTURE_START = b"\x00\x00\x01\x00"


def streams_toml(name: str = "cam", *, prebuffer: float = 2.0, extra: str = "") -> str:
    """Return a simulated camera with MJPEG, MPEG-2 and audio on."""
    return camera_toml(
        name, extra=f"mpeg2 = true\naudio = true\nmpeg2_prebuffer_seconds = {prebuffer}\n{extra}"
    )


@dataclass
class ByteClient:
    """A raw HTTP client that keeps the response body of a byte stream."""

    status: int = 0
    head: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    eof: bool = False


async def open_stream(
    port: int, target: str, *, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, ByteClient]:
    """Send the request (optionally with a small SO_RCVBUF) and read the response head."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    client = ByteClient()
    client.status, client.head = await read_head(reader)
    return reader, writer, client


async def open_raw(
    port: int, target: str, *, rcvbuf: int = 4096
) -> tuple[socket.socket, ByteClient]:
    """Send the request on a plain socket with a small SO_RCVBUF; read the head.

    Nothing reads ahead (an asyncio StreamReader would pull up to twice its limit from
    the kernel on its own): what the test does not ``sock_recv`` stays in the network.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        more = await loop.sock_recv(sock, 1024)
        assert more, "connection closed before the response head"
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    client = ByteClient(status=int(lines[0].split()[1]), body=bytearray(rest))
    for line in lines[1:]:
        name, _, value = line.partition(":")
        client.head[name.strip().lower()] = value.strip()
    return sock, client


async def read_body(
    reader: asyncio.StreamReader, client: ByteClient, *, seconds: float, limit: int = 2**30
) -> None:
    """Read the body for ``seconds`` (or until EOF or ``limit`` bytes)."""
    end = time.monotonic() + seconds
    while len(client.body) < limit and (left := end - time.monotonic()) > 0:
        try:
            async with asyncio.timeout(left):
                data = await reader.read(65536)
        except TimeoutError:
            return
        if not data:
            client.eof = True
            return
        client.body += data


async def fetch(port: int, target: str, *, seconds: float = 30.0) -> ByteClient:
    """Open ``target``, read its body for ``seconds`` or until EOF, close."""
    reader, writer, client = await open_stream(port, target)
    try:
        await read_body(reader, client, seconds=seconds)
    finally:
        writer.close()
    return client


def decode_mpeg2(data: bytes) -> tuple[int, int, list[str]]:
    """Return (pictures, errors, FFmpeg error logs) of an MPEG-2 elementary stream."""
    with av.logging.Capture() as logs:
        pictures, errors = decode(data, "mpegvideo")
    bad = [str(msg) for level, _, msg in logs if level <= av.logging.ERROR]
    return pictures, errors, bad


def whole_pictures(data: bytes) -> bytes:
    """Return ``data`` up to its last picture start code (the rest may be cut short)."""
    return data[: data.rfind(PICTURE_START)]


async def api_camera(gw: Gateway, name: str = "cam") -> dict[str, Any]:
    """Return the camera's ``/api/cameras/{name}`` object."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gw.base}/api/cameras/{name}") as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def until(predicate: Any, within: float = 10.0, every: float = 0.05) -> None:
    """Wait until ``predicate()`` is true, or fail."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(every)
