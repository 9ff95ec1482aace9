"""The soak's viewers: one coroutine per output, each counting the frames it receives.

Every viewer watches one camera for a while and returns a ``Watch`` record: frames
received, when the first and the last arrived (so its frame rate is measured while it
was receiving, not during its start), and how it ended. Byte-stream viewers count
frame markers in the bytes without keeping them (loadgen.py's way): the multipart
delimiter (MJPEG, audio), the picture start code (MPEG-2, ISO/IEC 13818-2 §6.2.3.1) and
the ``moof`` box type (fMP4, one fragment per picture). The LL-HLS viewer is a plain
polling client (blocking playlist reloads, every part fetched) that counts the video
samples of each part (``trun`` of track 1). The WebRTC viewer is the tests' aiortc
player, its candidates on 127.0.0.1, which decodes what it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
from hls_viewers import first_to_fetch, next_part, parse_media_playlist

PICTURE_START = b"\x00\x00\x01\x00"
MOOF = b"moof"
#: fMP4 track of the video (gateway/mux: progressive and LL-HLS alike).
VIDEO_TRACK = 1
#: Seconds between two snapshot requests of one snapshot viewer.
SNAPSHOT_INTERVAL = 0.5
#: Longer than any blocking playlist request may be held (three 1 s target durations).
HLS_TIMEOUT = 10.0


@dataclass(slots=True)
class Watch:
    """What one viewer saw."""

    #: Output (``mjpeg``, ``snapshot``, ``mpeg2``, ``audio``, ``mp4``, ``hls``, ``webrtc``).
    kind: str
    camera: str
    #: What it asked beyond the camera (``resolution=160x120``, ``fps=5``), or "".
    variant: str = ""
    #: Loop times it started and stopped watching.
    start: float = 0.0
    end: float = 0.0
    frames: int = 0
    #: Loop times of the first and the last frame (None: no frame).
    first: float | None = None
    last: float | None = None
    #: Frames counted by the time of ``first`` (HLS parts bring several at once).
    at_first: int = 0
    #: Non-200 answers and errors, as short strings.
    errors: list[str] = field(default_factory=list)

    def got(self, n: int, now: float) -> None:
        """Count ``n`` frames arrived at ``now``."""
        if n <= 0:
            return
        self.frames += n
        if self.first is None:
            self.first, self.at_first = now, self.frames
        self.last = now

    @property
    def fps(self) -> float | None:
        """Return the frame rate from the first frame to the last (None: too few frames)."""
        if self.first is None or self.last is None or self.last - self.first < 1.0:
            return None
        return (self.frames - self.at_first) / (self.last - self.first)


class MarkerCounter:
    """Counts a marker in a byte stream fed in chunks (a split marker counts once)."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self._carry = b""

    def feed(self, chunk: bytes) -> int:
        """Return how many markers end in ``chunk``."""
        data = self._carry + chunk
        found = data.count(self.marker)
        # The carry is too short to hold a whole marker, so nothing is counted twice.
        self._carry = data[-(len(self.marker) - 1) :] if len(self.marker) > 1 else b""
        return found


def marker_of(content_type: str) -> bytes:
    """Return the frame marker of a streaming response's Content-Type."""
    media = content_type.lower()
    if "boundary=" in media:
        boundary = content_type.split("boundary=", 1)[1].split(";", 1)[0].strip().strip('"')
        return b"--" + boundary.removeprefix("--").encode("latin-1")
    if media.startswith("video/mpeg"):
        return PICTURE_START
    if media.startswith("video/mp4"):
        return MOOF
    raise ValueError(f"no frame marker for {content_type!r}")


async def stream(http: aiohttp.ClientSession, url: str, watch: Watch, seconds: float) -> None:
    """Read a streaming response for ``seconds``, counting its frames."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async with http.get(url) as response:
                if response.status != 200:
                    watch.errors.append(f"HTTP {response.status}")
                    return
                counter = MarkerCounter(marker_of(response.headers["Content-Type"]))
                async for chunk in response.content.iter_any():
                    watch.got(counter.feed(chunk), loop.time())
                watch.errors.append("ended")


async def snapshots(http: aiohttp.ClientSession, url: str, watch: Watch, seconds: float) -> None:
    """Ask for a snapshot every ``SNAPSHOT_INTERVAL`` seconds; count the JPEGs."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (now := loop.time()) < end:
        async with asyncio.timeout(10), http.get(url) as response:
            body = await response.read()
        if response.status == 200 and body[:2] == b"\xff\xd8":
            watch.got(1, loop.time())
        else:
            watch.errors.append(f"HTTP {response.status}")
        await asyncio.sleep(max(0.0, now + SNAPSHOT_INTERVAL - loop.time()))


