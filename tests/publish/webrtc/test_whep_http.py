"""WHEP's HTTP side on loopback: every status code of the contract, and its headers.

Nothing here completes ICE: the offers are browser-like SDP (``whep_sdp``) posted by a
plain HTTP client. Every refused request is also checked to have cost no peer
connection (``Sessions.peer_connections`` does not move), the requirement that keeps
a flood of bad offers from allocating sockets and certificates.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from gateway.publish.webrtc import SESSIONS, Sessions
from gateway.publish.webrtc.offer import MAX_OFFER_BYTES
from tests.app.stream_client import api_camera
from tests.publish.axis_client import Gateway, gateway

from .whep_helpers import (
    SDP,
    Reply,
    TurnStub,
    chunked,
    claims,
    raw_post,
    request,
    sim_camera,
    stun_server,
    turn_server,
    webrtc_toml,
)
from .whep_sdp import CRLF, VP8, VP9, chromium_offer, firefox_offer, h264, many_sections

#: The TURN server's credential (quotes: the Link header escapes them); it must never
#: reach a log line.
TURN_SECRET = 'tUrN-"s3cret"-value'
TURN_USER = "gw-user"
PUBLIC = "203.0.113.7"
CORS_ORIGIN = "Access-Control-Allow-Origin"


@dataclass
class Setup:
    """The running gateway, an HTTP client, and the WHEP registry."""

    gw: Gateway
    http: aiohttp.ClientSession
    sessions: Sessions
    stun_port: int
    turn_port: int
    turn: TurnStub

    def url(self, camera: str = "cam") -> str:
        """Return the WHEP endpoint of ``camera``."""
        return f"{self.gw.base}/whep/{camera}"

    async def post(
        self, body: str | bytes, camera: str = "cam", *, content_type: str | None = SDP
    ) -> Reply:
        """POST ``body`` as an offer (with ``content_type``; None: no Content-Type)."""
        return await request(self.http, "POST", self.url(camera), body, content_type=content_type)


def config(stun_port: int, turn_port: int) -> str:
    """Return two cheap cameras, STUN and TURN servers, small limits, an announced IP."""
    webrtc = (
        "max_sessions = 3\nmax_sessions_per_camera = 2\n"
        f'announce = "{PUBLIC}"\n'
        f'ice_servers = ["stun:127.0.0.1:{stun_port}", '
        f'{{urls = ["turn:127.0.0.1:{turn_port}?transport=tcp"], '
        f"username = {TURN_USER!r}, credential = '{TURN_SECRET}'}}]\n"
    )
    cameras = (
        sim_camera("cam", fps=5, size="320x240", audio=True),
        sim_camera("cam2", fps=5, size="320x240", audio=False),
    )
    return webrtc_toml(*cameras, webrtc=webrtc)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    # A STUN and a TURN server answer on loopback, so gathering is quick: the TURN
    # server asks for the credential, checks it, and allocates nothing.
    async with (
        stun_server() as (stun_port, _),
        turn_server(TURN_SECRET) as (turn_port, turn),
        gateway(config(stun_port, turn_port)) as gw,
        aiohttp.ClientSession() as http,
    ):
        yield Setup(gw, http, gw.app[SESSIONS], stun_port, turn_port, turn)


def assert_error(reply: Reply, status: int, reason: str) -> None:
    """Assert a WHEP error: the status, one ``Error:`` line of text, CORS, not cached."""
    assert reply.status == status, (reply.status, reply.text)
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert re.fullmatch(r"Error: [^\n]+\n", reply.text), reply.text
    assert reason in reply.text, reply.text
    assert reply.headers[CORS_ORIGIN] == "*"
    assert reply.headers["Cache-Control"] == "no-store"


async def test_post_answers_201_with_the_session_headers(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reply = await setup.post(chromium_offer())
    assert reply.status == 201, reply.text
    headers = reply.headers
    assert headers["Content-Type"] == SDP
    assert re.fullmatch(r"/whep/cam/[A-Za-z0-9_-]{16,}", headers["Location"])
    assert re.fullmatch(r'"[^"]+"', headers["ETag"])
    assert headers["Accept-Patch"] == "application/trickle-ice-sdpfrag"
    assert headers[CORS_ORIGIN] == "*"
    assert "Location" in headers["Access-Control-Expose-Headers"]
    # One Link per ICE server URL (RFC 9725 §4.6), the TURN one with its credential.
    stun, turn = reply.links
    assert stun == f'<stun:127.0.0.1:{setup.stun_port}>; rel="ice-server"'
    assert turn.startswith(f'<turn:127.0.0.1:{setup.turn_port}?transport=tcp>; rel="ice-server"')
    assert f'username="{TURN_USER}"' in turn
    assert 'credential="tUrN-\\"s3cret\\"-value"' in turn
    assert 'credential-type="password"' in turn
    # The answer: sendonly H.264 (the offer's first Constrained-Baseline-compatible
    # mode-1 type) and Opus, every candidate in it (no trickle), the public IP too.
    answer = reply.text
    video, audio = answer.split("m=")[1:]
    assert video.startswith("video ")
    assert "a=sendonly" in video
    assert "a=rtpmap:102 H264/90000" in video
    assert "VP8" not in video
    assert audio.startswith("audio ")
    assert "a=sendonly" in audio
    assert "a=rtpmap:111 opus/48000/2" in audio
    assert re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host", answer)
    assert re.search(rf"a=candidate:\S+ 1 udp \d+ {re.escape(PUBLIC)} \d+ typ host", answer)
    assert "a=end-of-candidates" in answer
    assert len(setup.sessions.live) == 1
    assert setup.sessions.peer_connections == 1
    # The gateway's peer connection used the credential (the TURN server checked it);
    # it is handed to players, and no log line and no /api figure has it.
    assert set(setup.turn.authenticated) == {TURN_USER}
    camera = await api_camera(setup.gw)
    assert TURN_SECRET not in str(camera)
    assert "s3cret" not in caplog.text
    assert any("answered" in r.getMessage() for r in caplog.records)


async def test_firefox_offer_is_answered(setup: Setup) -> None:
    reply = await setup.post(firefox_offer())
    assert reply.status == 201, reply.text
    video, audio = reply.text.split("m=")[1:]
    assert "a=rtpmap:126 H264/90000" in video
    assert "a=rtpmap:109 opus/48000/2" in audio


async def test_a_camera_without_audio_answers_video_only(setup: Setup) -> None:
    reply = await setup.post(chromium_offer(), camera="cam2")
    assert reply.status == 201, reply.text
    video, audio = reply.text.split("m=")[1:]
    assert "a=sendonly" in video
    # The audio section is declined: port 0 or inactive (RFC 8829 §5.3.1).
    assert audio.startswith("audio 0 ") or "a=inactive" in audio
    (session,) = setup.sessions.live.values()
    assert [t.kind for t in session.tracks] == ["video"]


async def test_delete_ends_the_session_then_404(setup: Setup) -> None:
    reply = await setup.post(chromium_offer())
    location = setup.gw.base + reply.headers["Location"]
    deleted = await request(setup.http, "DELETE", location, content_type=None)
    assert deleted.status == 200
    assert deleted.headers[CORS_ORIGIN] == "*"
    assert setup.sessions.live == {}
    assert setup.sessions.ended == {"deleted": 1}
    again = await request(setup.http, "DELETE", location, content_type=None)
    assert_error(again, 404, "no such WHEP session")
    # A session is found under its own camera only.
    reply = await setup.post(chromium_offer())
    session_id = reply.headers["Location"].rsplit("/", 1)[1]
    other = await request(
        setup.http, "DELETE", f"{setup.url('cam2')}/{session_id}", content_type=None
    )
    assert_error(other, 404, "no such WHEP session")
    assert len(setup.sessions.live) == 1


async def test_unknown_camera_is_404(setup: Setup) -> None:
    assert_error(await setup.post(chromium_offer(), camera="nope"), 404, "no camera 'nope'")
    # Judged before the body: a bad offer to a missing camera is still a 404.
    assert_error(await setup.post(b"garbage", camera="nope"), 404, "no camera")
    assert setup.sessions.refused == {404: 2}
    assert setup.sessions.peer_connections == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json", "application/octet-stream", None]
)
async def test_wrong_content_type_is_415(setup: Setup, content_type: str | None) -> None:
    reply = await setup.post(chromium_offer(), content_type=content_type)
    assert_error(reply, 415, "Content-Type must be application/sdp")
    assert setup.sessions.peer_connections == 0


async def test_content_type_parameters_are_allowed(setup: Setup) -> None:
    reply = await setup.post(chromium_offer(), content_type="application/sdp; charset=utf-8")
    assert reply.status == 201, reply.text


TOO_LARGE = f"Error: offer is larger than {MAX_OFFER_BYTES} bytes\n".encode()
CHUNKED = f"Content-Type: {SDP}\r\nTransfer-Encoding: chunked\r\n"


async def test_oversized_offers_are_413(setup: Setup) -> None:
    port = setup.gw.port
    big = b"v=0\r\n" + b"a=x:" + b"y" * 2**20 + b"\r\n"
    # Declared too large: refused on the header, the body never read.
    head = f"Content-Type: {SDP}\r\nContent-Length: {len(big)}\r\n"
    assert await raw_post(port, "/whep/cam", head, [big]) == (413, TOO_LARGE)
    # Chunked: refused once more than the bound arrived, however it trickles in (the
    # first 1000-byte chunk arrives alone; the rest, 1 MB in 1000-byte chunks, later).
    body = chunked(big, 1000)
    parts = [body[:1006], body[1006:]]
    assert await raw_post(port, "/whep/cam", CHUNKED, parts, pause=0.2) == (413, TOO_LARGE)
    assert setup.sessions.refused == {413: 2}
    assert setup.sessions.peer_connections == 0


@pytest.mark.parametrize("encoding", ["chunked", "length"])
async def test_an_offer_arriving_in_parts_is_read_whole(setup: Setup, encoding: str) -> None:
    offer = chromium_offer().encode()
    if encoding == "chunked":
        head, body = CHUNKED, chunked(offer, 100)
    else:
        head, body = f"Content-Type: {SDP}\r\nContent-Length: {len(offer)}\r\n", offer
    # A slow client: the server sees the first part alone, the rest 0.2 s later.
    status, answer = await raw_post(
        setup.gw.port, "/whep/cam", head, [body[:700], body[700:]], pause=0.2
    )
    assert status == 201, answer


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"garbage", "not an SDP offer", id="garbage"),
        pytest.param(b"", "not an SDP offer", id="empty"),
        pytest.param(b"v=0\r\n\xff\xfe\r\n", "not UTF-8", id="not-utf8"),
        pytest.param(many_sections(1000).encode(), "more than 16 media sections", id="1000-m"),
        pytest.param(chromium_offer(video=(VP8, *VP9)).encode(), "receives no H.264", id="no-h264"),
        pytest.param(
            chromium_offer(video=(h264(108, "42e01f", 0),)).encode(), "no H.264", id="mode-0"
        ),
        pytest.param(
            chromium_offer(video_direction="sendonly").encode(), "no H.264", id="sendonly"
        ),
        pytest.param(chromium_offer(fingerprint_value=None).encode(), "fingerprint", id="no-fp"),
    ],
)
async def test_bad_offers_are_400(setup: Setup, body: bytes, reason: str) -> None:
    assert_error(await setup.post(body), 400, reason)
    assert setup.sessions.refused == {400: 1}
    assert setup.sessions.peer_connections == 0


def _without(offer: str, prefix: str) -> str:
    return CRLF.join(line for line in offer.split(CRLF) if not line.startswith(prefix))


@pytest.mark.parametrize(
    "offer",
    [
        pytest.param(_without(chromium_offer(), "a=setup:"), id="no-dtls-role"),
        pytest.param(
            chromium_offer().replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus"),
            id="rtpmap-without-clock",
        ),
    ],
)
async def test_offers_that_only_aiortc_refuses_are_400_and_freed(setup: Setup, offer: str) -> None:
    # Past the text checks, aiortc's parser or negotiation refuses them (aiortc 1.16
    # raises AttributeError and IndexError): the session it was given is freed at once.
    assert_error(await setup.post(offer), 400, "offer rejected: ")
    assert setup.sessions.peer_connections == 1
    assert setup.sessions.live == {}
    assert claims(setup.gw.media()) == {"h264": 0, "opus": 0}


async def test_session_limits_are_503(setup: Setup) -> None:
    sessions = setup.sessions
    for _ in range(2):
        assert (await setup.post(chromium_offer())).status == 201
    assert_error(await setup.post(chromium_offer()), 503, "camera cam has 2 WebRTC sessions")
    assert (await setup.post(chromium_offer(), camera="cam2")).status == 201
    assert_error(await setup.post(chromium_offer(), camera="cam2"), 503, "the gateway has 3 WebRTC")
    assert sessions.refused == {503: 2}
    assert sessions.peer_connections == 3
    # A session that ends makes room.
    (first, *_) = sessions.live.values()
    await first.close("deleted by the test")
    assert (await setup.post(chromium_offer(), camera=first.camera)).status == 201


async def test_options_says_what_the_endpoint_takes(setup: Setup) -> None:
    for url in (setup.url(), setup.url() + "/any-session"):
        reply = await request(setup.http, "OPTIONS", url, content_type=None)
        assert reply.status == 204
        assert reply.headers["Accept-Post"] == SDP
        assert reply.headers[CORS_ORIGIN] == "*"
        for method in ("POST", "PATCH", "DELETE"):
            assert method in reply.headers["Access-Control-Allow-Methods"]
        for header in ("Content-Type", "Authorization", "If-Match"):
            assert header in reply.headers["Access-Control-Allow-Headers"]
        for header in ("Location", "ETag", "Link", "Accept-Patch"):
            assert header in reply.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("HEAD", ""),
        ("PUT", ""),
        ("GET", "/session"),
        ("HEAD", "/session"),
        ("POST", "/session"),
        ("PUT", "/session"),
    ],
)
async def test_other_methods_are_405(setup: Setup, method: str, path: str) -> None:
    reply = await request(setup.http, method, setup.url() + path, content_type=None)
    assert reply.status == 405
    assert reply.headers[CORS_ORIGIN] == "*"
    allowed = {m.strip() for m in reply.headers["Allow"].split(",")}
    assert method not in allowed
    assert allowed >= ({"POST", "OPTIONS"} if not path else {"DELETE", "PATCH", "OPTIONS"})
    if method != "HEAD":
        assert re.fullmatch(r"Error: [^\n]+\n", reply.text), reply.text
    assert setup.sessions.peer_connections == 0


async def test_with_users_options_needs_no_credentials_but_post_does() -> None:
    users = '[[users]]\nname = "viewer"\npassword = "pw"\n'
    async with (
        gateway(webrtc_toml(sim_camera(fps=5, size="320x240"), extra=users)) as gw,
        aiohttp.ClientSession() as http,
    ):
        url = f"{gw.base}/whep/cam"
        preflight = await request(http, "OPTIONS", url, content_type=None)
        assert preflight.status == 204
        assert preflight.headers["Accept-Post"] == SDP
        anonymous = await request(http, "POST", url, chromium_offer())
        assert anonymous.status == 401
        # Readable by a player on another origin, which learns it has to log in.
        assert anonymous.headers[CORS_ORIGIN] == "*"
        assert "Authorization" in anonymous.headers["Access-Control-Allow-Headers"]
        assert gw.app[SESSIONS].peer_connections == 0
        token = base64.b64encode(b"viewer:pw").decode()
        signed = await request(
            http, "POST", url, chromium_offer(), headers={"Authorization": f"Basic {token}"}
        )
        assert signed.status == 201, signed.text
