"""A naive WHEP server in the pattern of aiortc's examples: a decode and an encode per viewer.

The WebRTC benchmark's peer (``bench_webrtc.py``), run as its own process:

    python benchmarks/naive_webrtc.py --listen 127.0.0.1:PORT --source http://127.0.0.1:SIM

It answers the gateway's WHEP contract (``POST /whep/{camera}`` with an SDP offer ->
``201`` + answer + ``Location``; ``DELETE`` of the Location ends the session; CORS and
``OPTIONS`` so that a page on another origin can call it). Each session has its own
everything: an MJPEG connection to the simulator, read and decoded with PyAV's
``mpjpeg`` demuxer in a thread of its own (what aiortc's ``MediaPlayer`` does with a URL),
whose newest picture aiortc's ``RTCRtpSender`` encodes with aiortc's ``H264Encoder``
(libx264 at its default preset, ``tune=zerolatency``, baseline, in the loop's executor);
and an audio connection whose G.726 parts are decoded (FFmpeg's ``g726``) into 20 ms
blocks that aiortc's ``OpusEncoder`` resamples to 48 kHz and encodes. Nothing is shared
between viewers: the cost of that pattern per viewer is what the benchmark measures.
Candidates are gathered on 127.0.0.1 only, and all of them are in the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
from aiohttp import ClientSession, ClientTimeout, web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription
from webrtc_common import loopback_gathering, peer_connection, prefer

from gateway.demux.multipart import MultipartDemuxer, PartReceived, StreamEnded

log = logging.getLogger("naive_webrtc")

MJPEG_PATH = "/axis-cgi/mjpg/video.cgi?fps=25"
AUDIO_PATH = "/axis-cgi/audio/receive.cgi"
VIDEO_TIME_BASE = Fraction(1, 90_000)
#: The simulator's audio: G.726 at 32 kbit/s (4 bits a sample), 8 kHz mono.
AUDIO_RATE = 8000
#: Samples per audio frame handed to aiortc: 20 ms, what its Opus encoder packs.
AUDIO_BLOCK = AUDIO_RATE // 50
#: Audio frames queued for the encoder before the oldest is dropped (1 s).
AUDIO_QUEUE = 50
MAX_SDP = 65536
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Expose-Headers": "Location",
}


class MjpegTrack(MediaStreamTrack):
    """Video: this viewer's own MJPEG connection, decoded in its own thread, newest wins."""

    kind = "video"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._decode_loop = asyncio.get_running_loop()
        self._latest: av.VideoFrame | None = None
        self._ended = False
        self._fresh = asyncio.Event()
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        #: Pictures decoded, and those replaced before the encoder took them.
        self.decoded = 0
        self.skipped = 0

    async def recv(self) -> av.VideoFrame:
        """Return the next decoded picture, stamped with the time it is taken (90 kHz)."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._thread is None:  # the sender asks only once the transport is up
            self._thread = threading.Thread(target=self._decode, name="mjpeg-decode", daemon=True)
            self._thread.start()
        while self._latest is None:
            if self._ended:
                self.stop()
                raise MediaStreamError
            self._fresh.clear()
            await self._fresh.wait()
        frame, self._latest = self._latest, None
        frame.pts = round((time.monotonic() - self._t0) * 90_000)
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        self._quit.set()

    def _decode(self) -> None:
        try:
            with av.open(self.url, format="mpjpeg", timeout=5.0) as container:
                stream = container.streams.video[0]
                stream.codec_context.thread_count = 1  # frame threads hold pictures back
                for frame in container.decode(stream):
                    if self._quit.is_set():
                        break
                    self._decode_loop.call_soon_threadsafe(self._put, frame)
        except Exception:
            if not self._quit.is_set():
                log.exception("MJPEG decode of %s failed", self.url)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._decode_loop.call_soon_threadsafe(self._put, None)

    def _put(self, frame: av.VideoFrame | None) -> None:
        if frame is None:
            self._ended = True
        else:
            self.decoded += 1
            self.skipped += self._latest is not None
            self._latest = frame
        self._fresh.set()


class AxisAudioTrack(MediaStreamTrack):
    """Audio: this viewer's own connection to the camera's G.726 parts, decoded to 20 ms."""

    kind = "audio"

    def __init__(self, url: str, http: ClientSession) -> None:
        super().__init__()
        self.url = url
        self.http = http
        self._queue: deque[av.AudioFrame | None] = deque(maxlen=AUDIO_QUEUE)
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending = np.empty(0, np.int16)
        self._samples = 0

    async def recv(self) -> av.AudioFrame:
        """Return the next 20 ms of decoded audio (8 kHz mono s16)."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._read())
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        frame = self._queue.popleft()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        super().stop()
        if self._task is not None:
            self._task.cancel()

    async def _read(self) -> None:
        decoder = av.CodecContext.create("g726", "r")
        decoder.sample_rate = AUDIO_RATE
        decoder.layout = "mono"
        # FFmpeg's G.726 decoder takes its code size from bits_per_coded_sample.
        decoder.options = {"bits_per_coded_sample": "4"}
        try:
            async with self.http.get(self.url) as answer:
                demux = MultipartDemuxer(answer.headers.get("Content-Type"))
                async for chunk in answer.content.iter_any():
                    for event in demux.receive_data(chunk):
                        if isinstance(event, PartReceived):
                            self._decoded(decoder.decode(av.Packet(bytes(event.payload))))
                        elif isinstance(event, StreamEnded):
                            return
        except Exception:
            log.exception("audio from %s failed", self.url)
        finally:
            self._queue.append(None)
            self._ready.set()

    def _decoded(self, frames: list[av.AudioFrame]) -> None:
        pcm = [self._pending, *(f.to_ndarray().reshape(-1) for f in frames)]
        self._pending = np.concatenate(pcm).astype(np.int16, copy=False)
        while len(self._pending) >= AUDIO_BLOCK:
            block, self._pending = self._pending[:AUDIO_BLOCK], self._pending[AUDIO_BLOCK:]
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = self._samples
            frame.time_base = Fraction(1, AUDIO_RATE)
            self._samples += AUDIO_BLOCK
            self._queue.append(frame)
        self._ready.set()


