"""One aiortc WHEP viewer per process, for the WebRTC benchmark: it counts what arrives.

    python benchmarks/webrtc_viewers.py URL [--decode] [--video-only]

Runs as its own process, so that its CPU is not the measured server's. It offers
receive-only H.264 video and Opus audio (candidates on 127.0.0.1 only, all in the offer),
POSTs the offer to the WHEP endpoint ``URL``, and takes the answer. aiortc hands every
encoded frame its jitter buffer completes to a decoder in a thread of the receiver's;
here that decoder is replaced (``aiortc.rtcrtpreceiver.get_decoder``) by one that counts
frames and bytes and, without ``--decode``, decodes nothing, so that many viewers stay
cheap on a small machine. With ``--decode`` it decodes too (PyAV's ``h264`` and
``libopus``), counts decode errors (an error also makes aiortc send a PLI, as it would)
and reads the capture time the simulator paints in each picture
(``gateway.sim.pattern.read_block_code``): glass-to-aiortc latency, which includes
aiortc's jitter buffer holding each frame until the next one's first packet arrives.
Decoded pictures are not passed on to the track: nothing here would read them.

Output, one JSON line each on stdout: once the first video frame is complete,
``{"ready": true, "answer_s": ..., "first_frame_s": ...}`` (seconds after the offer
was sent), or ``{"ready": false, "error": ...}`` and the process ends. Then commands
arrive as JSON lines on stdin:

- ``{"cmd": "stats"}`` answers the running totals ``{"frames", "bytes", "audio_frames",
  "decoded", "decode_errors", "unreadable", "latency_ms": [samples since the last call],
  "video_packets", "video_lost", "audio_packets", "state", "cpu", "time"}`` (``cpu``:
  this process's CPU seconds; ``time``: monotonic seconds);
- ``{"cmd": "quit"}`` (or EOF) DELETEs the session, closes the connection and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiortc.rtcrtpreceiver
import av
import numpy as np
import uvloop
from aiohttp import ClientSession, ClientTimeout
from aiortc import RTCSessionDescription
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.audio.codeccontext import AudioCodecContext
from av.video.codeccontext import VideoCodecContext
from webrtc_common import (
    loopback_gathering,
    peer_connection,
    prefer,
    whep_delete,
    whep_offer,
)

from gateway.sim.pattern import read_block_code

#: Seconds from the offer to the first complete video frame before the viewer gives up.
FIRST_FRAME_TIMEOUT = 20.0


@dataclass
class Tally:
    """What the receivers' decoder threads counted (read on the loop thread)."""

    loop: asyncio.AbstractEventLoop
    first_frame: asyncio.Event = field(default_factory=asyncio.Event)
    first_frame_at: float | None = None
    frames: int = 0
    bytes: int = 0
    audio_frames: int = 0
    decoded: int = 0
    decode_errors: int = 0
    unreadable: int = 0
    latency_ms: list[float] = field(default_factory=list)

    def take_latency(self) -> list[float]:
        samples, self.latency_ms = self.latency_ms, []
        return samples


class CountingDecoder:
    """Stands in for aiortc's decoder: counts encoded frames; decodes only if told to."""

    def __init__(self, kind: str, tally: Tally, *, decode: bool) -> None:
        self.kind = kind
        self.tally = tally
        self.codec: VideoCodecContext | AudioCodecContext | None = None
        if decode:
            codec = av.CodecContext.create("h264" if kind == "video" else "libopus", "r")
            assert isinstance(codec, VideoCodecContext | AudioCodecContext)
            codec.thread_count = 1  # frame threads would hold pictures back
            self.codec = codec

    def decode(self, encoded_frame: JitterFrame) -> list[av.frame.Frame]:
        """Count one encoded frame (a receiver's decoder thread); decode it if told to."""
        tally = self.tally
        if self.kind != "video":
            tally.audio_frames += 1
            if self.codec is not None:
                self._decode(encoded_frame.data)
            return []
        tally.frames += 1
        tally.bytes += len(encoded_frame.data)
        if tally.first_frame_at is None:
            tally.first_frame_at = time.monotonic()
            tally.loop.call_soon_threadsafe(tally.first_frame.set)
        if self.codec is not None:
            for picture in self._decode(encoded_frame.data):
                self._read(picture)
        return []

    def _decode(self, data: bytes) -> list[av.frame.Frame]:
        assert self.codec is not None
        try:
            frames: list[av.frame.Frame] = list(self.codec.decode(av.Packet(data)))
        except av.FFmpegError:
            self.tally.decode_errors += 1
            raise  # aiortc's decoder thread logs it and asks for a keyframe (PLI)
        return frames

    def _read(self, picture: av.frame.Frame) -> None:
        now = time.time_ns()
        assert isinstance(picture, av.VideoFrame)
        self.tally.decoded += 1
        plane = picture.planes[0]
        luma = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        code = read_block_code(luma[: picture.height, : picture.width])
        if code is None:
            self.tally.unreadable += 1
        else:
            self.tally.latency_ms.append(round((now - code[1]) / 1e6, 2))


