"""Load generator for the benchmarks: many raw sockets that read and count parts.

Runs as its own process (``python benchmarks/loadgen.py``) so that its CPU is not the
measured system's. Each client sends one HTTP GET, checks for a 200 multipart answer, learns
the boundary from the Content-Type (``video/mpeg``: the picture start code instead;
``video/mp4``: the ``moof`` box type, one per picture) and then
only counts bytes and boundary delimiters (or pictures): every
``recv_into`` lands in one buffer shared by all connections (the event loop runs one callback
at a time) and ``bytearray.count`` finds the delimiters in C, so a client costs little more
than the kernel's copy. A delimiter split across two reads is found through a carry of at most
``len(delimiter) - 1`` bytes, which cannot hold a whole delimiter, so nothing counts twice.

Commands arrive as JSON lines on stdin; each gets one JSON line on stdout:

- ``{"cmd": "open", "port": P, "path": "/...", "n": N}`` opens N more clients and answers
  once each has its response head and first part (or failed): ``{"ok": k, "failed": f,
  "errors": [...]}``;
- ``{"cmd": "stats"}`` answers the running totals ``{"parts", "bytes", "alive", "closed",
  "cpu", "per_client": [parts per live client]}`` (``cpu``: this process's CPU seconds);
- ``{"cmd": "close"}`` closes every client; ``{"cmd": "quit"}`` (or EOF) ends the process.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any, cast

import uvloop

SHARED = bytearray(1 << 18)  # every client's recv_into target (256 KiB)
SHARED_VIEW = memoryview(SHARED)
MAX_HEAD = 16384
PICTURE_START = b"\x00\x00\x01\x00"
MOOF = b"moof"  # ISO/IEC 14496-12 §8.8.4 box type
OPEN_CONCURRENCY = 64  # connection attempts in flight while opening
OPEN_TIMEOUT = 15.0


class Client(asyncio.BufferedProtocol):
    """One MJPEG viewer: counts bytes and multipart delimiters."""

    def __init__(self, request: bytes, first_part: asyncio.Future[None]) -> None:
        self.request = request
        self.first_part = first_part
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.delimiter = b""
        self.carry = b""
        self.parts = 0
        self.bytes = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport, but has its methods.
        self.transport = cast("asyncio.Transport", transport)
        self.transport.write(self.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        carry = len(self.carry)
        if carry:
            SHARED[:carry] = self.carry
        return SHARED_VIEW[carry:]

    def buffer_updated(self, nbytes: int) -> None:
        self.bytes += nbytes
        start, end = 0, len(self.carry) + nbytes
        if not self.delimiter:
            self.head += SHARED[len(self.carry) : end]
            body_start = self._parse_head()
            if body_start is None:
                return
            # The body bytes that came with the head: count them from a fresh buffer.
            body, self.head = self.head[body_start:], b""
            SHARED[: len(body)] = body
            start, end = 0, len(body)
        found = SHARED.count(self.delimiter, start, end)
        if found:
            self.parts += found
            if not self.first_part.done():
                self.first_part.set_result(None)
        keep = len(self.delimiter) - 1
        self.carry = bytes(SHARED[max(start, end - keep) : end])

    def _parse_head(self) -> int | None:
        """Find the response head; return where the body starts (None: not yet, or failed)."""
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > MAX_HEAD:
                self._fail("response head too long")
            return None
        lines = self.head[:end].decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "200":
            self._fail(f"status line {lines[0]!r}")
            return None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() != "content-type":
                continue
            if "boundary=" in value:
                boundary = value.split("boundary=", 1)[1].split(";")[0].strip().strip('"')
                # RFC 2046 §5.1.1: each part is preceded by "--" + boundary.
                self.delimiter = b"--" + boundary.removeprefix("--").encode("latin-1")
            elif value.strip().lower().startswith("video/mpeg"):
                # MPEG-2: count coded pictures by their start code (ISO/IEC 13818-2 §6.2.3).
                self.delimiter = PICTURE_START
            elif value.strip().lower().startswith("video/mp4"):
                # Progressive fMP4: one movie fragment per picture; count the box type.
                self.delimiter = MOOF
        if not self.delimiter:
            self._fail(f"no multipart boundary, video/mpeg or video/mp4 in {lines[1:]!r}")
            return None
        return end + 4

    def _fail(self, reason: str) -> None:
        if not self.first_part.done():
            self.first_part.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.first_part.done():
            self.first_part.set_exception(ConnectionError(f"closed before the first part: {exc}"))


class LoadGenerator:
    """The set of clients and the command handlers."""

    def __init__(self) -> None:
        self.clients: list[Client] = []
        self.gone_parts = 0  # parts and bytes of clients already closed by "close"
        self.gone_bytes = 0

    async def _open_one(self, port: int, request: bytes, gate: asyncio.Semaphore) -> Client:
        loop = asyncio.get_running_loop()
        async with gate:
            first: asyncio.Future[None] = loop.create_future()
            _, client = await asyncio.wait_for(
                loop.create_connection(lambda: Client(request, first), "127.0.0.1", port),
                OPEN_TIMEOUT,
            )
            self.clients.append(client)
            await asyncio.wait_for(asyncio.shield(first), OPEN_TIMEOUT)
            return client

    async def open(self, port: int, path: str, n: int) -> dict[str, Any]:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        results = await asyncio.gather(
            *(self._open_one(port, request, gate) for _ in range(n)), return_exceptions=True
        )
        errors = sorted(
            {f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)}
        )
        failed = sum(isinstance(r, BaseException) for r in results)
        return {"ok": n - failed, "failed": failed, "errors": errors[:5]}

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        alive = [c for c in self.clients if not c.closed]
        return {
            "parts": self.gone_parts + sum(c.parts for c in self.clients),
            "bytes": self.gone_bytes + sum(c.bytes for c in self.clients),
            "alive": len(alive),
            "closed": len(self.clients) - len(alive),
            "cpu": usage.ru_utime + usage.ru_stime,
            "time": time.monotonic(),
            "per_client": [c.parts for c in alive],
        }

    async def close(self) -> dict[str, Any]:
        for client in self.clients:
            self.gone_parts += client.parts
            self.gone_bytes += client.bytes
            if client.transport is not None:
                client.transport.abort()
        self.clients.clear()
        await asyncio.sleep(0.1)
        return {"closed": True}


async def main() -> None:
    """Serve commands from stdin until "quit" or EOF."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    gen = LoadGenerator()
    while line := await reader.readline():
        command = json.loads(line)
        name = command["cmd"]
        if name == "open":
            reply = await gen.open(int(command["port"]), str(command["path"]), int(command["n"]))
        elif name == "stats":
            reply = gen.stats()
        elif name == "close":
            reply = await gen.close()
        elif name == "quit":
            break
        else:
            reply = {"error": f"unknown command {name!r}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    await gen.close()


if __name__ == "__main__":
    uvloop.run(main())
