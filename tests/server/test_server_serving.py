"""The server on loopback, in process: deadlines, caps, quiet errors, bind before start.

Real sockets with short deadlines (tenths of a second) and generous bounds: the table and
the log budget are tested on a fake clock in their own files; these check the wiring.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import http_exceptions as hx
from aiohttp import web

from gateway.config import ServerConfig
from gateway.errors import GatewayError
from gateway.server import BAD_REQUESTS, SERVER_NAME, Listening, bad_request_phrase, serving
from tests.server.raw import exchange, get, read_all

STREAM_CHUNKS = 12
STREAM_GAP = 0.1


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "1")))
    return web.Response(text="done\n")


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for i in range(STREAM_CHUNKS):
        await response.write(f"chunk {i}\n".encode())
        await asyncio.sleep(STREAM_GAP)
    await response.write_eof()
    return response


async def post(request: web.Request) -> web.Response:
    body = await request.read()
    await asyncio.sleep(float(request.query.get("s", "0")))
    return web.Response(text=f"{len(body)} bytes\n")


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/slow", slow)
    app.router.add_get("/stream", stream)
    app.router.add_get("/boom", boom)
    app.router.add_post("/post", post)
    return app


@asynccontextmanager
async def running(app: web.Application | None = None, **server: float) -> AsyncIterator[Listening]:
    settings = {"header_timeout": 10.0, "keepalive_timeout": 15.0, **server}
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        header_timeout=float(settings["header_timeout"]),
        keepalive_timeout=float(settings["keepalive_timeout"]),
        max_connections=int(settings.get("max_connections", 4000)),
        max_connections_per_address=int(settings.get("max_connections_per_address", 500)),
    )
    async with serving(app or make_app(), config, raise_file_limit=False) as listening:
        yield listening


def server_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gateway.server"]


# --- Server header and bad requests --------------------------------------------------


#: Each parser error and its words (every ``BAD_REQUESTS`` entry, and the TLS case).
PHRASES: list[tuple[BaseException | None, str]] = [
    (hx.BadHttpMethod("\x16\x03\x01"), "TLS handshake on the plain HTTP port"),
    (hx.BadHttpMethod("GARBAGE"), "bad method"),
    (hx.BadStatusLine("GET / HTTP/9.9"), "bad request line"),
    (hx.LineTooLong("x" * 10, 8190), "line too long"),
    (hx.InvalidHeader(b"Bad Header"), "bad header"),
    (hx.InvalidURLError("*"), "bad URL"),
    (hx.PayloadEncodingError("zz"), "bad body framing"),
    (hx.TransferEncodingError("zz"), "bad body framing"),
    (hx.BadHttpMessage("Too many headers received"), "malformed request"),
    (None, "malformed request"),
]


@pytest.mark.parametrize(("exc", "phrase"), PHRASES)
def test_each_parser_error_has_its_words(exc: BaseException | None, phrase: str) -> None:
    assert bad_request_phrase(exc) == phrase


def test_every_table_entry_is_tested() -> None:
    tested = {type(exc) for exc, _ in PHRASES}
    assert {kind for kind, _ in BAD_REQUESTS} <= tested


#: Malformed requests, each with a marker that must never come back in a body.
BAD_INPUTS = [
    b"GARBAGE-MARKER\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03MARKER",
    b"GET /MARKER HTTP/9.9\r\n\r\n",
    b"GET /MARKER HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /MARKER\x01 HTTP/1.1\r\n\r\n",
    b"GET /MARKER HTTP/1.1\r\nBad Header: MARKER\r\n\r\n",
    b"GET /MARKER HTTP/1.1\r\nHost: x\r\n" + b"X: MARKER\r\n" * 200 + b"\r\n",
    b"GET /MARKER HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nMARKER",
]


async def test_bad_requests_get_a_short_400_and_a_rate_limited_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    phrases = {phrase for _, phrase in BAD_REQUESTS} | {"TLS handshake on the plain HTTP port"}
    inputs = (BAD_INPUTS * 2)[:17]
    async with running() as listening:
        for data in inputs:
            reply = await exchange(listening.port, data)
            assert reply.status == 400, reply.data
            assert reply.header("Server") == SERVER_NAME
            assert b"MARKER" not in reply.data
            assert reply.body.startswith(b"Error: ")
            assert reply.body.decode().removeprefix("Error: ").strip() in phrases
        assert sum(listening.guard.bad_requests.values()) == 17
    records = [r for r in caplog.records if r.name.startswith(("gateway", "aiohttp", "asyncio"))]
    assert all(r.exc_info is None for r in records)
    assert "MARKER" not in caplog.text
    lines = [r.getMessage() for r in server_lines(caplog)]
    one_each = [line for line in lines if line.startswith("bad request from 127.0.0.1: ")]
    assert len(one_each) == 5
    summary = [line for line in lines if "more bad requests" in line]
    assert len(summary) == 1
    assert summary[0].startswith("12 more bad requests in ")


async def test_responses_say_server_gateway_without_versions() -> None:
    async with running() as listening:
        for path, status in (("/healthz", 200), ("/nowhere", 404)):
            reply = await exchange(listening.port, get(path))
            assert (reply.status, reply.header("Server")) == (status, SERVER_NAME)


async def test_a_handler_bug_is_a_500_with_its_traceback_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running() as listening:
        reply = await exchange(listening.port, get("/boom"))
    assert (reply.status, reply.header("Server")) == (500, SERVER_NAME)
    assert b"a bug" not in reply.data
    assert len([r for r in caplog.records if r.exc_info]) == 1


# --- Deadlines ------------------------------------------------------------------------


async def test_a_trickled_head_is_closed_at_header_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running(header_timeout=0.5) as listening:
        start = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", listening.port)
        closed = asyncio.ensure_future(read_all(reader, 10.0))
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":
            if closed.done():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)
        data = await closed
        elapsed = time.monotonic() - start
        writer.close()
        assert data == b""
        assert 0.45 < elapsed < 3.0
        assert listening.guard.stats()["shed"] == {"header timeout": 1}
    assert "shed 1 connection in " in caplog.text
    assert "1 header timeout from 127.0.0.1 (1)" in caplog.text


async def test_idle_sockets_are_closed_at_header_timeout() -> None:
    async with running(header_timeout=0.5) as listening:
        replies = await asyncio.gather(
            *(exchange(listening.port, b"", within=10.0) for _ in range(50))
        )
        assert all(r.data == b"" for r in replies)
        assert all(0.45 < r.closed_after < 3.0 for r in replies)
        assert listening.guard.stats()["connections"] == 0


async def test_keepalive_counts_from_the_end_of_the_response() -> None:
    async with running(header_timeout=0.4, keepalive_timeout=0.6) as listening:
        reader, writer = await asyncio.open_connection("127.0.0.1", listening.port)
        writer.write(get("/slow?s=1.0", close=False))
        start = time.monotonic()
        head = await asyncio.wait_for(reader.readuntil(b"done\n"), 10.0)
        answered = time.monotonic()
        assert head.startswith(b"HTTP/1.1 200")
        assert await read_all(reader, 10.0) == b""
        closed = time.monotonic()
        writer.close()
        # The handler outlived both deadlines counted from connect; the pause is timed
        # from the response.
        assert answered - start >= 1.0
        assert 0.55 < closed - answered < 3.0
        assert listening.guard.idle_closed == 1
        assert listening.guard.stats()["shed"] == {}


async def test_a_second_request_within_keepalive_is_served() -> None:
    async with running(header_timeout=0.5, keepalive_timeout=1.0) as listening:
        reader, writer = await asyncio.open_connection("127.0.0.1", listening.port)
        for _ in range(3):
            writer.write(get("/healthz", close=False))
            await asyncio.wait_for(reader.readuntil(b'{"status": "ok"}'), 10.0)
            await asyncio.sleep(0.3)
        writer.close()
        assert listening.guard.idle_closed == 0


def post_head(length: int, path: str = "/post") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


async def test_a_trickled_body_is_closed_at_header_timeout_after_the_head() -> None:
    async with running(header_timeout=0.5) as listening:
        reader, writer = await asyncio.open_connection("127.0.0.1", listening.port)
        writer.write(post_head(1000))
        start = time.monotonic()
        closed = asyncio.ensure_future(read_all(reader, 10.0))
        while not closed.done() and time.monotonic() - start < 5.0:
            writer.write(b"x")
            await asyncio.wait([closed], timeout=0.05)
        data = await closed
        elapsed = time.monotonic() - start
        writer.close()
        assert data == b""
        assert 0.45 < elapsed < 3.0
        assert listening.guard.stats()["shed"] == {"body timeout": 1}


async def test_a_whole_body_is_served_however_long_the_handler_takes() -> None:
    async with running(header_timeout=0.3, keepalive_timeout=0.3) as listening:
        reply = await exchange(listening.port, post_head(5, "/post?s=0.8") + b"hello")
    assert reply.status == 200
    assert reply.body == b"5 bytes\n"
    assert reply.closed_after >= 0.8


async def test_a_stream_outlives_every_deadline() -> None:
    async with running(header_timeout=0.3, keepalive_timeout=0.3) as listening:
        reply = await exchange(listening.port, get("/stream"))
    assert reply.status == 200
    assert reply.data.count(b"chunk ") == STREAM_CHUNKS
    assert reply.closed_after >= STREAM_CHUNKS * STREAM_GAP


# --- Caps -----------------------------------------------------------------------------


async def test_over_the_per_address_cap_is_a_503_and_others_are_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running(max_connections_per_address=3) as listening:
        held = [
            await asyncio.open_connection("127.0.0.1", listening.port, local_addr=("127.0.0.2", 0))
            for _ in range(3)
        ]
        refused = await asyncio.gather(
            *(exchange(listening.port, get("/healthz"), local="127.0.0.2") for _ in range(4))
        )
        for reply in refused:
            assert reply.status == 503
            assert reply.header("Server") == SERVER_NAME
            assert reply.header("Connection") == "close"
            assert reply.body == b"Error: too many connections from your address\n"
        ok = await exchange(listening.port, get("/healthz"), local="127.0.0.3")
        assert ok.status == 200
        for _, writer in held:
            writer.close()
    shed = [r.getMessage() for r in server_lines(caplog) if r.getMessage().startswith("shed")]
    assert shed == [
        f"shed 4 connections in {shed[0].split(' in ')[1].split(' s:')[0]} s: "
        "4 over max_connections_per_address from 127.0.0.2 (4)"
    ]


async def test_at_the_total_cap_an_idle_socket_makes_room_for_healthz() -> None:
    async with running(max_connections=4, max_connections_per_address=4) as listening:
        idle = [
            await asyncio.open_connection("127.0.0.1", listening.port, local_addr=("127.0.0.2", 0))
            for _ in range(4)
        ]
        await asyncio.sleep(0.1)  # let the server accept them all
        ok = await exchange(listening.port, get("/healthz"))
        assert ok.status == 200
        oldest_reader = idle[0][0]
        assert await read_all(oldest_reader, 5.0) == b""
        assert listening.guard.stats()["shed"] == {
            "closed for a new connection at max_connections": 1
        }
        for _, writer in idle:
            writer.close()


async def test_at_the_total_cap_with_every_connection_busy_a_new_one_gets_503() -> None:
    async with running(max_connections=2, max_connections_per_address=2) as listening:
        streams = [
            asyncio.ensure_future(exchange(listening.port, get("/stream"))) for _ in range(2)
        ]
        await asyncio.sleep(0.3)
        refused = await exchange(listening.port, get("/healthz"), local="127.0.0.2")
        assert refused.status == 503
        assert refused.body == b"Error: too many connections to the gateway\n"
        for reply in await asyncio.gather(*streams):
            assert reply.data.count(b"chunk ") == STREAM_CHUNKS


# --- Start-up -------------------------------------------------------------------------


async def test_a_busy_port_fails_before_the_app_starts() -> None:
    started: list[bool] = []

    async def cameras(app: web.Application) -> AsyncIterator[None]:
        started.append(True)
        yield

    app = make_app()
    app.cleanup_ctx.append(cameras)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = ServerConfig(host="127.0.0.1", port=port)
        with pytest.raises(GatewayError) as info:
            async with serving(app, config, raise_file_limit=False):
                pass
    assert str(info.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"
    assert started == []


async def test_the_app_starts_after_the_bind_and_stops_at_exit() -> None:
    events: list[str] = []

    async def cameras(app: web.Application) -> AsyncIterator[None]:
        events.append("start")
        yield
        events.append("stop")

    app = make_app()
    app.cleanup_ctx.append(cameras)
    async with running(app) as listening:
        assert events == ["start"]
        assert listening.url == f"http://127.0.0.1:{listening.port}/"
        assert (await exchange(listening.port, get("/healthz"))).status == 200
    assert events == ["start", "stop"]


async def test_stats_shape() -> None:
    async with running() as listening:
        assert listening.guard.stats() == {
            "connections": 0,
            "max_connections": 4000,
            "max_connections_per_address": 500,
            "shed": {},
            "idle_closed": 0,
            "bad_requests": 0,
        }
