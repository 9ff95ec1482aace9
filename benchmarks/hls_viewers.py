"""Load generator for the LL-HLS benchmark: many blocking-reload viewers that fetch every part.

Runs as its own process (``python benchmarks/hls_viewers.py``) so that its CPU is not the
measured system's, on uvloop. Each viewer holds one keep-alive HTTP/1.1 connection and
asks one thing at a time, as a minimal LL-HLS client does (RFC 8216bis §6.2.5.2 and
§6.3.4): ``index.m3u8`` once, for the media playlist's URL; then, in a loop, the media
playlist with ``_HLS_msn``/``_HLS_part`` naming the part its last answer hinted
(EXT-X-PRELOAD-HINT), which the server holds until that part exists, and then every part
the answer lists that it has not fetched yet. It keeps no bytes: it counts parts,
playlists and bytes, and for each part the time its response completed minus the part's
start in wall-clock time (the segment's EXT-X-PROGRAM-DATE-TIME plus the durations of the
parts before it), in milliseconds.

Commands arrive as JSON lines on stdin; each gets one JSON line on stdout:

- ``{"cmd": "open", "port": P, "camera": C, "n": N}`` starts N more viewers and answers
  once each has fetched its first part (or failed): ``{"ok": k, "failed": f, "errors"}``;
- ``{"cmd": "stats"}`` answers the running totals ``{"parts", "bytes", "playlists",
  "errors", "alive", "cpu", "time", "per_client": [parts per live viewer], "kinds"}``;
- ``{"cmd": "samples"}`` answers the availability samples since the last call
  (``{"availability_ms": [...]}``) and forgets them;
- ``{"cmd": "close"}`` stops every viewer; ``{"cmd": "quit"}`` (or EOF) ends the process.
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import uvloop

MAX_HEAD = 16384
OPEN_CONCURRENCY = 32
OPEN_TIMEOUT = 20.0
#: Longer than any blocking request may be held (three target durations of 1 s).
REQUEST_TIMEOUT = 10.0
PART_URI = re.compile(r'URI="(part(\d+)\.(\d+)\.m4s)"')
DURATION = re.compile(r"DURATION=([0-9.]+)")
MAP_URI = re.compile(r'URI="([^"]+)"')


@dataclass(frozen=True, slots=True)
class PartRef:
    """A part a media playlist lists."""

    #: Media sequence number and index in its segment.
    msn: int
    index: int
    #: Its URI, relative to the playlist.
    uri: str
    #: Its start in wall-clock time (unix ns, from EXT-X-PROGRAM-DATE-TIME).
    start_ns: int
    #: Whether it starts with an IDR (INDEPENDENT=YES).
    independent: bool


@dataclass(slots=True)
class MediaPlaylist:
    """What a viewer reads in a media playlist."""

    parts: list[PartRef] = field(default_factory=list)
    #: EXT-X-PRELOAD-HINT's part, (msn, index); None when there is none.
    hint: tuple[int, int] | None = None
    #: The newest EXT-X-MAP URI.
    init: str | None = None


def _unix_ns(text: str) -> int:
    """Return an EXT-X-PROGRAM-DATE-TIME value (ISO 8601) in unix ns."""
    return round(datetime.fromisoformat(text.strip()).timestamp() * 1e9)


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Return the parts, the preload hint and the init segment a media playlist names."""
    out = MediaPlaylist()
    start = 0  # the wall clock of the next part
    for line in text.splitlines():
        if line.startswith("#EXT-X-PART:"):
            uri = PART_URI.search(line)
            duration = DURATION.search(line)
            if uri is None or duration is None:
                raise ValueError(f"bad part line {line!r}")
            ref = PartRef(int(uri[2]), int(uri[3]), uri[1], start, "INDEPENDENT=YES" in line)
            out.parts.append(ref)
            start += round(float(duration[1]) * 1e9)
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            start = _unix_ns(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            uri = PART_URI.search(line)
            if uri is not None:
                out.hint = (int(uri[2]), int(uri[3]))
        elif line.startswith("#EXT-X-MAP:"):
            found = MAP_URI.search(line)
            out.init = found[1] if found else None
    return out


def first_to_fetch(playlist: MediaPlaylist) -> tuple[int, int]:
    """Return the part before the preload hint: a viewer fetches from the hint on."""
    if playlist.hint is None:
        raise ValueError("no preload hint")
    return playlist.hint[0], playlist.hint[1] - 1


def next_part(playlist: MediaPlaylist, last: tuple[int, int]) -> tuple[int, int]:
    """Return the part to block for: the preload hint, else the one after ``last``."""
    return playlist.hint if playlist.hint is not None else (last[0], last[1] + 1)


class HttpError(Exception):
    """A response other than 200."""


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to the gateway, one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, int, int]] | None = None
        self.keep = True
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                waiter.set_exception(HttpError("response head too long"))
            return
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        done = time.time_ns()
        body = bytes(self.buffer[end + 4 : end + 4 + length]) if self.keep else b""
        del self.buffer[: end + 4 + length]
        status = int(head[0].split(" ", 2)[1])
        self.waiter = None
        waiter.set_result((status, body, length, done))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed: {exc}"))

    async def get(self, host: str, path: str, *, keep: bool = True) -> tuple[bytes, int, int]:
        """GET path; return the body (b"" unless kept), its length, when it completed (unix ns)."""
        assert self.transport is not None
        if self.closed:
            raise ConnectionError("connection closed")
        self.keep = keep
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
        # comes as the answer completes, and the viewer would never stop.
        async with asyncio.timeout(REQUEST_TIMEOUT):
            status, body, length, done = await self.waiter
        if status != 200:
            raise HttpError(f"{status} for {path.partition('?')[0].rsplit('/', 1)[-1]}")
        return body, length, done