def install(tally: Tally, *, decode: bool) -> None:
    """Make every receiver of this process use a counting decoder."""

    def get_decoder(codec: RTCRtpCodecParameters) -> CountingDecoder:
        return CountingDecoder(codec.mimeType.split("/")[0].lower(), tally, decode=decode)

    aiortc.rtcrtpreceiver.get_decoder = get_decoder  # type: ignore[attr-defined,assignment]


def emit(message: dict[str, Any]) -> None:
    """Write one JSON line to the benchmark."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def stats(tally: Tally, pc: Any) -> dict[str, Any]:
    """Return the running totals."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out: dict[str, Any] = {
        "frames": tally.frames,
        "bytes": tally.bytes,
        "audio_frames": tally.audio_frames,
        "decoded": tally.decoded,
        "decode_errors": tally.decode_errors,
        "unreadable": tally.unreadable,
        "latency_ms": tally.take_latency(),
        "video_packets": 0,
        "video_lost": 0,
        "audio_packets": 0,
        "state": pc.connectionState,
        "cpu": usage.ru_utime + usage.ru_stime,
        "time": time.monotonic(),
    }
    for entry in (await pc.getStats()).values():
        if entry.type == "inbound-rtp":
            out[f"{entry.kind}_packets"] += entry.packetsReceived
            if entry.kind == "video":
                out["video_lost"] += entry.packetsLost
    return out


async def watch(url: str, *, decode: bool, audio: bool) -> None:
    """Open the session, report when it plays, then serve commands until told to quit."""
    loop = asyncio.get_running_loop()
    tally = Tally(loop)
    install(tally, decode=decode)
    pc = peer_connection()
    for kind in ("video", "audio") if audio else ("video",):
        prefer(pc.addTransceiver(kind, direction="recvonly"))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with ClientSession(timeout=ClientTimeout(total=20)) as http:
        session_url = None
        try:
            with loopback_gathering():
                await pc.setLocalDescription(await pc.createOffer())
            t0 = time.monotonic()
            answer, session_url = await whep_offer(http, url, pc.localDescription.sdp)
            answer_s = time.monotonic() - t0
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            async with asyncio.timeout(FIRST_FRAME_TIMEOUT):
                await tally.first_frame.wait()
            assert tally.first_frame_at is not None
            emit(
                {
                    "ready": True,
                    "answer_s": round(answer_s, 4),
                    "first_frame_s": round(tally.first_frame_at - t0, 4),
                }
            )
            while line := await reader.readline():
                command = json.loads(line)
                if command["cmd"] == "quit":
                    break
                emit(await stats(tally, pc) if command["cmd"] == "stats" else {"error": line})
        except Exception as exc:
            # Before the ready line this is the answer to the start; after it, to a command.
            error = f"{type(exc).__name__}: {exc}"[:300]
            ready = tally.first_frame.is_set()
            emit({"error": error} if ready else {"ready": False, "error": error})
        finally:
            if session_url is not None:
                try:
                    await whep_delete(http, session_url)
                except Exception as exc:
                    emit({"delete_error": f"{type(exc).__name__}: {exc}"[:200]})
            await pc.close()


def main() -> None:
    """Parse the arguments and watch."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url", help="the WHEP endpoint, http://127.0.0.1:PORT/whep/CAMERA")
    parser.add_argument("--decode", action="store_true", help="decode, and read the latency")
    parser.add_argument("--video-only", action="store_true", help="offer no audio")
    args = parser.parse_args()
    uvloop.run(watch(args.url, decode=args.decode, audio=not args.video_only))


if __name__ == "__main__":
    main()
