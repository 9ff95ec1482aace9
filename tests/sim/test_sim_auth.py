"""Basic (RFC 7617) and Digest (RFC 7616) auth of the simulator, over real sockets."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.sim import SimOptions, SimServer
from gateway.sim.auth import Authenticator, parse_auth_params

Fetch = Callable[..., Awaitable[Any]]
TARGET = "/axis-cgi/mjpg/video.cgi?nbrofframes=1"
HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def digest_header(
    challenge: str, password: str, nc: int, *, uri: str = TARGET, user: str = "root"
) -> str:
    params = parse_auth_params(challenge.removeprefix("Digest "))
    algorithm = params["algorithm"]

    def h(text: str) -> str:
        return HASHES[algorithm](text.encode()).hexdigest()

    cnonce = secrets.token_hex(8)
    ha1, ha2 = h(f"{user}:{params['realm']}:{password}"), h(f"GET:{uri}")
    response = h(f"{ha1}:{params['nonce']}:{nc:08x}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", '
        f'uri="{uri}", algorithm={algorithm}, response="{response}", qop=auth, '
        f'nc={nc:08x}, cnonce="{cnonce}", opaque="{params["opaque"]}"'
    )


async def challenges(raw: Fetch, url: str) -> list[str]:
    """Return the WWW-Authenticate values of an unauthenticated request, in order."""
    host, port = url[7:].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {TARGET} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head = (await reader.read()).partition(b"\r\n\r\n")[0].decode()
    writer.close()
    assert head.startswith("HTTP/1.1 401")
    prefix = "www-authenticate: "
    return [line[len(prefix) :] for line in head.split("\r\n") if line.lower().startswith(prefix)]


@pytest.fixture
async def digest_sim() -> AsyncIterator[SimServer]:
    server = SimServer(
        SimOptions(size=(160, 120), auth="digest", user=("root", "pass"), nonce_ttl=0.5)
    )
    await server.start()
    yield server
    await server.stop()


async def test_basic(raw: Fetch) -> None:
    server = SimServer(SimOptions(size=(160, 120), auth="basic", user=("root", "pa:ss")))
    await server.start()
    try:
        missing = await raw(server.url, TARGET)
        good = base64.b64encode(b"root:pa:ss").decode()
        ok = await raw(server.url, TARGET, headers={"Authorization": f"Basic {good}"})
        bad = base64.b64encode(b"root:nope").decode()
        wrong = await raw(server.url, TARGET, headers={"Authorization": f"Basic {bad}"})
        junk = await raw(server.url, TARGET, headers={"Authorization": "Basic !!"})
    finally:
        await server.stop()
    assert missing.status == 401
    assert missing.headers["www-authenticate"] == 'Basic realm="AXIS_SIM", charset="UTF-8"'
    assert ok.status == 200
    assert ok.body.count(b"Content-Type: image/jpeg") == 1
    assert (wrong.status, junk.status) == (401, 401)


async def test_digest_offers_sha256_then_md5(digest_sim: SimServer, raw: Fetch) -> None:
    offered = await challenges(raw, digest_sim.url)
    assert [parse_auth_params(c[7:])["algorithm"] for c in offered] == ["SHA-256", "MD5"]
    for challenge in offered:
        params = parse_auth_params(challenge[7:])
        assert challenge.startswith("Digest ")
        assert (params["qop"], params["realm"]) == ("auth", "AXIS_SIM")
        assert "stale" not in params


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
async def test_digest_right_and_wrong_password(
    digest_sim: SimServer, raw: Fetch, algorithm: str
) -> None:
    offered = await challenges(raw, digest_sim.url)
    challenge = next(c for c in offered if f"algorithm={algorithm}," in c)
    good = await raw(
        digest_sim.url, TARGET, headers={"Authorization": digest_header(challenge, "pass", 1)}
    )
    assert good.status == 200
    assert good.body.count(b"Content-Type: image/jpeg") == 1
    # The same nonce again with the next nc is accepted; a replayed nc is not.
    again = await raw(
        digest_sim.url, TARGET, headers={"Authorization": digest_header(challenge, "pass", 2)}
    )
    assert again.status == 200
    replay = await raw(
        digest_sim.url, TARGET, headers={"Authorization": digest_header(challenge, "pass", 2)}
    )
    assert replay.status == 401
    wrong = await raw(
        digest_sim.url, TARGET, headers={"Authorization": digest_header(challenge, "nope", 3)}
    )
    assert wrong.status == 401
    assert "stale=true" not in wrong.headers["www-authenticate"]
    other_uri = digest_header(challenge, "pass", 4, uri="/jpg/image.jpg")
    assert (await raw(digest_sim.url, TARGET, headers={"Authorization": other_uri})).status == 401


async def test_digest_expired_nonce_is_stale(digest_sim: SimServer, raw: Fetch) -> None:
    challenge = (await challenges(raw, digest_sim.url))[0]
    await asyncio.sleep(0.6)
    stale = await raw(
        digest_sim.url, TARGET, headers={"Authorization": digest_header(challenge, "pass", 1)}
    )
    assert stale.status == 401
    assert "stale=true" in stale.headers["www-authenticate"]
    renewed = await challenges(raw, digest_sim.url)
    fresh = await raw(
        digest_sim.url, TARGET, headers={"Authorization": digest_header(renewed[1], "pass", 1)}
    )
    assert fresh.status == 200


def test_authenticator_with_fake_clock() -> None:
    now = [100.0]
    auth = Authenticator("digest", ("u", "p"), nonce_ttl=10, clock=lambda: now[0])
    challenge = auth.challenges()[0]

    def header(nc: int) -> str:
        return digest_header(challenge, "p", nc, uri="/x", user="u")

    assert auth.check("GET", "/x", header(1)) is None
    now[0] += 11
    refused = auth.check("GET", "/x", header(2))
    assert refused is not None
    assert all("stale=true" in c for c in refused)
    assert auth.check("GET", "/x", None) is not None
    assert auth.check("GET", "/x", "Digest garbage") is not None
