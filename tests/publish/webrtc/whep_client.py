"""An aiortc WHEP player for the tests: offer, answer, and the decoded media it receives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from gateway.publish.webrtc.net import gather_on

LOOPBACK = ["127.0.0.1"]


async def make_offer(*, audio: bool = True) -> RTCPeerConnection:
    """Return a recvonly peer connection with its offer set (candidates on loopback)."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    with gather_on(LOOPBACK):
        await pc.setLocalDescription(await pc.createOffer())
    return pc


@dataclass
class Player:
    """A connected WHEP player."""

    pc: RTCPeerConnection
    location: str
    etag: str
    headers: Any
    #: Decoded pictures as (frame, arrival monotonic s).
    pictures: list[tuple[av.VideoFrame, float]] = field(default_factory=list)
    #: Decoded audio frames.
    sounds: list[av.AudioFrame] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def wait_pictures(self, n: int, timeout: float = 20.0) -> None:
        """Wait until ``n`` pictures arrived."""
        async with asyncio.timeout(timeout):
            while len(self.pictures) < n:
                await asyncio.sleep(0.02)


async def _drain(track: Any, out: list[Any], stamp: bool) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            out.append((frame, loop.time()) if stamp else frame)


@contextlib.asynccontextmanager
async def whep_player(
    http: aiohttp.ClientSession, url: str, *, audio: bool = True
) -> AsyncIterator[Player]:
    """POST an offer to ``url``, apply the answer, and receive until the block ends."""
    pc = await make_offer(audio=audio)
    player: Player | None = None

    @pc.on("track")
    def on_track(track: Any) -> None:
        assert player is not None
        if track.kind == "video":
            player.tasks.append(asyncio.ensure_future(_drain(track, player.pictures, True)))
        else:
            player.tasks.append(asyncio.ensure_future(_drain(track, player.sounds, False)))

    try:
        async with http.post(
            url, data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
        ) as resp:
            body = await resp.text()
            assert resp.status == 201, (resp.status, body)
            player = Player(pc, resp.headers["Location"], resp.headers["ETag"], resp.headers)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        yield player
    finally:
        for task in [] if player is None else player.tasks:
            task.cancel()
        await pc.close()
