"""Tokens and the cross-site rule on loopback: expiry, scope, tamper, the token endpoint,
tokens carried through HLS playlists and WHEP Locations, never logged; CSRF."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urljoin

import aiohttp
import pytest
from aiohttp import web

from gateway.access import ACCESS, DENIALS, TokenSigner
from gateway.app import create_app
from gateway.config import parse_config
from gateway.ingest.redact import RedactingFilter
from tests.access.test_access_endpoints import KEY, USERS, basic, cameras
from tests.publish.axis_client import Gateway, gateway
from tests.publish.webrtc.whep_sdp import chromium_offer

ADMIN = basic("admin", "admin-pw")
VIEWER = basic("viewer", "viewer-pw")
NOW = 1_700_000_000.0
SDPFRAG = "application/trickle-ice-sdpfrag"


class FakeClock:
    """Unix seconds that move only when told."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def running() -> AsyncIterator[tuple[Gateway, aiohttp.ClientSession, FakeClock]]:
    """Run the two-camera gateway with users and tokens on a fake clock; wait for ``cam``."""
    clock = FakeClock()
    async with gateway(cameras(USERS)) as gw, aiohttp.ClientSession() as session:
        gw.app[ACCESS].clock = clock
        await gw.live("cam")
        yield gw, session, clock


async def issue(session: aiohttp.ClientSession, gw: Gateway, body: object) -> str:
    """Return a token from ``POST /api/tokens`` as the admin."""
    async with session.post(gw.base + "/api/tokens", json=body, headers=ADMIN) as reply:
        assert reply.status == 201, await reply.text()
        return str((await reply.json())["token"])


async def fetch(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, str, Mapping[str, str]]:
    """GET ``url``; return status, body text (media: empty) and headers."""
    async with (
        asyncio.timeout(30),
        session.get(url, headers=headers, allow_redirects=False) as reply,
    ):
        text = (
            await reply.text() if reply.content_type.startswith(("text/", "application/")) else ""
        )
        return reply.status, text, reply.headers


async def test_a_token_expires_is_scoped_and_cannot_be_tampered_with() -> None:
    async with running() as (gw, session, clock):
        token = await issue(session, gw, {"cameras": ["cam"], "ttl": 60})
        snapshot = gw.base + "/jpg/1/image.jpg"
        assert (await fetch(session, f"{snapshot}?token={token}"))[0] == 200
        # As a bearer token, for players that can set a header.
        assert (await fetch(session, snapshot, {"Authorization": f"Bearer {token}"}))[0] == 200
        # Another camera: outside the token's scope.
        status, text, _ = await fetch(session, f"{gw.base}/jpg/2/image.jpg?token={token}")
        assert (status, text) == (403, "Error: this token may not see camera 'yard'\n")
        # Viewing only: not the metrics, not issuing tokens.
        assert (await fetch(session, f"{gw.base}/metrics?token={token}"))[0] == 403
        async with session.post(f"{gw.base}/api/tokens?token={token}", json={}) as reply:
            assert reply.status == 403
        # One flipped character anywhere: refused, as a token that is not valid.
        for i in (7, len(token) // 2, len(token) - 1):
            flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
            status, text, headers = await fetch(session, f"{snapshot}?token={flipped}")
            assert status == 401
            assert re.fullmatch(r"Error: invalid token: [^\n]+\n", text), text
            assert headers["WWW-Authenticate"] == 'Bearer realm="gateway", error="invalid_token"'
        clock.now += 59
        assert (await fetch(session, f"{snapshot}?token={token}"))[0] == 200
        clock.now += 1
        status, text, headers = await fetch(session, f"{snapshot}?token={token}")
        assert (status, text) == (401, "Error: token expired\n")
        assert headers["Cache-Control"] == "no-store"
        assert gw.app[DENIALS].counts == {
            (403, "camera"): 1,
            (403, "role"): 2,
            (401, "bad_token"): 3,
            (401, "token_expired"): 1,
        }


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        (ADMIN, {"cameras": ["nope"]}, 400, "no camera 'nope'"),
        (ADMIN, {"cameras": []}, 400, "list of camera names"),
        (ADMIN, {"cameras": "cam"}, 400, "list of camera names"),
        (ADMIN, {}, 400, "list of camera names"),
        (ADMIN, {"cameras": ["cam"], "ttl": 0}, 400, '"ttl" must be an integer'),
        (ADMIN, {"cameras": ["cam"], "ttl": True}, 400, '"ttl" must be an integer'),
        (ADMIN, {"cameras": ["cam"], "user": "x"}, 400, "the body must be"),
        (ADMIN, ["cam"], 400, "the body must be"),
        (ADMIN, b"{", 400, "not JSON"),
        (ADMIN, b"x" * 5000, 413, "larger than 4096"),
        (VIEWER, {"cameras": ["cam"]}, 403, "user 'viewer' (viewer) may not issue tokens"),
        ({}, {"cameras": ["cam"]}, 401, "authentication required"),
    ],
)
async def test_the_token_endpoint_refuses_bad_requests(
    headers: dict[str, str], body: object, status: int, reason: str
) -> None:
    async with gateway(cameras(USERS)) as gw, aiohttp.ClientSession() as session:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {**headers, "Content-Type": "application/json"}
        async with session.post(gw.base + "/api/tokens", data=data, headers=sent) as reply:
            assert reply.status == status
            assert reply.headers["Cache-Control"] == "no-store"
            text = await reply.text()
            assert text.startswith("Error: ")
            assert reason in text
            assert text.count("\n") == 1


