"""WHEP PATCH against the gateway: trickled candidates, ICE restart, and its preconditions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiortc import RTCSessionDescription

from gateway.publish.webrtc import SESSIONS
from gateway.publish.webrtc.ice import begin_ice_restart, finish_ice_restart, local_fragment
from gateway.publish.webrtc.sdpfrag import parse_sdpfrag
from tests.publish.axis_client import Gateway, camera_toml, gateway
from tests.publish.webrtc.peers import strip_candidates, until
from tests.publish.webrtc.whep_client import make_offer

TOML = '[webrtc]\naddresses = ["127.0.0.1"]\n' + camera_toml()
FRAG = "application/trickle-ice-sdpfrag"
log = logging.getLogger(__name__)


@asynccontextmanager
async def trickling() -> AsyncIterator[tuple[Gateway, aiohttp.ClientSession, Any, str, str]]:
    """Yield a gateway, a client whose offer carried no candidates, its session URL and ETag."""
    async with gateway(TOML) as gw, aiohttp.ClientSession() as http:
        pc = await make_offer(audio=False)
        pictures: list[object] = []
        readers: list[asyncio.Task[None]] = []

        @pc.on("track")
        def on_track(track: Any) -> None:
            async def read() -> None:
                while True:
                    pictures.append(await track.recv())

            readers.append(asyncio.ensure_future(read()))

        offer = strip_candidates(pc.localDescription.sdp)
        async with http.post(
            gw.base + "/whep/cam", data=offer, headers={"Content-Type": "application/sdp"}
        ) as resp:
            assert resp.status == 201, await resp.text()
            answer = await resp.text()
            url, etag = gw.base + resp.headers["Location"], resp.headers["ETag"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        pc.pictures = pictures  # type: ignore[attr-defined]
        try:
            yield gw, http, pc, url, etag
        finally:
            for reader in readers:
                reader.cancel()
            await pc.close()


def _session(gw: Gateway) -> Any:
    (session,) = gw.app[SESSIONS].live.values()
    return session


async def test_trickled_candidates_connect_a_session_whose_offer_had_none() -> None:
    async with trickling() as (gw, http, pc, url, etag):
        session = _session(gw)
        await until(lambda: session.pc.iceConnectionState == "checking", "ICE checking", 10)
        assert session.connected_ns is None
        frag = local_fragment(pc).to_text()
        async with http.patch(
            url, data=frag, headers={"Content-Type": FRAG, "If-Match": etag}
        ) as resp:
            assert resp.status == 204, await resp.text()
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
        await until(lambda: session.state == "connected", "the session to connect", 15)
        await until(lambda: len(pc.pictures) >= 5, "pictures", 15)


async def test_patch_preconditions() -> None:
    async with trickling() as (gw, http, pc, url, etag):
        frag = local_fragment(pc).to_text()
        cases = [
            ({"Content-Type": FRAG}, frag, 428),
            ({"Content-Type": FRAG, "If-Match": '"stale"'}, frag, 412),
            ({"Content-Type": "application/sdp", "If-Match": etag}, frag, 415),
            ({"Content-Type": FRAG, "If-Match": etag}, "garbage\r\n", 400),
            ({"Content-Type": FRAG, "If-Match": etag}, "a=x\r\n" * 10000, 413),
        ]
        for headers, body, status in cases:
            async with http.patch(url, data=body, headers=headers) as resp:
                text = await resp.text()
                assert resp.status == status, (headers, text)
                assert text.startswith("Error: ")
                assert text.count("\n") == 1
        async with http.patch(
            url + "x", data=frag, headers={"Content-Type": FRAG, "If-Match": etag}
        ) as resp:
            assert resp.status == 404
        refused = gw.app[SESSIONS].refused
        assert {s: refused.get(s, 0) for s in (400, 404, 412, 413, 415, 428)} == dict.fromkeys(
            (400, 404, 412, 413, 415, 428), 1
        )


async def test_ice_restart_answers_a_new_fragment_and_etag_and_media_goes_on() -> None:
    async with trickling() as (gw, http, pc, url, etag):
        session = _session(gw)
        async with http.patch(
            url,
            data=local_fragment(pc).to_text(),
            headers={"Content-Type": FRAG, "If-Match": etag},
        ) as resp:
            assert resp.status == 204
        await until(lambda: len(pc.pictures) >= 5, "pictures before the restart", 15)
        old_local = local_fragment(session.pc).credentials()
        restart = begin_ice_restart(pc)
        async with http.patch(
            url, data=restart.to_text(), headers={"Content-Type": FRAG, "If-Match": "*"}
        ) as resp:
            body = await resp.text()
            assert resp.status == 200, body
            assert resp.content_type == FRAG
            new_etag = resp.headers["ETag"]
        assert new_etag != etag
        answer = parse_sdpfrag(body)
        assert answer.credentials()[0] not in (None, old_local[0])
        await finish_ice_restart(pc, answer)
        before = len(pc.pictures)
        await until(lambda: len(pc.pictures) >= before + 25, "pictures after the restart", 15)
        assert session.state == "connected"
        # The old tag is stale now; the new one trickles.
        async with http.patch(
            url, data=restart.to_text(), headers={"Content-Type": FRAG, "If-Match": etag}
        ) as resp:
            assert resp.status == 412
        async with http.patch(
            url, data=restart.to_text(), headers={"Content-Type": FRAG, "If-Match": new_etag}
        ) as resp:
            assert resp.status == 204, await resp.text()
