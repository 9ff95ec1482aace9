"""A small LL-HLS client for the HTTP tests: answers with their timing, hints, raw requests.

Times are ``time.monotonic_ns()``, the clock the gateway stamps ``Part.completed_ns``
with, so a test can tell whether an answer left before or after the part it waited for.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

from tests.publish.axis_client import read_head

from .m3u8 import attributes, parse

_PART_URI = re.compile(r"part(\d+)\.(\d+)\.m4s")
#: Seconds any one request may take (a blocking one waits three target durations at most).
REQUEST_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class Answer:
    """One response, read whole."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    #: When the request was sent and the body had arrived, monotonic ns.
    sent_ns: int
    arrived_ns: int

    @property
    def text(self) -> str:
        """Return the body as text."""
        return self.body.decode()


async def get(session: aiohttp.ClientSession, url: str) -> Answer:
    """GET ``url`` (redirects not followed) and read the whole body."""
    sent = time.monotonic_ns()
    async with (
        asyncio.timeout(REQUEST_TIMEOUT),
        session.get(url, allow_redirects=False) as response,
    ):
        body = await response.read()
        return Answer(response.status, response.headers, body, sent, time.monotonic_ns())


async def get_raw(port: int, target: str) -> tuple[int, dict[str, str], bytes]:
    """Send ``target`` byte for byte (no client-side normalising); return status, head, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        async with asyncio.timeout(REQUEST_TIMEOUT):
            status, head = await read_head(reader)
            body = await reader.read()
    finally:
        writer.close()
    return status, head, body


def variant(multivariant: str) -> tuple[dict[str, str], str]:
    """Return the one EXT-X-STREAM-INF's attributes and its URI."""
    lines = multivariant.split("\n")
    assert lines[0] == "#EXTM3U"
    (index,) = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF:")]
    return attributes(lines[index].partition(":")[2]), lines[index + 1]


def hint(playlist: str) -> tuple[int, int]:
    """Return (msn, index) of the part the playlist's preload hint names."""
    (uri,) = [h["URI"] for h in parse(playlist).hints if h["TYPE"] == "PART"]
    match = _PART_URI.fullmatch(uri)
    assert match is not None, uri
    return int(match[1]), int(match[2])


def parts(playlist: str) -> list[tuple[int, int]]:
    """Return (msn, index) of every part the playlist lists, in order."""
    return [
        (int(m[1]), int(m[2]))
        for segment in parse(playlist).segments
        for p in segment.parts
        if (m := _PART_URI.fullmatch(p.uri)) is not None
    ]


def blocking(media_url: str, msn: int, index: int) -> str:
    """Return the blocking reload URL that waits for part ``index`` of segment ``msn``."""
    return f"{media_url}?_HLS_msn={msn}&_HLS_part={index}"


def part_url(media_url: str, msn: int, index: int) -> str:
    """Return the URL of a part beside the media playlist."""
    return f"{media_url.rpartition('/')[0]}/part{msn}.{index}.m4s"


@dataclass
class Viewer:
    """A low-latency viewer: blocking reloads, and every new part fetched in order."""

    media_url: str
    #: Parts fetched, in order.
    fetched: list[tuple[int, int]] = field(default_factory=list)
    #: Statuses of anything not 200.
    failures: list[tuple[str, int]] = field(default_factory=list)

    async def run(self, wanted: int) -> None:
        """Follow the live edge until ``wanted`` parts were fetched (one connection)."""
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            answer = await get(session, self.media_url)
            last = parts(answer.text)[-1]  # from the live edge on
            while answer.status == 200 and len(self.fetched) < wanted:
                for msn, index in (p for p in parts(answer.text) if p > last):
                    got = await get(session, part_url(self.media_url, msn, index))
                    if got.status != 200:
                        self.failures.append((f"part{msn}.{index}", got.status))
                    self.fetched.append((msn, index))
                    last = (msn, index)
                answer = await get(session, blocking(self.media_url, *hint(answer.text)))
            if answer.status != 200:
                self.failures.append(("media.m3u8", answer.status))