async def test_the_token_endpoint_answers_what_it_issued() -> None:
    async with running() as (gw, session, _):
        async with session.post(
            gw.base + "/api/tokens", json={"cameras": ["2", "cam", "yard"]}, headers=ADMIN
        ) as reply:
            assert reply.status == 201
            assert reply.headers["Cache-Control"] == "no-store"
            answer = await reply.json()
        assert answer.keys() == {"token", "cameras", "scope", "expires", "ttl"}
        assert answer["cameras"] == ["yard", "cam"]
        assert answer["scope"] == "view"
        assert answer["ttl"] == 3600
        assert answer["expires"] == int(NOW) + 3600
        granted = TokenSigner(KEY.encode()).verify(answer["token"], now=NOW)
        assert granted.issuer == "admin"
        # Only a JSON body: a form cannot post one without a CORS preflight.
        async with session.post(
            gw.base + "/api/tokens", data="cameras=cam", headers=ADMIN
        ) as reply:
            assert reply.status == 415


async def test_a_viewer_sees_only_its_cameras_and_nothing_upstream() -> None:
    async with running() as (gw, session, _):
        status, text, _ = await fetch(session, gw.base + "/api/cameras", VIEWER)
        assert status == 200
        (camera,) = json.loads(text)["cameras"]
        assert camera.keys() == {"name", "index", "streams"}
        assert camera["name"] == "cam"
        assert set(camera["streams"]["mjpeg"]) <= {"state", "fps_in", "resolution", "codec"}
        assert camera["streams"]["mjpeg"]["state"] == "live"
        # An operator of the same camera sees it whole.
        operator = basic("operator", "operator-pw")
        status, text, _ = await fetch(session, gw.base + "/api/cameras", operator)
        (camera,) = json.loads(text)["cameras"]
        assert {"source", "clients", "renditions", "outputs"} <= camera.keys()
        assert "last_error" in camera["streams"]["mjpeg"]
        status, text, _ = await fetch(session, gw.base + "/api/cameras", ADMIN)
        assert [c["name"] for c in json.loads(text)["cameras"]] == ["cam", "yard"]


def uris(playlist: str) -> list[str]:
    """Return every URI a playlist lists: URI lines and URI attributes."""
    found = re.findall(r'(?<=[:,])URI="([^"]*)"', playlist)
    found += [line for line in playlist.splitlines() if line and not line.startswith("#")]
    return found


