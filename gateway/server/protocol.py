"""aiohttp's connection protocol with the gateway's admission, deadlines and quiet errors.

``Guard`` is the protocol factory handed to ``loop.create_server``; each connection is a
``GuardedHandler`` (aiohttp's ``RequestHandler``, hooked at its public seams:
``connection_made``/``connection_lost``, ``data_received``, ``finish_response`` and
``handle_error``; the start of each request is seen through ``web.Server.request_factory``).
The decisions are the sans-IO ``ConnectionTable`` and ``Tally``; this module only turns
them into closes, ``503`` answers and log lines, with one loop timer for everything.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any, cast

from aiohttp import http_exceptions as hx
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_request import BaseRequest

from gateway.server.report import Tally, TokenBucket
from gateway.server.table import ConnectionTable, Reason

log = logging.getLogger("gateway.server")

#: What the gateway calls itself in ``Server`` headers (no library versions: they help
#: nobody but an attacker matching CVEs).
SERVER_NAME = "gateway"

#: Parser errors in words, most specific first. The exceptions' own messages quote the
#: request bytes, which neither the log nor the response may echo.
BAD_REQUESTS: tuple[tuple[type[Exception], str], ...] = (
    (hx.BadHttpMethod, "bad method"),
    (hx.BadStatusLine, "bad request line"),
    (hx.LineTooLong, "line too long"),
    (hx.InvalidHeader, "bad header"),
    (hx.InvalidURLError, "bad URL"),
    (hx.PayloadEncodingError, "bad body framing"),
    (hx.BadHttpMessage, "malformed request"),
)

#: Refused connections kept open at most (for their ``503`` to be read before the close).
MAX_LINGERING = 64

RequestFactory = Callable[
    [RawRequestMessage, StreamReader, web.RequestHandler, AbstractStreamWriter, asyncio.Task[None]],
    BaseRequest,
]


def bad_request_phrase(exc: BaseException | None) -> str:
    """Return the words for the parser error ``exc`` (never its request bytes)."""
    if isinstance(exc, hx.BadHttpMethod) and exc.message.startswith("Received HTTPS"):
        # aiohttp recognises a TLS ClientHello: an https:// URL pointed at this port.
        return "TLS handshake on the plain HTTP port"
    for kind, phrase in BAD_REQUESTS:
        if isinstance(exc, kind):
            return phrase
    return "malformed request"


def refusal(reason: Reason) -> bytes:
    """Return the whole ``503`` response for a connection refused for ``reason``."""
    who = "from your address" if reason is Reason.PER_ADDRESS else "to the gateway"
    body = f"Error: too many connections {who}\n".encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        f"Server: {SERVER_NAME}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedHandler(web.RequestHandler):
    """One client connection: admitted by the guard or answered ``503`` and closed."""

    __slots__ = ("_address", "_guard", "_linger", "_refused")

    def __init__(self, manager: web.Server, *, guard: Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._address = ""
        #: The transport of a refused connection (aiohttp never sees it).
        self._refused: asyncio.Transport | None = None
        self._linger: asyncio.TimerHandle | None = None

    @property
    def address(self) -> str:
        """Return the client's address."""
        return self._address

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection to aiohttp, or answer ``503`` and close it."""
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        refused = self._guard.admit(self)
        if refused is None:
            super().connection_made(transport)
            return
        self._refused = transport
        transport.write(refusal(refused))
        if self._guard.start_lingering(transport):
            # Half-close and read the request away: closing with unread bytes would send
            # a RST that can destroy the 503 before the client reads it.
            transport.write_eof()
            self._linger = self._loop.call_later(1.0, transport.close)
        else:
            transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Release the connection's place."""
        if self._refused is not None:
            if self._linger is not None:
                self._linger.cancel()
                self._guard.stop_lingering(self._refused)
            self._refused = self._linger = None
            return
        self._guard.lost(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Pass bytes to aiohttp's parser (a refused connection's are dropped)."""
        if self._refused is not None:
            return
        self._guard.data(self)
        super().data_received(data)

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Finish the response, then start the keep-alive pause."""
        resp, reset = await super().finish_response(request, resp, start_time)
        if not reset and resp.keep_alive:
            self._guard.idle(self)
        return resp, reset

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer a malformed request in one line each way: no traceback, no echo."""
        if status != 400:
            # A handler raised (500) or timed out (504): our side, worth aiohttp's lines.
            return super().handle_error(request, status, exc, message)
        phrase = bad_request_phrase(exc)
        self._guard.bad_request(self._address, phrase)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot answer the error")
        resp = web.Response(
            status=status, text=f"Error: {phrase}\n", headers={"Server": SERVER_NAME}
        )
        resp.force_close()
        return resp


class Guard:
    """The protocol factory: connection caps, deadlines and the log budget."""

    def __init__(
        self,
        table: ConnectionTable[GuardedHandler],
        *,
        loop: asyncio.AbstractEventLoop,
        handler_args: dict[str, Any],
    ) -> None:
        self.table = table
        self._loop = loop
        self._handler_args = handler_args
        self._server: web.Server | None = None
        self._sheds = Tally()
        self._bad = Tally()
        self._bucket = TokenBucket()
        self._timer: asyncio.Handle | None = None
        self._timer_at = 0.0
        #: Refused connections kept open until their ``503`` is read (closed at shutdown).
        self._lingering: set[asyncio.Transport] = set()
        #: Keep-alive connections closed at the end of their pause (routine, not logged).
        self.idle_closed = 0
        #: Malformed requests answered ``400``, by phrase.
        self.bad_requests: Counter[str] = Counter()

    def attach(self, server: web.Server) -> None:
        """Serve connections for ``server`` (after ``AppRunner.setup``)."""
        inner: RequestFactory = server.request_factory

        def started(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: web.RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> BaseRequest:
            # aiohttp builds the request when a complete head leaves its queue.
            if isinstance(protocol, GuardedHandler):
                body = not payload.is_eof()
                self.table.request_started(protocol, self._loop.time(), body=body)
                if body:
                    payload.on_eof(partial(self.table.body_received, protocol))
                    self._arm()
            return inner(message, payload, protocol, writer, task)

        server.request_factory = started
        self._server = server

    def __call__(self) -> GuardedHandler:
        """Return the protocol for a new connection."""
        assert self._server is not None, "attach() before serving"
        return GuardedHandler(self._server, guard=self, loop=self._loop, **self._handler_args)

    def stats(self) -> dict[str, object]:
        """Return connection figures (cumulative counts since start)."""
        return {
            "connections": len(self.table),
            "max_connections": self.table.max_connections,
            "max_connections_per_address": self.table.max_per_address,
            "shed": dict(self._sheds.totals),
            "idle_closed": self.idle_closed,
            "bad_requests": sum(self.bad_requests.values()),
        }

    def admit(self, conn: GuardedHandler) -> Reason | None:
        """Admit ``conn``; return why not, or close a connection evicted for it."""
        now = self._loop.time()
        admission = self.table.admit(conn, conn.address, now)
        if admission.refused is not None:
            self._shed(admission.refused, conn.address, now)
        elif admission.evicted is not None:
            admission.evicted.force_close()
            self._shed(Reason.EVICTED, admission.evicted_address, now)
        self._arm()
        return admission.refused

    def lost(self, conn: GuardedHandler) -> None:
        """Forget a closed connection."""
        self.table.remove(conn)

    def data(self, conn: GuardedHandler) -> None:
        """Note bytes from ``conn``."""
        if self.table.data_received(conn, self._loop.time()):
            self._arm()

    def idle(self, conn: GuardedHandler) -> None:
        """Start ``conn``'s keep-alive pause."""
        self.table.response_finished(conn, self._loop.time())
        self._arm()

    def start_lingering(self, transport: asyncio.Transport) -> bool:
        """Return True if the refused ``transport`` may linger (a bounded few may)."""
        if len(self._lingering) >= MAX_LINGERING:
            return False
        self._lingering.add(transport)
        return True

    def stop_lingering(self, transport: asyncio.Transport) -> None:
        """Note that a lingering refused connection closed."""
        self._lingering.discard(transport)

    def bad_request(self, address: str, phrase: str) -> None:
        """Log a malformed request in one line, or count it for the next summary."""
        self.bad_requests[phrase] += 1
        now = self._loop.time()
        if self._bucket.allow(now):
            log.info("bad request from %s: %s", address, phrase)
        else:
            self._bad.record(phrase, address, now)
            self._arm()

    def close(self) -> None:
        """Stop the timer, close lingering refusals, report what is still pending."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for transport in list(self._lingering):
            transport.close()
        self._report(self._loop.time(), flush=True)

    def _shed(self, reason: Reason, address: str, now: float) -> None:
        self._sheds.record(reason.value, address, now)

    def _arm(self) -> None:
        times = (t.get_timer() for t in (self.table, self._sheds, self._bad))
        when = min((t for t in times if t is not None), default=None)
        if when is None or (self._timer is not None and self._timer_at <= when):
            return
        if self._timer is not None:
            self._timer.cancel()
        # Not the handle's when(): uvloop turns a call_at in the past into a call_soon.
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        # A loop may run a timer up to its clock resolution early.
        now = max(self._loop.time(), self._timer_at)
        for conn, address, reason in self.table.handle_timer(now):
            conn.force_close()
            if reason.shed:
                self._shed(reason, address, now)
            else:
                self.idle_closed += 1
        self._report(now)
        self._arm()

    def _report(self, now: float, *, flush: bool = False) -> None:
        sheds = self._sheds.flush(now) if flush else self._sheds.handle_timer(now)
        if sheds is not None:
            count, seconds, details = sheds
            noun = "connection" if count == 1 else "connections"
            log.warning("shed %d %s in %.0f s: %s", count, noun, seconds, details)
        bad = self._bad.flush(now) if flush else self._bad.handle_timer(now)
        if bad is not None:
            count, seconds, details = bad
            log.info("%d more bad requests in %.0f s: %s", count, seconds, details)
