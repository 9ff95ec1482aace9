"""Raw loopback HTTP clients for the server tests (the whole 127/8 is loopback on Linux)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class Exchange:
    """What a raw client got back."""

    data: bytes
    #: Seconds from connect until the server closed (EOF or reset).
    closed_after: float

    @property
    def status(self) -> int | None:
        """Return the status code of the first response (None: no response)."""
        line = self.data.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 and line[1].isdigit() else None

    @property
    def body(self) -> bytes:
        """Return what follows the first response head."""
        return self.data.partition(b"\r\n\r\n")[2]

    def header(self, name: str) -> str | None:
        """Return the first response's header ``name``."""
        head = self.data.partition(b"\r\n\r\n")[0].decode("latin-1")
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


async def read_all(reader: asyncio.StreamReader, within: float) -> bytes:
    """Return everything until EOF or a reset, failing after ``within`` seconds."""
    data = b""
    async with asyncio.timeout(within):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionError:
                return data
            if not chunk:
                return data
            data += chunk


async def exchange(
    port: int, data: bytes, *, local: str = "127.0.0.1", within: float = 10.0
) -> Exchange:
    """Send ``data`` on a new connection from ``local``; return all the server sent."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))
    try:
        writer.write(data)
        received = await read_all(reader, within)
        return Exchange(received, time.monotonic() - start)
    finally:
        writer.close()


def get(path: str, *, close: bool = True) -> bytes:
    """Return a GET request for ``path``."""
    connection = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: gateway\r\n{connection}\r\n".encode()