async def test_hls_playlists_carry_the_token_on_every_uri(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running() as (gw, session, _):
        token = await issue(session, gw, {"cameras": ["cam"]})
        carried = f"token={token}"
        index = f"{gw.base}/hls/cam/index.m3u8?{carried}"
        status, multivariant, _ = await fetch(session, index)
        assert status == 200
        (media_uri,) = uris(multivariant)
        assert media_uri.endswith(f"/media.m3u8?{carried}")
        media_url = urljoin(index, media_uri)
        status, playlist, _ = await fetch(session, media_url)
        assert status == 200
        listed = uris(playlist)
        kinds = {re.sub(r"[0-9.]+\.", "N.", uri.split("?")[0]) for uri in listed}
        assert {"initN.mp4", "segN.m4s", "partN.m4s"} <= kinds, kinds
        assert "#EXT-X-PRELOAD-HINT" in playlist
        for uri in listed:
            assert uri.endswith(f"?{carried}"), uri
            assert (await fetch(session, urljoin(media_url, uri)))[0] == 200, uri
            # Without the token the same resource is refused.
            bare = urljoin(media_url, uri.split("?")[0])
            assert (await fetch(session, bare))[0] == 401, uri
        # A blocking reload as hls.js asks for it: its directives after the token.
        msn = max(int(n) for n in re.findall(r"seg(\d+)\.m4s", playlist))
        status, blocked, _ = await fetch(session, f"{media_url}&_HLS_msn={msn + 1}&_HLS_part=0")
        assert status == 200
        assert all(uri.endswith(f"?{carried}") for uri in uris(blocked))
        # An ended session's playlist redirects to the current one, token and all.
        stale = re.sub(r"/hls/cam/[0-9a-f]+/", "/hls/cam/0/", media_url)
        status, _, headers = await fetch(session, stale)
        assert status == 302
        assert headers["Location"].endswith(f"/media.m3u8?{carried}")
        # Without a query token the playlists name bare URIs (a CDN's origin requests).
        status, plain, _ = await fetch(session, gw.base + "/hls/cam/index.m3u8", ADMIN)
        assert "token=" not in plain
    assert caplog.records
    for record in caplog.records:
        assert "gwt1." not in record.getMessage()
        assert token not in (record.exc_text or "")


async def test_a_whep_session_made_with_a_query_token_is_ended_with_it() -> None:
    toml = cameras(USERS)
    async with gateway(toml) as gw, aiohttp.ClientSession() as session:
        await gw.live("cam")
        token = await issue(session, gw, {"cameras": ["cam"]})
        async with session.post(
            f"{gw.base}/whep/cam?token={token}",
            data=chromium_offer(),
            headers={"Content-Type": "application/sdp"},
        ) as reply:
            assert reply.status == 201, await reply.text()
            location = reply.headers["Location"]
        assert re.fullmatch(rf"/whep/cam/[^/?]+\?token={re.escape(token)}", location)
        async with session.delete(gw.base + location) as reply:
            assert reply.status == 200


async def test_cross_site_requests_with_basic_credentials_are_refused() -> None:
    async with running() as (gw, session, _):
        own = {"Origin": gw.base}
        foreign = {"Origin": "http://evil.example"}
        offer = {"Content-Type": "text/plain"}
        token = await issue(session, gw, {"cameras": ["cam"]})
        bearer = {"Authorization": f"Bearer {token}"}
        cases = [
            # (headers, method, path, expected): a foreign page with the viewer's Basic
            # credentials is refused; the gateway's own page and token holders are not.
            ({**VIEWER, **foreign, **offer}, "POST", "/whep/cam", 403),
            ({**VIEWER, "Sec-Fetch-Site": "cross-site", **offer}, "POST", "/whep/cam", 403),
            ({**VIEWER, **foreign}, "DELETE", "/whep/cam/abc", 403),
            ({**VIEWER, **foreign, "Content-Type": SDPFRAG}, "PATCH", "/whep/cam/abc", 403),
            ({**ADMIN, **foreign}, "POST", "/api/tokens", 403),
            ({**VIEWER, **own, **offer}, "POST", "/whep/cam", 415),
            ({**VIEWER, "Sec-Fetch-Site": "same-origin", **offer}, "POST", "/whep/cam", 415),
            ({**bearer, **foreign, **offer}, "POST", "/whep/cam", 415),
            ({**bearer, **foreign}, "DELETE", "/whep/cam/abc", 404),
            ({**foreign, **offer}, "POST", f"/whep/cam?token={token}", 415),
            ({**VIEWER, **foreign}, "GET", "/jpg/1/image.jpg", 200),
        ]
        for headers, method, path, expected in cases:
            body = json.dumps({"cameras": ["cam"]}) if path == "/api/tokens" else "x"
            sent = (
                {**headers, "Content-Type": "application/json"}
                if path == "/api/tokens"
                else headers
            )
            async with session.request(method, gw.base + path, headers=sent, data=body) as reply:
                text = await reply.text(errors="replace")
                assert reply.status == expected, (headers, method, path, text)
                if path.startswith("/whep/"):
                    # Readable by a player on another origin, refusal included.
                    assert reply.headers["Access-Control-Allow-Origin"] == "*"
                if expected == 403:
                    assert text == (
                        "Error: cross-site request refused: send a bearer token,"
                        " or use the gateway's own page\n"
                    )
        async with session.post(
            gw.base + "/api/tokens", json={"cameras": ["cam"]}, headers={**ADMIN, **own}
        ) as reply:
            assert reply.status == 201
        assert gw.app[DENIALS].counts == {(403, "cross_site"): 5}


async def test_access_logs_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp's access log writes request lines (the query, a token in it): the filter
    the command line puts on the log handlers masks it."""
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RedactingFilter())
    app = create_app(parse_config(cameras(USERS), {}))
    runner = web.AppRunner(app, access_log=logging.getLogger("aiohttp.access"))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession() as session:
            gw = Gateway(app, base, runner.addresses[0][1])
            await gw.live("cam")
            token = await issue(session, gw, {"cameras": ["cam"]})
            assert (await fetch(session, f"{base}/jpg/1/image.jpg?token={token}"))[0] == 200
            assert (await fetch(session, f"{base}/jpg/2/image.jpg?token={token}"))[0] == 403
            referer = {"Referer": f"{base}/?token={token}"}
            assert (await fetch(session, f"{base}/static/app.js", referer))[0] == 200
    finally:
        await runner.cleanup()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any("/jpg/1/image.jpg?token=***" in line for line in lines), lines
    assert not any(token in r.getMessage() for r in caplog.records)
    assert token not in caplog.text