@dataclass
class Session:
    """One viewer: its peer connection and its own sources."""

    pc: RTCPeerConnection
    tracks: list[MediaStreamTrack] = field(default_factory=list)

    async def close(self) -> None:
        for track in self.tracks:
            track.stop()
        await self.pc.close()


SESSIONS = web.AppKey("sessions", dict[str, Session])
SOURCE = web.AppKey("source", str)
HTTP = web.AppKey("http", ClientSession)


def _error(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=f"Error: {reason}\n", headers=CORS)


async def options(request: web.Request) -> web.Response:
    """Answer a CORS preflight."""
    return web.Response(status=204, headers={**CORS, "Accept-Post": "application/sdp"})


async def offer(request: web.Request) -> web.Response:
    """Answer a WHEP offer with a session that decodes and encodes for this viewer alone."""
    if request.content_type != "application/sdp":
        return _error(415, "Content-Type must be application/sdp")
    if (request.content_length or 0) > MAX_SDP:
        return _error(413, "SDP too large")
    sdp = await request.text()
    app = request.app
    pc = peer_connection()
    session = Session(pc)
    source = app[SOURCE]
    try:
        kinds = [m.kind for m in SessionDescription.parse(sdp).media]
        # Transceivers made before the offer is applied take its m-lines (one per kind
        # it has), and their codec preferences decide the answer's codecs (applied
        # later, they would not).
        if "video" in kinds:
            session.tracks.append(MjpegTrack(source + MJPEG_PATH))
        if "audio" in kinds:
            session.tracks.append(AxisAudioTrack(source + AUDIO_PATH, app[HTTP]))
        for track in session.tracks:
            prefer(pc.addTransceiver(track, direction="sendonly"))
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        with loopback_gathering():
            await pc.setLocalDescription(await pc.createAnswer())
    except (ValueError, KeyError) as exc:
        await session.close()
        return _error(400, f"bad offer: {exc}")
    name = secrets.token_hex(8)
    app[SESSIONS][name] = session

    @pc.on("connectionstatechange")
    async def _changed() -> None:
        if pc.connectionState in ("failed", "closed") and name in app[SESSIONS]:
            await app[SESSIONS].pop(name).close()

    location = f"/whep/{request.match_info['camera']}/{name}"
    return web.Response(
        status=201,
        text=pc.localDescription.sdp,
        content_type="application/sdp",
        headers={**CORS, "Location": location},
    )


async def delete(request: web.Request) -> web.Response:
    """End a session."""
    session = request.app[SESSIONS].pop(request.match_info["session"], None)
    if session is None:
        return _error(404, "no such session")
    await session.close()
    return web.Response(status=200, headers=CORS)


async def sessions(request: web.Request) -> web.Response:
    """Report the sessions and what their sources decoded (for the benchmark)."""
    video = [
        t for s in request.app[SESSIONS].values() for t in s.tracks if isinstance(t, MjpegTrack)
    ]
    return web.json_response(
        {
            "sessions": len(request.app[SESSIONS]),
            "decoded": sum(t.decoded for t in video),
            "skipped": sum(t.skipped for t in video),
        }
    )


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    app[SESSIONS] = {}
    async with ClientSession(timeout=ClientTimeout(total=None, sock_connect=5)) as http:
        app[HTTP] = http
        yield
        for session in list(app[SESSIONS].values()):
            await session.close()


def create_app(source: str) -> web.Application:
    """Return the naive WHEP server for the camera at ``source`` (the simulator's URL)."""
    app = web.Application(client_max_size=MAX_SDP)
    app[SOURCE] = source.rstrip("/")
    app.cleanup_ctx.append(_lifetime)
    app.router.add_route("OPTIONS", "/whep/{camera}", options)
    app.router.add_route("OPTIONS", "/whep/{camera}/{session}", options)
    app.router.add_post("/whep/{camera}", offer)
    app.router.add_delete("/whep/{camera}/{session}", delete)
    app.router.add_get("/sessions", sessions)
    return app


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--listen", default="127.0.0.1:8090", metavar="127.0.0.1:PORT")
    parser.add_argument("--source", required=True, help="the simulator's base URL")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    if host != "127.0.0.1":
        raise SystemExit("loopback only: --listen 127.0.0.1:PORT")
    logging.basicConfig(level=logging.WARNING, format="naive_webrtc %(levelname)s %(message)s")
    web.run_app(create_app(args.source), host=host, port=int(port), access_log=None, print=None)


if __name__ == "__main__":
    main()