class Viewer:
    """One LL-HLS viewer: blocking playlist reloads, every part fetched."""

    def __init__(self, gen: LoadGenerator, port: int, camera: str) -> None:
        self.gen = gen
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.index = f"/hls/{camera}/index.m3u8"
        self.parts = 0
        self.bytes = 0
        self.playlists = 0
        self.first_part = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    async def run(self) -> None:
        """Watch until cancelled; start over (new connection) after an error."""
        try:
            while True:
                try:
                    await self._watch()
                except (HttpError, OSError, TimeoutError, ValueError) as exc:
                    self.gen.kinds[f"{type(exc).__name__}: {exc}"] += 1
                    self.gen.errors += 1
                    if not self.first_part.done():
                        self.first_part.set_exception(exc)
                        return
                    await asyncio.sleep(0.5)
        finally:
            self.closed = True

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Connection, "127.0.0.1", self.port)
        try:
            body, _, _ = await conn.get(self.host, self.index)
            media = next(line for line in body.decode().splitlines() if line[:1] not in "#")
            base = self.index.rsplit("/", 1)[0] + "/" + media.rsplit("/", 1)[0] + "/"
            playlist_path = base + media.rsplit("/", 1)[1]
            body, _, _ = await conn.get(self.host, playlist_path)
            playlist = parse_media_playlist(body.decode())
            last = first_to_fetch(playlist)
            while True:
                msn, index = next_part(playlist, last)
                query = f"?_HLS_msn={msn}&_HLS_part={index}"
                body, _, _ = await conn.get(self.host, playlist_path + query)
                self.playlists += 1
                playlist = parse_media_playlist(body.decode())
                for part in playlist.parts:
                    if (part.msn, part.index) <= last:
                        continue
                    _, size, done = await conn.get(self.host, base + part.uri, keep=False)
                    self.parts += 1
                    self.bytes += size
                    self.gen.samples.append(round((done - part.start_ns) / 1e6, 2))
                    last = (part.msn, part.index)
                    if not self.first_part.done():
                        self.first_part.set_result(None)
        finally:
            if conn.transport is not None:
                conn.transport.close()


class LoadGenerator:
    """The set of viewers and the command handlers."""

    def __init__(self) -> None:
        self.viewers: list[Viewer] = []
        self.samples: list[float] = []
        self.kinds: Counter[str] = Counter()
        self.errors = 0
        self.gone = [0, 0, 0]  # parts, bytes, playlists of viewers already closed

    async def _open_one(self, port: int, camera: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            viewer = Viewer(self, port, camera)
            self.viewers.append(viewer)
            viewer.task = asyncio.get_running_loop().create_task(viewer.run())
            async with asyncio.timeout(OPEN_TIMEOUT):
                await asyncio.shield(viewer.first_part)

    async def open(self, port: int, camera: str, n: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        results = await asyncio.gather(
            *(self._open_one(port, camera, gate) for _ in range(n)), return_exceptions=True
        )
        errors = sorted({f"{type(r).__name__}: {r}" for r in results if isinstance(r, Exception)})
        failed = sum(isinstance(r, Exception) for r in results)
        return {"ok": n - failed, "failed": failed, "errors": errors[:5]}

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        alive = [v for v in self.viewers if not v.closed]
        return {
            "parts": self.gone[0] + sum(v.parts for v in self.viewers),
            "bytes": self.gone[1] + sum(v.bytes for v in self.viewers),
            "playlists": self.gone[2] + sum(v.playlists for v in self.viewers),
            "errors": self.errors,
            "alive": len(alive),
            "cpu": usage.ru_utime + usage.ru_stime,
            "time": time.monotonic(),
            "per_client": [v.parts for v in alive],
            "kinds": dict(self.kinds.most_common(5)),
        }

    def take_samples(self) -> dict[str, Any]:
        samples, self.samples = self.samples, []
        return {"availability_ms": samples}

    async def close(self) -> dict[str, Any]:
        for viewer in self.viewers:
            self.gone[0] += viewer.parts
            self.gone[1] += viewer.bytes
            self.gone[2] += viewer.playlists
            if viewer.task is not None:
                viewer.task.cancel()
        await asyncio.gather(*(v.task for v in self.viewers if v.task), return_exceptions=True)
        self.viewers.clear()
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
        reply: dict[str, Any]
        if name == "open":
            reply = await gen.open(int(command["port"]), str(command["camera"]), int(command["n"]))
        elif name == "stats":
            reply = gen.stats()
        elif name == "samples":
            reply = gen.take_samples()
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
