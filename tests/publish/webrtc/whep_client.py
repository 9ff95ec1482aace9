"""An aiortc WHEP player for the tests: offer, answer, and the decoded media it receives."""

from __future__ import annotations

import asyncio
import contextlib
import re
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


def answer_ssrcs(sdp: str) -> dict[str, int]:
    """Return the first ``a=ssrc`` of each media kind in an answer (the sender's SSRC)."""
    ssrcs: dict[str, int] = {}
    kind = ""
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        match = re.match(r"a=ssrc:(\d+) ", line)
        if match and kind not in ssrcs:
            ssrcs[kind] = int(match[1])
    return ssrcs


@dataclass
class Player:
    """A connected WHEP player."""

    pc: RTCPeerConnection
    location: str
    etag: str
    headers: Any
    #: The answer's SDP.
    answer: str = ""
    #: Decoded pictures as (frame, arrival monotonic s); empty unless kept.
    pictures: list[tuple[av.VideoFrame, float]] = field(default_factory=list)
    #: Decoded audio frames; empty unless kept.
    sounds: list[av.AudioFrame] = field(default_factory=list)
    #: Pictures and audio frames received, kept or not.
    picture_count: int = 0
    sound_count: int = 0
    #: Keep the decoded frames (else only count them).
    keep: bool = True
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_pictures(self, n: int, within: float = 20.0) -> None:
        """Wait until ``n`` pictures arrived (at most ``within`` seconds)."""
        async with asyncio.timeout(within):
            while self.picture_count < n:
                self.arrived.clear()
                await self.arrived.wait()

    async def wait_sounds(self, n: int, within: float = 20.0) -> None:
        """Wait until ``n`` audio frames arrived (at most ``within`` seconds)."""
        async with asyncio.timeout(within):
            while self.sound_count < n:
                self.arrived.clear()
                await self.arrived.wait()

    def receiver(self, kind: str) -> Any:
        """Return the peer connection's receiver of ``kind``."""
        return next(t.receiver for t in self.pc.getTransceivers() if t.kind == kind)


async def _drain(track: Any, player: Player) -> None:
    loop = asyncio.get_running_loop()
    video = track.kind == "video"
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            if video:
                player.picture_count += 1
                if player.keep:
                    player.pictures.append((frame, loop.time()))
            else:
                player.sound_count += 1
                if player.keep:
                    player.sounds.append(frame)
            player.arrived.set()


@contextlib.asynccontextmanager
async def whep_player(
    http: aiohttp.ClientSession, url: str, *, audio: bool = True, keep: bool = True
) -> AsyncIterator[Player]:
    """POST an offer to ``url``, apply the answer, and receive until the block ends.

    ``keep``: keep the decoded frames, else count them only (many players, long runs).
    """
    pc = await make_offer(audio=audio)
    player: Player | None = None

    @pc.on("track")
    def on_track(track: Any) -> None:
        assert player is not None
        player.tasks.append(asyncio.ensure_future(_drain(track, player)))

    try:
        async with http.post(
            url, data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
        ) as resp:
            body = await resp.text()
            assert resp.status == 201, (resp.status, body)
            player = Player(
                pc, resp.headers["Location"], resp.headers["ETag"], resp.headers, body, keep=keep
            )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        yield player
    finally:
        for task in [] if player is None else player.tasks:
            task.cancel()
        await pc.close()
