"""Two aiortc peer connections on 127.0.0.1, a WHEP client and server, signalled in-process.

The client (offerer, recvonly, ICE controlling) and the server (answerer, sendonly with
an audio test track, ICE controlled) exchange SDP with every candidate stripped, as a
trickling client's offer and a test of trickle need: ICE can then only succeed through
the fragments the test hands to ``add_remote_candidates``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

from gateway.publish.webrtc.ice import add_remote_candidates, local_fragment
from gateway.publish.webrtc.net import gather_on
from gateway.publish.webrtc.sdpfrag import SdpFrag, parse_sdpfrag

LOOPBACK = ["127.0.0.1"]
TIMEOUT = 10.0


@dataclass
class Peers:
    """The two peer connections and what the test observes of them."""

    client: RTCPeerConnection
    server: RTCPeerConnection
    #: Monotonic arrival times of the audio frames the client decoded.
    frames: list[float] = field(default_factory=list)
    #: DTLS state changes on either side, recorded once both were connected.
    dtls_changes: list[str] = field(default_factory=list)
    #: The task reading the client's remote track.
    reader: asyncio.Task[None] | None = None

    def dtls(self, pc: RTCPeerConnection) -> RTCDtlsTransport:
        """Return the DTLS transport the (bundled) media of ``pc`` runs on."""
        transport: RTCDtlsTransport = pc.getTransceivers()[0].sender.transport
        return transport

    def watch_dtls(self) -> None:
        """Record every later DTLS state change of both sides."""
        for pc in (self.client, self.server):
            transport = self.dtls(pc)
            transport.on("statechange", lambda t=transport: self.dtls_changes.append(t.state))

    async def frames_after(self, count: int, what: str) -> None:
        """Wait until ``count`` more frames have arrived."""
        target = len(self.frames) + count
        await until(lambda: len(self.frames) >= target, what)


async def until(condition: Callable[[], bool], what: str, within: float = TIMEOUT) -> None:
    """Poll ``condition`` every 10 ms until true; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


def strip_candidates(sdp: str) -> str:
    """Remove a=candidate and a=end-of-candidates lines, as a trickling peer sends SDP."""
    kept = [
        line
        for line in sdp.splitlines()
        if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    ]
    return "".join(line + "\r\n" for line in kept)


def wire(frag: SdpFrag) -> SdpFrag:
    """Send a fragment over the 'network': render it and parse it back."""
    return parse_sdpfrag(frag.to_text())


async def _read(track: MediaStreamTrack, frames: list[float]) -> None:
    try:
        while True:
            await track.recv()
            frames.append(time.monotonic())
    except MediaStreamError:
        return


@asynccontextmanager
async def negotiated() -> AsyncIterator[Peers]:
    """Yield peers that exchanged offer and answer without candidates (not connected)."""
    config = RTCConfiguration(iceServers=[])  # no STUN: nothing leaves loopback
    client = RTCPeerConnection(config)
    server = RTCPeerConnection(config)
    peers = Peers(client, server)

    @client.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        peers.reader = asyncio.create_task(_read(track, peers.frames))

    try:
        client.addTransceiver("audio", direction="recvonly")
        with gather_on(LOOPBACK):
            await client.setLocalDescription(await client.createOffer())
        server.addTrack(AudioStreamTrack())
        offer = strip_candidates(client.localDescription.sdp)
        await server.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        with gather_on(LOOPBACK):
            await server.setLocalDescription(await server.createAnswer())
        answer = strip_candidates(server.localDescription.sdp)
        await client.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        yield peers
    finally:
        await client.close()
        await server.close()
        if peers.reader is not None:
            # A track whose receiver never started (no DTLS) never ends by itself.
            peers.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await peers.reader


async def connect(peers: Peers) -> int:
    """Trickle the client's candidates to the server, wait for media; return the count handed."""
    handed = await add_remote_candidates(peers.server, wire(local_fragment(peers.client)))
    await until(
        lambda: peers.client.connectionState == peers.server.connectionState == "connected",
        "both peers connected",
    )
    await peers.frames_after(5, "audio before the test")
    return handed


@asynccontextmanager
async def connected() -> AsyncIterator[Peers]:
    """Yield peers connected through trickle, with media flowing and DTLS watched."""
    async with negotiated() as peers:
        await connect(peers)
        peers.watch_dtls()
        yield peers
