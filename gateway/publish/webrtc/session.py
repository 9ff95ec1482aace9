"""One WHEP session: a peer connection sending one camera's shared encode.

A session is admitted by the registry (``Sessions``: limits per camera and in total),
holds the camera's H.264 and Opus renditions for as long as it lives (the encodes run
only while someone watches), answers the offer with a ``sendonly`` peer connection
whose senders carry ``SharedTrack``s, and ends however its peer goes: a ``DELETE``,
ICE or DTLS never completing within ``connect_timeout``, the connection failing, or
no RTCP from the peer for ``consent_timeout`` (browsers send receiver reports every
second; RFC 7675 lets consent lapse after 30 s). Every ending frees the same way, once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtp import RtcpRrPacket, RtcpSrPacket

from gateway.config import WebRTCConfig
from gateway.hub import RenditionHandle

from .net import gather_on
from .offer import announce
from .sender import FastRtp, available
from .tracks import SharedTrack, bind_sender, route_fir

log = logging.getLogger("gateway.webrtc")

NS = 1_000_000_000


def _codecs(kind: str, mime: str) -> list[Any]:
    """Return aiortc's codecs of ``kind`` of type ``mime`` with their retransmission codecs."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    return [c for c in caps if c.mimeType.lower() in (mime, f"{kind}/rtx")]


def new_tag() -> str:
    """Return a fresh entity tag (RFC 9110 §8.8.3, quoted)."""
    return f'"{secrets.token_urlsafe(12)}"'


