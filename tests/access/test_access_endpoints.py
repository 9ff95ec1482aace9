"""Roles x endpoints on loopback: every endpoint family and camera form, every kind of caller.

Two cameras: ``cam`` (camera 1) and ``yard`` (camera 2). The callers, one column each:

- ``V`` a viewer of ``cam``, ``Y`` a viewer of ``yard``, ``O`` an operator of ``cam``,
  ``A`` an admin (every camera), ``T`` a viewing token for ``cam`` (``?token=``),
- ``N`` no credentials, ``W`` a wrong password,
- ``L`` an anonymous loopback client of a gateway without ``[[users]]``.

A cell is the status the request gets: ``401``/``403`` from access control, anything
else from the endpoint itself once admitted (``404`` for a camera without that stream
or an HLS session that does not exist, ``415`` for a WHEP offer that is not SDP).
"""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest
from aiohttp import web

from gateway.access import DENIALS, with_query
from gateway.app import create_app
from gateway.config import parse_config
from tests.publish.axis_client import Gateway, gateway

KEY = "endpoints-test-key-0123456789"


def cameras(users: str) -> str:
    """Return the two-camera configuration with ``users``."""
    camera = (
        '[[cameras]]\nname = "{name}"\nsource = "sim"\nmjpeg = true\nmpeg2 = false\n'
        'audio = {audio}\nfps = {fps}\nresolution = "160x120"\n'
    )
    return (
        f'[tokens]\nkey = "{KEY}"\n[webrtc]\naddresses = ["127.0.0.1"]\n{users}'
        + camera.format(name="cam", audio="true", fps=10)
        + camera.format(name="yard", audio="false", fps=5)
    )


USERS = "".join(
    f'[[users]]\nname = "{name}"\npassword = "{name}-pw"\nrole = "{role}"\n{extra}'
    for name, role, extra in (
        ("viewer", "viewer", 'cameras = ["cam"]\n'),
        ("yardviewer", "viewer", 'cameras = ["yard"]\n'),
        ("operator", "operator", 'cameras = ["cam"]\n'),
        ("admin", "admin", ""),
    )
)
COLUMNS = "VYOATNWL"

