"""PLI and FIR from a WHEP player reach the shared encode, rate-limited there.

A player's Picture Loss Indication (RFC 4585 §6.3.1) or Full Intra Request (RFC 5104
§4.3.1) asks the camera's one encode for an IDR: it comes on the next picture (within
one frame interval), and a burst of requests inside the encode's rate-limit window
(``KeyframeGate``, 0.5 s) makes one IDR, not one each. The camera's own keyframe
interval is set long so that every IDR seen here is a requested one.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiortc.rtp import RTCP_PSFB_FIR, RtcpPsfbPacket

from gateway.hub import Ring
from gateway.publish.webrtc import SESSIONS
from gateway.transcode.encode import MIN_KEYFRAME_INTERVAL, H264Rendition, h264_key
from tests.app.stream_client import api_camera
from tests.publish.axis_client import Gateway, gateway

from .whep_client import Player, answer_ssrcs, whep_player
from .whep_helpers import sim_camera, until, webrtc_toml

FPS = 25
#: Long enough that no periodic IDR falls inside the test.
KEYFRAME_SECONDS = 60


@dataclass
class Request:
    """A keyframe request as the encode's ring saw it."""

    #: Loop time when it arrived.
    at: float
    #: The ring's next sequence number then: the first frame that could answer it.
    next_seq: int
    #: True if the rate limit let it through.
    granted: bool


@dataclass
class Spy:
    """Every keyframe request the encode received."""

    requests: list[Request] = field(default_factory=list)


def spy_on(rendition: H264Rendition) -> Spy:
    """Record each keyframe request the rendition's ring passes on."""
    spy = Spy()
    ring = rendition.ring
    original = ring.request_keyframe
    loop = asyncio.get_running_loop()

    def request_keyframe() -> None:
        granted = rendition.gate.granted
        at, next_seq = loop.time(), ring.next_seq
        original()
        spy.requests.append(Request(at, next_seq, rendition.gate.granted > granted))

    ring.request_keyframe = request_keyframe  # type: ignore[method-assign]
    return spy


def cuts(ring: Ring, start: int) -> list[int]:
    """Return the sequence numbers of the IDRs in the ring from ``start`` on."""
    frames = (ring.get(seq) for seq in range(start, ring.next_seq))
    return [f.seq for f in frames if f is not None and f.keyframe]


async def send_fir(player: Player, media_ssrc: int, number: int) -> None:
    """Send a Full Intra Request for ``media_ssrc`` as RFC 5104 §4.3.1.2 lays it out."""
    receiver = player.receiver("video")
    sender_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc
    # The header's media source SSRC is 0; the FCI names the stream and a sequence number.
    fci = struct.pack("!IB3x", media_ssrc, number & 0xFF)
    packet = RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=sender_ssrc, media_ssrc=0, fci=fci)
    await receiver._send_rtcp(packet)


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    camera = sim_camera(
        fps=FPS,
        size="320x240",
        audio=False,
        extra=f"[cameras.h264]\nkeyframe_seconds = {KEYFRAME_SECONDS}\n",
    )
    async with gateway(webrtc_toml(camera)) as running:
        await running.live()
        yield running


async def test_pli_bursts_and_fir_make_one_idr_each_within_a_frame(gw: Gateway) -> None:
    loop = asyncio.get_running_loop()
    async with (
        aiohttp.ClientSession() as http,
        whep_player(http, f"{gw.base}/whep/cam", audio=False, keep=False) as player,
    ):
        await player.wait_pictures(5)
        rendition = gw.media().renditions.get(h264_key())
        assert rendition is not None
        ring = rendition.ring
        spy = spy_on(rendition)
        # Count the player's own PLIs too (aiortc sends one when a picture is lost).
        receiver = player.receiver("video")
        sent: list[int] = []
        original_pli = receiver._send_rtcp_pli

        async def send_pli(ssrc: int) -> None:
            sent.append(ssrc)
            await original_pli(ssrc)

        receiver._send_rtcp_pli = send_pli
        (session,) = gw.app[SESSIONS].live.values()
        (video,) = session.tracks
        asked_before = video.counters.keyframe_requests
        forced_before = rendition.pipeline.counters.keyframes_forced
        ssrc = answer_ssrcs(player.answer)["video"]

        # A burst of five PLIs, sent back to back: one window, one IDR.
        for _ in range(5):
            await receiver._send_rtcp_pli(ssrc)
        await until(lambda: len(spy.requests) >= len(sent), 10, "PLIs at the encode")
        burst = list(spy.requests)
        assert burst[-1].at - burst[0].at < MIN_KEYFRAME_INTERVAL, "the burst was spread out"
        assert burst[0].granted
        assert sum(r.granted for r in burst) == 1
        first = burst[0].next_seq
        await until(lambda: ring.next_seq >= first + 2, 10, "two more frames")
        assert cuts(ring, first)[0] in (first, first + 1), "IDR within one frame interval"
        assert rendition.pipeline.counters.keyframes_forced == forced_before + 1
        # Past the window, a FIR (with the header's media SSRC 0, as RFC 5104 says).
        await asyncio.sleep(max(0.0, burst[0].at + MIN_KEYFRAME_INTERVAL - loop.time()) + 0.05)
        await send_fir(player, ssrc, 1)
        await until(lambda: len(spy.requests) > len(burst), 10, "FIR at the encode")
        fir = spy.requests[len(burst)]
        assert fir.granted
        await until(lambda: ring.next_seq >= fir.next_seq + 2, 10, "two more frames")
        idrs = cuts(ring, first)
        assert len(idrs) == 2, "one IDR for the burst, one for the FIR"
        assert idrs[1] in (fir.next_seq, fir.next_seq + 1), "IDR within one frame interval"
        assert rendition.pipeline.counters.keyframes_forced == forced_before + 2
        # /api counts every request the session received, granted or not: each PLI the
        # player sent (ours and any of its own) and the FIR.
        assert len(spy.requests) == len(sent) + 1
        camera = await api_camera(gw)
        (entry,) = [c for c in camera["clients"] if c["kind"] == "webrtc"]
        assert entry["video"]["keyframe_requests"] == asked_before + len(spy.requests)
        (h264,) = [e for e in camera["renditions"] if e["kind"] == "h264"]
        assert h264["keyframes_forced"] == forced_before + 2
        assert h264["keyframes_rate_limited"] >= 4
        assert h264["keyframes_requested"] >= len(spy.requests)
