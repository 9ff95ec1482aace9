"""Helpers for the WHEP end-to-end tests: configurations, raw requests, a STUN responder."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
from aioice import stun, turn

from gateway.hub import CameraMedia
from gateway.transcode.audio_codecs import AudioEncoding
from gateway.transcode.encode import H264_KIND

SDP = "application/sdp"


def sim_camera(
    name: str = "cam",
    *,
    fps: int = 25,
    size: str = "640x480",
    audio: bool = True,
    extra: str = "",
) -> str:
    """Return one simulated camera (MJPEG, and audio if ``audio``) as a [[cameras]] table."""
    return (
        f'[[cameras]]\nname = "{name}"\nsource = "sim"\nmjpeg = true\nfps = {fps}\n'
        f'resolution = "{size}"\nstall_timeout = 5.0\naudio = {str(audio).lower()}\n{extra}'
    )


def webrtc_toml(*cameras: str, webrtc: str = "", extra: str = "") -> str:
    """Return a configuration of ``cameras`` whose WebRTC sessions gather on loopback only."""
    return "\n".join(cameras) + f'\n[webrtc]\naddresses = ["127.0.0.1"]\n{webrtc}\n{extra}'


@dataclass
class Reply:
    """A finished HTTP response."""

    status: int
    headers: Mapping[str, str]
    #: Every ``Link`` header, in order.
    links: list[str]
    text: str


async def request(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: bytes | str | None = None,
    *,
    content_type: str | None = SDP,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """Send one request and read the whole response."""
    sent = dict(headers or {})
    if content_type is not None:
        sent["Content-Type"] = content_type
    async with http.request(method, url, data=body, headers=sent) as response:
        text = await response.text()
        return Reply(response.status, response.headers, response.headers.getall("Link", []), text)


async def raw_post(
    port: int, path: str, head: str, parts: list[bytes], *, pause: float = 0.0
) -> tuple[int, bytes]:
    """POST ``parts`` after ``head`` header lines on a plain socket; return status and body.

    The body is written part by part, ``pause`` seconds apart (a slow client: the server
    sees each part arrive alone), while the response is read at the same time: a server
    that answers before the body's end is seen doing so.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode())

        async def send() -> None:
            with contextlib.suppress(ConnectionError):
                for i, part in enumerate(parts):
                    if i and pause:
                        await asyncio.sleep(pause)
                    writer.write(part)
                    await writer.drain()

        sender = asyncio.create_task(send())
        try:
            async with asyncio.timeout(20):
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return int(status_line.split()[1]), body
    finally:
        writer.close()


def chunked(data: bytes, size: int) -> bytes:
    """Return ``data`` in HTTP/1.1 chunked transfer coding, ``size`` bytes a chunk."""
    out = [
        f"{len(data[i : i + size]):x}\r\n".encode() + data[i : i + size] + b"\r\n"
        for i in range(0, len(data), size)
    ]
    return b"".join([*out, b"0\r\n\r\n"])


async def until(predicate: Callable[[], bool], within: float, what: str = "condition") -> float:
    """Wait (polling figures that have no event) until ``predicate()``; return seconds taken."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < within, f"{what}: not within {within} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def claims(media: CameraMedia) -> dict[str, int]:
    """Return the claims on the camera's H.264 and Opus encodes (0: released or stopped)."""
    return {
        kind: sum(cast(int, entry["claims"]) for entry in media.renditions.stats(kind))
        for kind in (H264_KIND, AudioEncoding.OPUS.value)
    }


class _StunServer(asyncio.DatagramProtocol):
    """Answers STUN Binding requests with the sender's address (RFC 8489 §14.2)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        if message.message_class != stun.Class.REQUEST or self.transport is None:
            return
        self.requests += 1
        response = stun.Message(
            message_method=message.message_method,
            message_class=stun.Class.RESPONSE,
            transaction_id=message.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = (addr[0], addr[1])
        self.transport.sendto(bytes(response), addr)


@contextlib.asynccontextmanager
async def stun_server() -> AsyncIterator[tuple[int, _StunServer]]:
    """Run a STUN server on a loopback UDP port; yield the port and the server."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _StunServer, local_addr=("127.0.0.1", 0)
    )
    try:
        yield transport.get_extra_info("sockname")[1], protocol
    finally:
        transport.close()


@contextlib.asynccontextmanager
async def silent_udp() -> AsyncIterator[int]:
    """Hold a loopback UDP port that never answers (a peer whose ICE never completes)."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


@dataclass
class TurnStub:
    """A TURN server over TCP that asks for credentials, checks them, and allocates nothing."""

    realm: str
    password: str
    #: The USERNAME of each Allocate whose MESSAGE-INTEGRITY held (RFC 8489 §9.2).
    authenticated: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one client: 401 with a realm and nonce, then 403 to the signed request."""
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readexactly(20)
                data = head + await reader.readexactly(int.from_bytes(head[2:4], "big"))
                request = stun.parse_message(data)
                response = stun.Message(
                    message_method=request.message_method,
                    message_class=stun.Class.ERROR,
                    transaction_id=request.transaction_id,
                )
                if "MESSAGE-INTEGRITY" not in request.attributes:
                    response.attributes["ERROR-CODE"] = (401, "Unauthorized")
                    response.attributes["REALM"] = self.realm
                    response.attributes["NONCE"] = b"n0nce"
                else:
                    username = request.attributes["USERNAME"]
                    key = turn.make_integrity_key(username, self.realm, self.password)
                    if request.check_message_integrity(key):
                        self.authenticated.append(username)
                    response.attributes["ERROR-CODE"] = (403, "Forbidden")
                    # Signed: a client drops an unsigned answer to a signed request.
                    response.add_message_integrity(key)
                writer.write(bytes(response))
                await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def turn_server(password: str) -> AsyncIterator[tuple[int, TurnStub]]:
    """Run a ``TurnStub`` on a loopback TCP port; yield the port and the stub."""
    stub = TurnStub(realm="gateway-test", password=password)
    server = await asyncio.start_server(stub.serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], stub
    finally:
        server.close()
        await server.wait_closed()