class WhepSession:
    """A peer connection to one player, sending a camera's shared H.264 (and Opus)."""

    def __init__(
        self,
        *,
        camera: str,
        remote: str,
        config: WebRTCConfig,
        handles: list[RenditionHandle[Any]],
        on_closed: Callable[[WhepSession], None],
    ) -> None:
        """Make the session's peer connection (``handles``: the renditions it holds)."""
        #: The session's id: the last segment of its URL, unguessable.
        self.id = secrets.token_urlsafe(16)
        self.camera = camera
        self.remote = remote
        self.etag = new_tag()
        #: The peer's ICE ufrags from before its restarts: a late fragment naming one
        #: is stale, not another restart.
        self.retired_ufrags: list[str] = []
        self.config = config
        self.created_ns = time.monotonic_ns()
        self.connected_ns: int | None = None
        #: ``monotonic_ns`` of the peer's last RTCP packet (consent and liveness).
        self.heard_ns = self.created_ns
        #: The latest round-trip time aiortc measured from receiver reports, in seconds.
        self.rtt: float | None = None
        self.state = "new"
        self.close_reason: str | None = None
        #: Why it ended, as a label for ``/metrics`` (``deleted``, ``connect_timeout``...).
        self.close_cause: str | None = None
        self.tracks: list[SharedTrack] = []
        self._handles = handles
        self._on_closed = on_closed
        self._closing: asyncio.Task[None] | None = None
        ice = [
            RTCIceServer(
                urls=list(server.urls),
                username=server.username,
                credential=None if server.credential is None else server.credential.value,
            )
            for server in config.ice_servers
        ]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice))
        self.pc.on("connectionstatechange", self._state_changed)

    def add(self, track: SharedTrack) -> None:
        """Send ``track`` (before the offer is applied: it fixes the codecs offered)."""
        transceiver = self.pc.addTransceiver(track, direction="sendonly")
        mime = "video/h264" if track.kind == "video" else "audio/opus"
        transceiver.setCodecPreferences(_codecs(track.kind, mime))
        if track.kind == "audio" and not self.config.lip_sync:
            # A stream of its own (its own msid): browsers synchronise the tracks of one
            # stream by delaying the earlier one, and the camera's audio comes in parts
            # (tens of milliseconds each) while each picture is sent as it is encoded.
            transceiver.sender._stream_id = secrets.token_hex(16)
        bind_sender(transceiver.sender, track, self._rtcp)
        if available(transceiver.sender):
            FastRtp(transceiver.sender, track)
        self.tracks.append(track)

    async def answer(self, offer: str) -> str:
        """Apply ``offer`` and return the answer, with every local candidate in it."""
        pc = self.pc
        with gather_on(self.config.addresses):
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        for sender in pc.getSenders():
            route_fir(sender.transport)  # the bundle's transport, once the offer fixed it
        sdp: str = pc.localDescription.sdp
        if self.config.announce is not None:
            sdp = announce(sdp, self.config.announce)
        self.state = "connecting"
        return sdp

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_ns is None:
            self.connected_ns = self.heard_ns = time.monotonic_ns()
            self.state = "connected"
            log.info("webrtc %s: session %s connected (%s)", self.camera, self.id[:8], self.remote)
        elif state in ("failed", "closed"):
            self.close(f"connection {state}", cause=f"connection_{state}")

    async def _rtcp(self, sender: Any, packet: Any) -> None:
        self.heard_ns = time.monotonic_ns()
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket) and sender is self._rtt_sender():
            for stats in (await sender.getStats()).values():
                if stats.type == "remote-inbound-rtp" and stats.roundTripTime is not None:
                    self.rtt = stats.roundTripTime

    def _rtt_sender(self) -> Any:
        return self.pc.getSenders()[0] if self.tracks else None

    def expired(self, now_ns: int) -> tuple[str, str] | None:
        """Return (cause, reason) if the session should end now (the registry's sweep asks)."""
        if self.connected_ns is None:
            if now_ns - self.created_ns > self.config.connect_timeout * NS:
                reason = f"ICE/DTLS did not complete within {self.config.connect_timeout:g} s"
                return "connect_timeout", reason
        elif now_ns - self.heard_ns > self.config.consent_timeout * NS:
            reason = f"no RTCP from the peer for {self.config.consent_timeout:g} s"
            return "consent_expired", reason
        return None

    def close(self, reason: str, *, cause: str = "closed") -> asyncio.Task[None]:
        """End the session (idempotent) for ``reason`` (``cause``: its label); return the
        task that frees it."""
        if self._closing is None:
            self.close_reason = reason
            self.close_cause = cause
            self.state = "closed"
            self._on_closed(self)
            self._closing = asyncio.ensure_future(self._free(reason))
        return self._closing

    async def _free(self, reason: str) -> None:
        log.info("webrtc %s: session %s ended: %s", self.camera, self.id[:8], reason)
        try:
            for track in self.tracks:
                track.stop()
            await self.pc.close()
        finally:
            for handle in self._handles:
                handle.release()
            self._handles = []

    def sent(self) -> dict[str, int]:
        """Return what the session has sent: ``{video,audio}_{bytes,packets}``, requests."""
        out = {"keyframe_requests": 0}
        for track in self.tracks:
            c = track.counters
            out[f"{track.kind}_bytes"] = c.bytes
            out[f"{track.kind}_packets"] = c.packets
            out[f"{track.kind}_frames"] = c.frames
            out["keyframe_requests"] += c.keyframe_requests
        return out

    def snapshot(self) -> dict[str, object]:
        """Return the session as an ``/api`` client entry (kind ``webrtc``)."""
        now = time.monotonic_ns()
        video = next((t for t in self.tracks if t.kind == "video"), None)
        cursor = None if video is None else video.cursor
        entry: dict[str, object] = {
            "kind": "webrtc",
            "remote": self.remote,
            "session": self.id[:8],
            "state": self.state,
            "age_s": round((now - self.created_ns) / NS, 1),
            "rtt_ms": None if self.rtt is None else round(self.rtt * 1000, 1),
            "target_fps": None,
            "priority": "high",
            "delivered_fps": 0.0 if cursor is None else round(cursor.delivered_fps, 2),
            "skipped": 0 if cursor is None else cursor.skipped,
            "lag_ms": 0 if cursor is None else cursor.lag_ns // 1_000_000,
            "cuts": 0 if cursor is None else cursor.cuts,
        }
        for track in self.tracks:
            c = track.counters
            entry[track.kind] = {
                "frames": c.frames,
                "packets": c.packets,
                "bytes": c.bytes,
                "keyframe_requests": c.keyframe_requests,
            }
        return entry
