"""Axis-compatible audio endpoints (VAPIX §5.5): ``receive.cgi`` and ``getparam.cgi``.

One ``AudioSource`` per camera with ``audio = true``: the ingest's parts go into a hub
``Ring`` (every part is a cut point) that fans them out byte for byte, and into an
``AudioDecoder`` whose PCM feeds a level meter, so ``/api`` shows the decoded level.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable

import numpy as np
from aiohttp import web

from gateway.config import CameraConfig
from gateway.errors import RemoteProtocolError
from gateway.hub import Cursor, Ring, StreamFullError
from gateway.media import NS_PER_SECOND, Frame, Payload, StreamKind
from gateway.transcode import ParamError
from gateway.transcode.audio import AudioDecoder, PcmBlock, codec_for

from .fanout import AxisSettings
from .handlers import MJPEG_HEADERS, SETTINGS
from .options import CRLF
from .streaming import (
    AUDIO_PARAMS,
    CursorSource,
    error,
    find_config,
    parse_stream_options,
    serve_cursor,
)

#: Seconds of audio parts the ring holds (every part is a cut point: nothing to seek).
RING_SECONDS = 2.0
RING_MAX_BYTES = 2 * 2**20
#: Samples the level meter averages over (0.5 s at 8 kHz).
LEVEL_WINDOW = 4000
#: Distinct part content types whose heads are cached (a camera normally sends one).
MAX_PART_HEADS = 8
#: The level reported for digital silence (16-bit PCM's floor is about -96 dBFS).
SILENCE_DBFS = -120.0
#: Full scale of int16 PCM: a full-scale square wave is 0 dBFS.
FULL_SCALE = 32768.0
RECEIVE_PATH = "/axis-cgi/audio/receive.cgi"
GETPARAM_PATH = "/axis-cgi/audio/getparam.cgi"
#: §5.5.2: the same head as MJPEG, boundary ``myboundary``.
AUDIO_HEADERS = MJPEG_HEADERS


class LevelMeter:
    """RMS level, in dBFS, of the last ``window`` decoded samples."""

    def __init__(self, *, window: int = LEVEL_WINDOW) -> None:
        """Average over about ``window`` samples (whole blocks)."""
        self.window = window
        self._blocks: deque[tuple[float, int]] = deque()
        self._energy = 0.0
        self._samples = 0

    def add(self, block: PcmBlock) -> None:
        """Take one decoded block (the decoder's ``on_pcm``, loop thread)."""
        samples = block.samples.astype(np.float64)
        energy = float(np.dot(samples, samples))
        self._blocks.append((energy, len(samples)))
        self._energy += energy
        self._samples += len(samples)
        while len(self._blocks) > 1 and self._samples - self._blocks[0][1] >= self.window:
            old, n = self._blocks.popleft()
            self._energy -= old
            self._samples -= n

    @property
    def dbfs(self) -> float | None:
        """Return the level in dBFS (None before any sample)."""
        if not self._samples:
            return None
        mean = max(self._energy, 0.0) / self._samples
        if mean <= 0.0:
            return SILENCE_DBFS
        return round(max(10 * math.log10(mean / FULL_SCALE**2), SILENCE_DBFS), 2)


class AudioSource(CursorSource):
    """One camera's audio fan-out, decoder and level meter."""

    def __init__(
        self,
        camera: CameraConfig,
        *,
        loop: asyncio.AbstractEventLoop,
        max_clients: int,
        client_buffer_bytes: int,
        settings: AxisSettings,
        decoder: AudioDecoder | None = None,
    ) -> None:
        """Create the ring and the decoder (its thread starts with the first part)."""
        ring = Ring(
            StreamKind.AUDIO,
            name=camera.name,
            seconds=RING_SECONDS,
            max_bytes=RING_MAX_BYTES,
            max_subscribers=max_clients,
        )
        super().__init__(
            camera,
            ring,
            max_clients=max_clients,
            client_buffer_bytes=client_buffer_bytes,
            settings=settings,
        )
        self.meter = LevelMeter()
        # The decoder picks each part's codec with codec_for(content type, audio_codec).
        self.decoder = decoder or AudioDecoder(camera.audio_codec, self.meter.add, loop=loop)
        self._heads: dict[str, bytes] = {}

    def on_frame(self, frame: Frame) -> None:
        """Take one audio part from the ingest (its ``on_frame``)."""
        self.ring.publish(frame)
        self.decoder.submit(frame)

    def head(self, content_type: str) -> bytes:
        """Return the delimiter and headers of a part of ``content_type`` (§5.5.2)."""
        head = self._heads.get(content_type)
        if head is None:
            head = b"--myboundary\r\nContent-Type: %s\r\n\r\n" % content_type.encode("latin-1")
            if len(self._heads) < MAX_PART_HEADS:  # a camera that varies it gets no cache
                self._heads[content_type] = head
        return head

    def framer(self, cursor: Cursor) -> Callable[[list[Payload]], list[Payload]]:
        """Return what turns ``cursor``'s taken payloads into parts, each with its own type."""
        ring = self.ring

        def wrap(payloads: list[Payload]) -> list[Payload]:
            # Every audio part is a cut point, so ``take`` handed out the frames just
            # before the cursor's position, in order, none skipped.
            first = cursor.position - len(payloads)
            chunks: list[Payload] = []
            for i, payload in enumerate(payloads):
                frame = ring.get(first + i)
                content_type = "audio/32KADPCM" if frame is None else frame.content_type
                chunks += (self.head(content_type), payload, CRLF)
            return chunks

        return wrap

    def stats(self) -> dict[str, object]:
        """Return the decoder's figures for ``/api`` ``streams.audio``."""
        newest = self.ring.newest
        codec = None
        if newest is not None:
            try:
                codec = codec_for(newest.content_type, self.camera.audio_codec).value
            except RemoteProtocolError:
                codec = None
        return {
            "level_dbfs": self.meter.dbfs,
            "decoder_codec": codec,
            "decoder": self.decoder.counters.snapshot(),
            "buffer_seconds": round(self.ring.held_ns / NS_PER_SECOND, 3),
            "clients": len(self.ring),
        }

    async def aclose(self) -> None:
        """End every client, stop the decoder."""
        self.ring.close()
        self.decoder.close()
        await self.decoder.wait_idle()


#: Every camera's audio source by camera name (cameras with ``audio = true``).
AUDIO_SOURCES = web.AppKey("axis_audio", dict[str, AudioSource])


def _source(request: web.Request) -> AudioSource:
    camera = find_config(request)
    source = request.app[AUDIO_SOURCES].get(camera.name)
    if source is None:
        raise web.HTTPNotFound(
            text=f"Error: camera {camera.name} has no audio stream\n", content_type="text/plain"
        )
    return source


async def receive(request: web.Request) -> web.StreamResponse:
    """Stream the camera's audio parts, byte for byte, as multipart (§5.5.1/5.5.2)."""
    source = _source(request)
    try:
        options = parse_stream_options(request.query, AUDIO_PARAMS)
    except ParamError as exc:
        return error(400, exc)
    try:
        cursor = source.ring.subscribe(
            maxlag_ns=options.maxlag_ns,
            max_buffer_bytes=source.client_buffer_bytes,
            kind="audio",
            remote=request.remote or "",
        )
    except StreamFullError:
        name, limit = source.camera.name, source.max_clients
        return error(503, f"camera {name} has {limit} audio clients already")
    with cursor:
        return await serve_cursor(
            request,
            cursor,
            AUDIO_HEADERS,
            clients=source.egress,
            options=options,
            settings=request.app[SETTINGS],
            wrap=source.framer(cursor),
        )


async def getparam(request: web.Request) -> web.Response:
    """Return the ``root.Audioc`` parameters (§5.5.4); ``connectedClients`` is live."""
    source = _source(request)
    values = (
        # The gateway only relays the camera's audio: "get" is Axis' simplex mode.
        ("duplexMode", "get"),
        ("maxNumberOfClients", source.max_clients),
        ("forwardOnPost", "no"),
        ("buttonMode", "push"),
        ("clientBufferSize", source.client_buffer_bytes),
        ("connectedClients", len(source.ring)),
        ("connectedPostClients", 0),
    )
    body = "".join(f"root.Audioc.{name}={value}\r\n" for name, value in values) + "\r\n"
    return web.Response(text=body, content_type="text/plain")


def add_routes(app: web.Application) -> None:
    """Add ``receive.cgi`` and ``getparam.cgi`` (the app fills AUDIO_SOURCES)."""
    app.router.add_get(RECEIVE_PATH, receive)
    app.router.add_get(GETPARAM_PATH, getparam)