# fmt: off
#: request -> statuses for the callers V Y O A T N W L.
TABLE: dict[str, tuple[int, ...]] = {
    # Public: liveness, the page's assets, CORS preflights.
    "GET /healthz":                                 (200, 200, 200, 200, 200, 200, 200, 200),
    "GET /static/app.js":                           (200, 200, 200, 200, 200, 200, 200, 200),
    "OPTIONS /whep/yard":                           (204, 204, 204, 204, 204, 204, 204, 204),
    # The page, and the API (lists filtered; a viewer's reduced).
    "GET /":                                        (200, 200, 200, 200, 200, 401, 401, 200),
    "GET /api/cameras":                             (200, 200, 200, 200, 200, 401, 401, 200),
    "GET /api/cameras/cam":                         (200, 403, 200, 200, 200, 401, 401, 200),
    "GET /api/cameras/1":                           (200, 403, 200, 200, 200, 401, 401, 200),
    "GET /api/cameras/yard":                        (403, 200, 403, 200, 403, 401, 401, 200),
    "GET /api/cameras/2":                           (403, 200, 403, 200, 403, 401, 401, 200),
    "GET /api/cameras/nope":                        (404, 404, 404, 404, 404, 401, 401, 404),
    # Admin only.
    "GET /metrics":                                 (403, 403, 403, 200, 403, 401, 401, 200),
    "POST /api/tokens":                             (403, 403, 403, 201, 403, 401, 401, 201),
    "GET /api/tokens":                              (405, 405, 405, 405, 405, 401, 401, 405),
    # Axis: the path's N, else camera= (name or position), else camera 1.
    "GET /axis-cgi/mjpg/video.cgi":                 (200, 403, 200, 200, 200, 401, 401, 200),
    "GET /axis-cgi/mjpg/video.cgi?camera=cam":      (200, 403, 200, 200, 200, 401, 401, 200),
    "GET /axis-cgi/mjpg/video.cgi?camera=2":        (403, 200, 403, 200, 403, 401, 401, 200),
    "GET /axis-cgi/mjpg/video.cgi?camera=nope":     (404, 404, 404, 404, 404, 401, 401, 404),
    "GET /mjpg/video.mjpg?camera=yard":             (403, 200, 403, 200, 403, 401, 401, 200),
    "GET /mjpg/1/video.mjpg":                       (200, 403, 200, 200, 200, 401, 401, 200),
    "GET /mjpg/2/video.mjpg":                       (403, 200, 403, 200, 403, 401, 401, 200),
    "GET /mjpg/2/video.mjpg?camera=cam":            (403, 200, 403, 200, 403, 401, 401, 200),
    "GET /axis-cgi/jpg/image.cgi":                  (200, 403, 200, 200, 200, 401, 401, 200),
    "GET /jpg/image.jpg?camera=yard":               (403, 200, 403, 200, 403, 401, 401, 200),
    "GET /jpg/2/image.jpg":                         (403, 200, 403, 200, 403, 401, 401, 200),
    "GET /axis-cgi/mpeg2/video.cgi?camera=yard":    (403, 404, 403, 404, 403, 401, 401, 404),
    "GET /axis-cgi/mpeg2/buffer.cgi?camera=2":      (403, 404, 403, 404, 403, 401, 401, 404),
    "GET /axis-cgi/audio/receive.cgi":              (200, 403, 200, 200, 200, 401, 401, 200),
    "GET /axis-cgi/audio/receive.cgi?camera=yard":  (403, 404, 403, 404, 403, 401, 401, 404),
    "GET /axis-cgi/audio/getparam.cgi?camera=yard": (403, 404, 403, 404, 403, 401, 401, 404),
    # fMP4.
    "GET /mp4/cam":                                 (200, 403, 200, 200, 200, 401, 401, 200),
    "GET /mp4/yard":                                (403, 200, 403, 200, 403, 401, 401, 200),
    "GET /mp4/2":                                   (403, 200, 403, 200, 403, 401, 401, 200),
    # HLS: the multivariant playlist, a session's playlist, init, segment, part.
    "GET /hls/cam/0/seg1.m4s":                      (404, 403, 404, 404, 404, 401, 401, 404),
    "GET /hls/yard/index.m3u8":                     (403, 200, 403, 200, 403, 401, 401, 200),
    "GET /hls/2/0/media.m3u8?_HLS_msn=x":           (403, 400, 403, 400, 403, 401, 401, 400),
    "GET /hls/yard/0/init1.mp4":                    (403, 404, 403, 404, 403, 401, 401, 404),
    "GET /hls/yard/0/seg1.m4s":                     (403, 404, 403, 404, 403, 401, 401, 404),
    "GET /hls/yard/0/part1.0.m4s":                  (403, 404, 403, 404, 403, 401, 401, 404),
    # WHEP: the endpoint and a session (none exists), every method.
    "POST /whep/cam":                               (415, 403, 415, 415, 415, 401, 401, 415),
    "POST /whep/yard":                              (403, 415, 403, 415, 403, 401, 401, 415),
    "PATCH /whep/2/abc":                            (403, 404, 403, 404, 403, 401, 401, 404),
    "DELETE /whep/yard/abc":                        (403, 404, 403, 404, 403, 401, 401, 404),
    "DELETE /whep/cam/abc":                         (404, 403, 404, 404, 404, 401, 401, 404),
    "GET /whep/yard":                               (403, 405, 403, 405, 403, 401, 401, 405),
    # Nothing there: admitted, then not found.
    "GET /nothing":                                 (404, 404, 404, 404, 404, 401, 401, 404),
}
# fmt: on


