"""How WHEP sessions end on loopback, and that each ending gives back what it held.

A session holds its camera's H.264 and Opus encodes (``claims``) and a peer
connection. It ends when the player DELETEs it (at once), when ICE and DTLS never
complete (``connect_timeout``), when the peer closes its connection, or when the peer
vanishes without a word (no RTCP for ``consent_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.publish.webrtc import SESSIONS, Sessions
from gateway.publish.webrtc.session import WhepSession
from tests.publish.axis_client import Gateway, gateway

from .whep_client import make_offer, whep_player
from .whep_helpers import claims, request, silent_udp, sim_camera, until, webrtc_toml
from .whep_sdp import chromium_offer, host_candidate

OFFERS = 100
#: The default ``connect_timeout``; sessions are swept twice a second after it.
CONNECT_TIMEOUT = 10.0
CONSENT_TIMEOUT = 3.0
#: What a loaded 2-core machine may add to a timeout before the session is gone.
SLACK = 10.0


async def test_a_hundred_offers_that_never_connect_are_all_freed() -> None:
    toml = webrtc_toml(
        sim_camera(fps=5, size="320x240"),
        webrtc=f"max_sessions = {OFFERS}\nmax_sessions_per_camera = {OFFERS}\n",
    )
    async with (
        gateway(toml) as gw,
        aiohttp.ClientSession() as http,
        silent_udp() as port,
    ):
        sessions = gw.app[SESSIONS]
        media = gw.media()
        url = f"{gw.base}/whep/cam"
        # Ninety browser-like offers whose only candidate never answers a check, and
        # ten aiortc players closed without ever applying their answer.
        offers = [chromium_offer(candidates=[host_candidate(port)]) for _ in range(OFFERS - 10)]
        players = [await make_offer() for _ in range(10)]
        offers += [pc.localDescription.sdp for pc in players]
        semaphore = asyncio.Semaphore(10)

        async def post(offer: str) -> int:
            async with semaphore:
                return (await request(http, "POST", url, offer)).status

        start = time.monotonic()
        statuses = await asyncio.gather(*(post(offer) for offer in offers))
        posted = time.monotonic()
        for pc in players:
            await pc.close()
        assert statuses == [201] * OFFERS
        assert sessions.peer_connections == OFFERS
        assert claims(media) == {"h264": OFFERS, "opus": OFFERS}
        held = list(sessions.live.values())
        assert len(held) == OFFERS
        # Nothing connects; each is ended after connect_timeout, however loaded the loop.
        await until(lambda: not sessions.live, CONNECT_TIMEOUT + SLACK, "sessions ended")
        ended = time.monotonic()
        assert ended - start >= CONNECT_TIMEOUT
        assert ended - posted <= CONNECT_TIMEOUT + SLACK
        assert {s.close_reason for s in held} == {"ICE/DTLS did not complete within 10 s"}
        assert sum(sessions.ended.values()) == OFFERS
        # Every claim is given back once each session's peer connection is closed.
        await until(lambda: claims(media) == {"h264": 0, "opus": 0}, SLACK, "claims released")
        assert sessions.peer_connections == OFFERS


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    toml = webrtc_toml(
        sim_camera(fps=25, size="320x240"), webrtc=f"consent_timeout = {CONSENT_TIMEOUT}\n"
    )
    async with gateway(toml) as running:
        await running.live()
        yield running


def only_session(sessions: Sessions) -> WhepSession:
    """Return the one live session."""
    (session,) = sessions.live.values()
    return session


def cut_off(pc: Any) -> None:
    """Close the player's ICE sockets under aiortc: no DTLS alert, no RTCP, no BYE."""
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport._connection
        for protocol in connection._protocols:
            protocol.transport.close()


async def test_delete_frees_the_session_at_once(gw: Gateway) -> None:
    sessions = gw.app[SESSIONS]
    async with aiohttp.ClientSession() as http, whep_player(http, f"{gw.base}/whep/cam") as player:
        await player.wait_pictures(3)
        session = only_session(sessions)
        assert claims(gw.media()) == {"h264": 1, "opus": 1}
        reply = await request(http, "DELETE", gw.base + player.location, content_type=None)
        assert reply.status == 200
        # Answered once the peer connection is closed and the encodes released.
        assert sessions.live == {}
        assert claims(gw.media()) == {"h264": 0, "opus": 0}
        assert session.close_reason == "deleted by the player"
        assert all(track.cursor is not None and track.cursor.closed for track in session.tracks)


async def test_a_peer_that_closes_its_connection_is_gone_at_once(gw: Gateway) -> None:
    sessions = gw.app[SESSIONS]
    async with aiohttp.ClientSession() as http:
        async with whep_player(http, f"{gw.base}/whep/cam") as player:
            await player.wait_pictures(3)
            session = only_session(sessions)
        # The player's close sends a DTLS close_notify: no need to wait for consent.
        await until(lambda: not sessions.live, CONSENT_TIMEOUT + SLACK, "session ended")
        assert session.close_reason is not None
        assert session.close_reason.startswith("connection ")
        await until(lambda: claims(gw.media()) == {"h264": 0, "opus": 0}, SLACK, "released")


async def test_a_peer_that_vanishes_is_gone_after_consent_timeout(gw: Gateway) -> None:
    sessions = gw.app[SESSIONS]
    async with aiohttp.ClientSession() as http, whep_player(http, f"{gw.base}/whep/cam") as player:
        await player.wait_pictures(3)
        session = only_session(sessions)
        # Receiver reports arrive about once a second: the peer is heard from.
        heard = session.heard_ns
        await until(lambda: session.heard_ns != heard, 10, "RTCP from the player")
        cut_off(player.pc)
        vanished = time.monotonic()
        await until(lambda: not sessions.live, CONSENT_TIMEOUT + SLACK, "session ended")
        took = time.monotonic() - vanished
        # Not before the peer's last report is consent_timeout old (reports come at most
        # 1.5 s apart, RFC 3550 §6.2's randomised interval as aiortc draws it).
        assert took >= CONSENT_TIMEOUT - 1.5
        assert session.close_reason == f"no RTCP from the peer for {CONSENT_TIMEOUT:g} s"
        await until(lambda: claims(gw.media()) == {"h264": 0, "opus": 0}, SLACK, "released")


async def test_stopping_the_gateway_ends_every_session() -> None:
    toml = webrtc_toml(sim_camera(fps=25, size="320x240"))
    async with (
        aiohttp.ClientSession() as http,
        silent_udp() as port,
        contextlib.AsyncExitStack() as players,
    ):
        async with gateway(toml) as gw:
            await gw.live()
            sessions, media = gw.app[SESSIONS], gw.media()
            url = f"{gw.base}/whep/cam"
            offer = chromium_offer(candidates=[host_candidate(port)])
            assert (await request(http, "POST", url, offer)).status == 201
            # A connected player, closed only after the gateway stopped.
            player = await players.enter_async_context(whep_player(http, url, keep=False))
            await player.wait_pictures(3)
            held = list(sessions.live.values())
            assert len(held) == 2
        assert sessions.live == {}
        assert {s.close_reason for s in held} <= {
            "the gateway is stopping",
            "the camera is stopping",
        }
        assert claims(media) == {"h264": 0, "opus": 0}
