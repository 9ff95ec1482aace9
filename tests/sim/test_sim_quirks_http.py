"""Every quirk, observed in the raw bytes over a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.sim import Quirk, SimOptions, SimServer
from gateway.sim.framing import PREAMBLE

MJPEG = "/axis-cgi/mjpg/video.cgi?nbrofframes=6&quirk="
AUDIO = "/axis-cgi/audio/receive.cgi?duration=1&quirk="

Check = Callable[..., Awaitable[None]]
#: The conftest fixtures' shapes (conftest modules cannot be imported under importlib mode).
Fetch = Callable[..., Awaitable[Any]]
Parts = Callable[..., list[Any]]


async def no_content_length(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "no-content-length")
    found = parts(raw.body)
    assert len(found) == 6
    assert all("content-length" not in p.headers for p in found)
    assert all(p.payload.startswith(b"\xff\xd8") and p.payload.endswith(b"\xff\xd9") for p in found)


async def lf_only(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "lf-only")
    assert raw.body.startswith(b"--myboundary\nContent-Type: image/jpeg\nContent-Length: ")
    assert b"\r\n--myboundary" not in raw.body
    found = parts(raw.body, eol=b"\n")
    assert len(found) == 6
    assert all(len(p.payload) == int(p.headers["content-length"]) for p in found)


async def boundary_dashes(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "boundary-dashes")
    assert raw.headers["content-type"] == "multipart/x-mixed-replace;boundary=--myboundary"
    assert raw.body.startswith(b"--myboundary\r\n")
    assert b"----myboundary" not in raw.body
    assert len(parts(raw.body)) == 6


async def boundary_quoted(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "boundary-quoted")
    assert raw.headers["content-type"] == 'multipart/x-mixed-replace;boundary="myboundary"'
    assert len(parts(raw.body)) == 6


async def boundary_mismatch(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "boundary-mismatch")
    assert raw.headers["content-type"] == "multipart/x-mixed-replace;boundary=myboundary"
    assert b"\r\n--myboundary\r\n" not in raw.body
    assert len(parts(raw.body, boundary=b"othermyboundary")) == 6


async def no_initial_boundary(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "no-initial-boundary")
    assert raw.body.startswith(b"Content-Type: image/jpeg\r\nContent-Length: ")
    assert len(parts(raw.body)) == 5  # the helper only sees parts after a delimiter


async def preamble(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "preamble")
    assert raw.body.startswith(PREAMBLE + b"\r\n--myboundary\r\n")
    assert len(parts(raw.body)) == 6


async def extra_blank_lines(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "extra-blank-lines")
    assert raw.body.startswith(b"\r\n--myboundary\r\n")
    assert raw.body.count(b"\xff\xd9\r\n\r\n\r\n--myboundary\r\n") == 6


async def chunked(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "chunked")
    assert raw.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in raw.headers
    body, rest = bytearray(), raw.body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body += rest[:size]
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
    assert len(parts(bytes(body))) == 6
    # HTTP/1.0 cannot be chunked: the quirk falls back to an identity body.
    plain = await fetch(MJPEG + "chunked", version="1.0")
    assert "transfer-encoding" not in plain.headers
    assert plain.body.startswith(b"--myboundary\r\n")


async def wrong_content_length(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG.replace("=6", "=10") + "wrong-content-length")
    found = parts(raw.body)
    offsets = [int(p.headers["content-length"]) - len(p.payload) for p in found]
    assert offsets == [0, 0, 0, 0, -7, 0, 0, 0, 0, 9]


async def stall_after(fetch: Fetch, parts: Parts, sim: SimServer) -> None:
    raw = await fetch("/axis-cgi/mjpg/video.cgi?quirk=stall-after=2", within=1.0)
    assert not raw.closed
    assert len(parts(raw.body)) == 2
    assert raw.body.endswith(b"\xff\xd9\r\n--myboundary\r\n")
    await _until(lambda: sim.connections["/axis-cgi/mjpg/video.cgi"] == 0)


async def close_mid_frame(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch("/axis-cgi/mjpg/video.cgi?quirk=close-mid-frame=2")
    assert raw.closed
    found = parts(raw.body)
    assert len(found) == 3
    complete, torn = found[:2], found[2]
    assert all(len(p.payload) == int(p.headers["content-length"]) for p in complete)
    assert 0 < len(torn.payload) < int(torn.headers["content-length"])
    assert not torn.payload.endswith(b"\xff\xd9")


async def status_401(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "status-401")
    assert raw.status == 401
    assert raw.headers["www-authenticate"].startswith("Basic realm=")


async def status_503(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch("/jpg/image.jpg?quirk=status-503")
    assert raw.status == 503
    assert raw.body.startswith(b"Error: ")


async def html_error(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "html-error")
    assert raw.status == 200
    assert raw.headers["content-type"].startswith("text/html")
    assert b"<html>" in raw.body


async def new_boundary(fetch: Fetch, parts: Parts) -> None:
    first = await fetch(MJPEG + "new-boundary")
    second = await fetch(MJPEG + "new-boundary")
    boundaries = []
    for raw in (first, second):
        boundary = raw.headers["content-type"].split("boundary=")[1]
        assert raw.body.startswith(b"--" + boundary.encode() + b"\r\n")
        assert len(parts(raw.body, boundary=boundary.encode())) == 6
        boundaries.append(boundary)
    assert boundaries[0] != boundaries[1]
    assert "myboundary" not in boundaries


async def audio_no_blank_line(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(AUDIO + "audio-no-blank-line")
    assert raw.body.startswith(b"--myboundary\r\nContent-Type: audio/32KADPCM\r\n")
    assert b"audio/32KADPCM\r\n\r\n" not in raw.body
    normal = await fetch(AUDIO.replace("&quirk=", ""))
    assert normal.body.count(b"audio/32KADPCM\r\n\r\n") >= 10


async def close_delimiter_then_junk(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "close-delimiter-then-junk=2")
    body, close = raw.body, b"\r\n--myboundary--\r\n"
    assert body.count(close) == 1
    before, after = body.split(close)
    # Two JPEGs, then an empty part closed at once; the other four parts follow it.
    assert before.endswith(b"\xff\xd9\r\n--myboundary\r\n")
    assert len(parts(before)) == 2
    assert after.count(b"Content-Type: image/jpeg") == 4
    unread = await fetch("/axis-cgi/mjpg/video.cgi?quirk=close-delimiter-then-junk=1", within=1.0)
    assert not unread.closed  # the camera keeps the connection open after its close delimiter
    assert unread.body.count(b"\xff\xd9") > 2


async def boundary_in_jpeg(fetch: Fetch, parts: Parts) -> None:
    raw = await fetch(MJPEG + "boundary-in-jpeg=3")
    found = parts(raw.body)
    assert len(found) == 6
    comment = b"\xff\xfe\x00\x14\r\n--myboundary--\r\n"
    assert [p.payload.startswith(b"\xff\xd8" + comment) for p in found] == [
        False, False, False, True, False, False,
    ]  # fmt: skip
    assert all(len(p.payload) == int(p.headers["content-length"]) for p in found)
    bare = await fetch(MJPEG + "boundary-in-jpeg=0&quirk=no-content-length")
    assert bare.body.count(comment) == 1


async def _until(predicate: Callable[[], bool], within: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


#: One check per quirk; test_every_quirk_has_a_check keeps this table complete.
CHECKS: dict[Quirk, Check] = {
    Quirk.NO_CONTENT_LENGTH: no_content_length,
    Quirk.LF_ONLY: lf_only,
    Quirk.BOUNDARY_DASHES: boundary_dashes,
    Quirk.BOUNDARY_QUOTED: boundary_quoted,
    Quirk.BOUNDARY_MISMATCH: boundary_mismatch,
    Quirk.NO_INITIAL_BOUNDARY: no_initial_boundary,
    Quirk.PREAMBLE: preamble,
    Quirk.EXTRA_BLANK_LINES: extra_blank_lines,
    Quirk.CHUNKED: chunked,
    Quirk.WRONG_CONTENT_LENGTH: wrong_content_length,
    Quirk.STALL_AFTER: stall_after,
    Quirk.CLOSE_MID_FRAME: close_mid_frame,
    Quirk.STATUS_401: status_401,
    Quirk.STATUS_503: status_503,
    Quirk.HTML_ERROR: html_error,
    Quirk.NEW_BOUNDARY: new_boundary,
    Quirk.AUDIO_NO_BLANK_LINE: audio_no_blank_line,
    Quirk.CLOSE_DELIMITER_THEN_JUNK: close_delimiter_then_junk,
    Quirk.BOUNDARY_IN_JPEG: boundary_in_jpeg,
}


def test_every_quirk_has_a_check() -> None:
    assert set(CHECKS) == set(Quirk)


@pytest.mark.parametrize("quirk", list(Quirk), ids=lambda q: q.value)
async def test_quirk_in_raw_bytes(quirk: Quirk, fetch: Fetch, parts: Parts, sim: SimServer) -> None:
    check = CHECKS[quirk]
    if quirk is Quirk.STALL_AFTER:
        await check(fetch, parts, sim)
    else:
        await check(fetch, parts)


async def test_global_quirks_apply_to_every_request(raw: Fetch, parts: Parts) -> None:
    server = SimServer(SimOptions(size=(160, 120), quirks=frozenset({"lf-only", "preamble"})))
    await server.start()
    try:
        response = await raw(server.url, MJPEG.replace("&quirk=", ""))
    finally:
        await server.stop()
    assert response.body.startswith(PREAMBLE + b"\n--myboundary\nContent-Type: image/jpeg\n")
    assert len(parts(response.body, eol=b"\n")) == 6


async def test_unknown_quirk_is_400(fetch: Fetch) -> None:
    response = await fetch("/axis-cgi/mjpg/video.cgi?quirk=teleport")
    assert response.status == 400
    assert response.body.startswith(b"Error: unknown quirk 'teleport'")