def basic(user: str, password: str) -> dict[str, str]:
    """Return the header of HTTP Basic credentials."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


CREDENTIALS = {
    "V": basic("viewer", "viewer-pw"),
    "Y": basic("yardviewer", "yardviewer-pw"),
    "O": basic("operator", "operator-pw"),
    "A": basic("admin", "admin-pw"),
    "N": {},
    "W": basic("admin", "viewer-pw"),
    "L": {},
}
#: Request bodies: what each endpoint family is given (a WHEP offer that is not SDP).
BODIES = {
    "/api/tokens": ("application/json", json.dumps({"cameras": ["cam"], "ttl": 60})),
    "/whep/": ("text/plain", "not SDP"),
}


async def status_of(
    session: aiohttp.ClientSession, gw: Gateway, request: str, column: str, token: str
) -> int:
    """Send ``request`` as caller ``column``; return the status (bodies of streams unread)."""
    method, target = request.split(" ", 1)
    headers = dict(CREDENTIALS.get(column, {}))
    if column == "T":
        target = with_query(target, f"token={token}")
    data = None
    for prefix, (content_type, body) in BODIES.items():
        if target.startswith(prefix) and method in ("POST", "PATCH"):
            headers["Content-Type"], data = content_type, body
    url = gw.base + target
    async with (
        asyncio.timeout(30),
        session.request(method, url, headers=headers, data=data, allow_redirects=False) as reply,
    ):
        return reply.status


@pytest.mark.parametrize("column", COLUMNS)
async def test_roles_by_endpoints(column: str) -> None:
    toml = cameras("" if column == "L" else USERS)
    async with gateway(toml) as gw, aiohttp.ClientSession() as session:
        await gw.live("cam")
        await gw.live("yard")
        async with session.post(
            gw.base + "/api/tokens",
            json={"cameras": ["cam"], "ttl": 600},
            headers=basic("admin", "admin-pw") if column != "L" else {},
        ) as reply:
            assert reply.status == 201
            token = (await reply.json())["token"]
        before = gw.app[DENIALS].total()
        got = {request: await status_of(session, gw, request, column, token) for request in TABLE}
        i = COLUMNS.index(column)
        assert got == {request: statuses[i] for request, statuses in TABLE.items()}
        # Every 401 and 403 of the column was counted, by status and reason.
        denied = sum(1 for status in got.values() if status in (401, 403))
        assert gw.app[DENIALS].total() - before == denied


async def raw_status(port: int, target: str, authorization: str) -> int:
    """Send ``target`` byte for byte (no client-side normalising); return the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        async with asyncio.timeout(30):
            status_line = await reader.readline()
    finally:
        writer.close()
    return int(status_line.split()[1])


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/%6detrics", 403),
        ("/mp4/%79ard", 403),
        ("/api/cameras/%79ard", 403),
        ("/mjpg/02/video.mjpg", 403),
        ("/axis-cgi/mjpg/video.cgi?camera=yard&camera=cam", 403),
        ("http://127.0.0.1/metrics", 403),
        ("/metrics/", 404),
        ("//metrics", 404),
        ("/static/../metrics", 404),
        ("/hls/../metrics", 404),
    ],
)
async def test_no_spelling_of_a_path_gets_round_the_rules(target: str, status: int) -> None:
    async with gateway(cameras(USERS)) as gw:
        viewer = CREDENTIALS["V"]["Authorization"]
        assert await raw_status(gw.port, target, viewer) == status


async def test_a_route_the_access_table_does_not_list_is_for_admins_only() -> None:
    async def debug(request: web.Request) -> web.Response:
        return web.Response(text="internals\n")

    app = create_app(parse_config(cameras(USERS), {}))
    app.router.add_get("/debug/state", debug)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/debug/state"
        async with aiohttp.ClientSession() as session:
            for column, expected in (("V", 403), ("O", 403), ("A", 200), ("N", 401)):
                async with session.get(url, headers=CREDENTIALS[column]) as reply:
                    assert reply.status == expected, column
    finally:
        await runner.cleanup()
