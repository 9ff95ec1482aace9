"""What the WebRTC benchmark's aiortc peers share: loopback-only ICE, codec choice, WHEP.

Everything in the benchmark runs on 127.0.0.1. aioice never gathers a host candidate
there (``aioice.ice.get_host_addresses`` skips it), so a peer connection set up inside
``loopback_gathering()`` gathers on 127.0.0.1 alone: through the gateway's own
``gather_on`` where this checkout has it, else by replacing aioice's address lookup for
the whole process (the benchmark's own processes only ever talk over loopback). Peer
connections are made without ICE servers: aiortc's default is a public STUN server.
"""

from __future__ import annotations

import contextlib
import importlib
from contextlib import AbstractContextManager
from typing import Any

import aioice.ice
from aiohttp import ClientSession
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from yarl import URL

LOOPBACK = "127.0.0.1"
#: The codecs the benchmark's peers offer and answer: what the gateway sends.
VIDEO_MIME = "video/H264"
AUDIO_MIME = "audio/opus"


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """Stand in for ``aioice.ice.get_host_addresses``: 127.0.0.1, whatever is asked."""
    return [LOOPBACK]


def loopback_gathering() -> AbstractContextManager[Any]:
    """Return a context in which aiortc gathers host candidates on 127.0.0.1 only."""
    try:
        net = importlib.import_module("gateway.publish.webrtc.net")
    except ImportError:
        aioice.ice.get_host_addresses = _loopback_addresses
        return contextlib.nullcontext()
    found: AbstractContextManager[Any] = net.gather_on([LOOPBACK])
    return found


def peer_connection() -> RTCPeerConnection:
    """Return a peer connection with no ICE servers (host candidates only)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def prefer(transceiver: RTCRtpTransceiver) -> None:
    """Limit a transceiver to H.264 (video, with its RTX) or Opus (audio)."""
    mime = VIDEO_MIME if transceiver.kind == "video" else AUDIO_MIME
    codecs = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    chosen = [c for c in codecs if c.mimeType == mime]
    chosen += [c for c in codecs if c.mimeType.endswith("/rtx")]
    transceiver.setCodecPreferences(chosen)


class WhepError(Exception):
    """A WHEP request answered with something other than what the contract says."""


async def whep_offer(http: ClientSession, url: str, offer: str) -> tuple[str, str]:
    """POST an SDP offer to a WHEP endpoint; return the answer and the session's URL."""
    async with http.post(url, data=offer, headers={"Content-Type": "application/sdp"}) as answer:
        body = await answer.text()
        if answer.status != 201:
            raise WhepError(f"{answer.status}: {body.strip()[:120]}")
        location = answer.headers.get("Location")
        if not location:
            raise WhepError("201 without a Location")
        return body, str(answer.url.join(URL(location)))


async def whep_delete(http: ClientSession, session_url: str) -> int:
    """DELETE a WHEP session; return the status."""
    async with http.delete(session_url) as answer:
        await answer.read()
        return answer.status