def video_samples(fragment: bytes) -> int:
    """Return the samples of track 1 in an fMP4 part or segment (``moof``/``traf``/``trun``)."""
    count = 0
    for moof in boxes(fragment, b"moof"):
        for traf in boxes(moof, b"traf"):
            tfhd = next(boxes(traf, b"tfhd"), b"")
            if len(tfhd) >= 8 and struct.unpack_from(">I", tfhd, 4)[0] == VIDEO_TRACK:
                for trun in boxes(traf, b"trun"):
                    count += struct.unpack_from(">I", trun, 4)[0]
    return count


def boxes(data: bytes, kind: bytes) -> Iterator[bytes]:
    """Yield the payloads of the top-level ``kind`` boxes of ``data`` (ISO/IEC 14496-12 §4.2)."""
    offset = 0
    while offset + 8 <= len(data):
        size, found = struct.unpack_from(">I4s", data, offset)
        if size < 8:
            return
        if found == kind:
            yield data[offset + 8 : offset + size]
        offset += size


async def hls(http: aiohttp.ClientSession, base: str, watch: Watch, seconds: float) -> None:
    """Play ``/hls/{camera}/index.m3u8`` as a minimal LL-HLS client for ``seconds``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        try:
            async with asyncio.timeout(max(0.1, end - loop.time())):
                await _hls_session(http, base, watch)
        except TimeoutError:
            return
        except (aiohttp.ClientError, ValueError) as exc:
            watch.errors.append(f"{type(exc).__name__}: {exc}"[:80])
            await asyncio.sleep(0.5)  # a new session (the old one stopped), or a camera down


async def _get(http: aiohttp.ClientSession, url: str) -> bytes:
    async with asyncio.timeout(HLS_TIMEOUT), http.get(url) as response:
        body = await response.read()
    if response.status != 200:
        raise ValueError(f"HTTP {response.status} for {url.rsplit('/', 1)[-1].split('?', 1)[0]}")
    return body


async def _hls_session(http: aiohttp.ClientSession, base: str, watch: Watch) -> None:
    loop = asyncio.get_running_loop()
    index = f"{base}/hls/{watch.camera}/index.m3u8"
    master = (await _get(http, index)).decode()
    media = next(line for line in master.splitlines() if line and not line.startswith("#"))
    playlist_url = index.rsplit("/", 1)[0] + "/" + media
    folder = playlist_url.rsplit("/", 1)[0] + "/"
    playlist = parse_media_playlist((await _get(http, playlist_url)).decode())
    last = first_to_fetch(playlist)
    while True:
        msn, part = next_part(playlist, last)
        query = f"?_HLS_msn={msn}&_HLS_part={part}"
        playlist = parse_media_playlist((await _get(http, playlist_url + query)).decode())
        for ref in playlist.parts:
            if (ref.msn, ref.index) <= last:
                continue
            body = await _get(http, folder + ref.uri)
            watch.got(video_samples(body), loop.time())
            last = (ref.msn, ref.index)


async def webrtc(
    http: aiohttp.ClientSession,
    base: str,
    watch: Watch,
    seconds: float,
    *,
    audio: bool,
    delete: bool,
) -> None:
    """Watch over WHEP with an aiortc player for ``seconds``; ``delete``: end with DELETE."""
    # The tests' player: importable once soak.py has put the checkout on sys.path.
    from tests.publish.webrtc.whep_client import whep_player  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    async with whep_player(http, f"{base}/whep/{watch.camera}", audio=audio, keep=False) as player:
        seen = 0
        while (now := loop.time()) < end:
            await asyncio.sleep(min(0.25, end - now))
            count = player.picture_count
            watch.got(count - seen, loop.time())
            seen = count
        if delete:
            async with http.delete(base + player.location) as response:
                if response.status != 200:
                    watch.errors.append(f"DELETE {response.status}")
