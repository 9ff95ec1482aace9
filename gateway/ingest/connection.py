"""One upstream HTTP connection: an ``asyncio.BufferedProtocol`` around the sans-IO parsers.

Socket reads land in the buffer the body decoder hands out, which is the demuxer's
final frame buffer; only the response head (and the body bytes sharing its read) and
chunk-size lines pass through scratch buffers, and those bytes are counted in
``copied`` so the benchmark can report copies per payload byte.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urljoin, urlsplit

from gateway import __version__
from gateway.demux.http1 import (
    BodyConsumer,
    ChunkedDecoder,
    IdentityDecoder,
    ResponseHead,
    ResponseHeadParser,
    body_decoder,
    build_request,
)
from gateway.errors import AuthError, GatewayError, RemoteProtocolError, UpstreamError
from gateway.ingest.auth import Authenticator, ChallengeResult

USER_AGENT = f"gateway/{__version__}"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes: origin plus request target; never holds credentials."""

    scheme: str
    host: str
    port: int
    #: Path and query, e.g. ``/axis-cgi/mjpg/video.cgi?fps=5``.
    target: str = "/"

    @classmethod
    def parse(cls, url: str) -> Target:
        """Parse an ``http(s)://`` URL, dropping any userinfo."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise GatewayError("camera URL must be http:// or https:// with a host")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise GatewayError("camera URL has an invalid port") from None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, parts.hostname, port, target)

    @property
    def origin(self) -> tuple[str, str, int]:
        """Return (scheme, host, port): credentials go to this origin only."""
        return (self.scheme, self.host.lower(), self.port)

    @property
    def authority(self) -> str:
        """Return the ``Host`` header value."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """Return the URL (no credentials)."""
        return f"{self.scheme}://{self.authority}{self.target}"

    def with_target(self, target: str) -> Target:
        """Return the same origin with another path and query."""
        return Target(self.scheme, self.host, self.port, target)

    def resolve(self, location: str) -> Target:
        """Return the target a ``Location`` header points at."""
        return Target.parse(urljoin(self.url, location))


def credentials_from_url(url: str) -> tuple[str, str] | None:
    """Return (user, password) from URL userinfo, percent-decoded, if present."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    return unquote(parts.username), unquote(parts.password or "")


Accept = Callable[[ResponseHead], BodyConsumer]
OnEvents = Callable[[list[Any]], None]


class IngestProtocol(asyncio.BufferedProtocol):
    """Send one GET, parse the head, then stream the body into the consumer's buffers."""

    def __init__(
        self,
        request: bytes,
        accept: Accept,
        on_events: OnEvents,
        *,
        scratch_size: int = 4096,
        max_head_size: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._request = request
        self._accept = accept
        self._on_events = on_events
        self._scratch = bytearray(scratch_size)
        self._parser = ResponseHeadParser(max_head_size=max_head_size)
        self._decoder: IdentityDecoder | ChunkedDecoder | None = None
        self._transport: asyncio.Transport | None = None
        self._error: BaseException | None = None
        #: Resolves with the response head (or the error that prevented one).
        self.head: asyncio.Future[ResponseHead] = loop.create_future()
        #: Resolves when the connection is gone: None, or the error that ended it.
        self.closed: asyncio.Future[BaseException | None] = loop.create_future()
        #: Bytes read from the socket.
        self.bytes_in = 0
        #: Body bytes copied out of the head scratch buffer.
        self.head_copied = 0
        self._clock = clock
        #: When the last read happened (``clock()``, ``time.monotonic`` unless given).
        self.last_data = clock()

    @property
    def copied(self) -> int:
        """Return payload bytes copied out of scratch buffers on this connection."""
        return self.head_copied + (self._decoder.copied if self._decoder is not None else 0)

    @property
    def error(self) -> BaseException | None:
        """Return the error that ended the connection, if any."""
        return self._error

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the request."""
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Return the decoder's (the demuxer's) buffer once the head is parsed."""
        if self._decoder is not None:
            return self._decoder.get_buffer(sizehint)
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> None:
        """Hand the bytes just read to the head parser or the body decoder."""
        self.bytes_in += nbytes
        self.last_data = self._clock()
        try:
            if self._decoder is not None:
                events = self._decoder.buffer_updated(nbytes)
            else:
                events = self._receive_head(memoryview(self._scratch)[:nbytes])
            if events:
                self._on_events(events)
            if self._decoder is not None and self._decoder.complete:
                self.close()
        except GatewayError as exc:
            self.abort(exc)

    def _receive_head(self, data: memoryview) -> list[Any]:
        head = self._parser.receive_data(data)
        if head is None:
            return []
        if head.status != 200:
            self.head.set_result(head)
            self.close()
            return []
        consumer = self._accept(head)  # raises UpstreamError for a wrong content type
        self._decoder = body_decoder(head, consumer)
        self.head.set_result(head)
        rest = self._parser.trailing_data
        self.head_copied += len(rest)
        return self._decoder.receive_data(rest) if rest else []

    def eof_received(self) -> bool:
        """End the body (close-delimited bodies end here)."""
        if self._decoder is not None:
            try:
                events = self._decoder.receive_eof()
                if events:
                    self._on_events(events)
            except GatewayError as exc:
                self._error = self._error or exc
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Resolve the futures."""
        error = self._error or exc
        if not self.head.done():
            self.head.set_exception(
                error or RemoteProtocolError("connection closed before the response head")
            )
            # Retrieved by the caller through ``closed`` if not through ``head``.
            self.head.exception()
        if not self.closed.done():
            self.closed.set_result(error)

    def close(self) -> None:
        """Close the connection gracefully."""
        if self._transport is not None:
            self._transport.close()

    def abort(self, error: BaseException) -> None:
        """Drop the connection at once, recording why."""
        self._error = self._error or error
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()
        if self._transport is not None:
            self._transport.abort()


@dataclass(slots=True)
class Opened:
    """A live response ready to stream."""

    protocol: IngestProtocol
    head: ResponseHead
    #: Where the stream came from after same-origin redirects.
    target: Target


async def _connect(target: Target, protocol: IngestProtocol) -> None:
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if target.scheme == "https" else None
    try:
        await loop.create_connection(lambda: protocol, target.host, target.port, ssl=context)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UpstreamError(f"cannot connect to {target.host}:{target.port}: {reason}") from None


async def open_stream(
    target: Target,
    accept: Accept,
    on_events: OnEvents,
    *,
    auth: Authenticator | None = None,
    response_timeout: float = 10.0,
    accept_header: str = "*/*",
    max_redirects: int = 2,
    max_auth_rounds: int = 3,
    clock: Callable[[], float] = time.monotonic,
) -> Opened:
    """Connect, authenticate and follow same-origin redirects until a 200 is streaming.

    :param target: the camera origin and stream path.
    :param accept: called with a 200 head; returns the body consumer or raises
        ``UpstreamError`` (e.g. an unexpected content type).
    :param on_events: called synchronously with each batch of consumer events.
    :param auth: credentials for ``target``'s origin; never sent anywhere else.
    :param response_timeout: seconds allowed for each connect plus response head.
    :param clock: what the protocol's ``last_data`` is read from.
    :raises AuthError: 401/403 that retrying cannot fix.
    :raises UpstreamError: any other non-200 answer, cross-origin redirect, refused connection.
    :raises RemoteProtocolError: malformed response.
    """
    origin = target.origin
    redirects = auth_rounds = 0
    if auth is not None:
        auth.forget_request()
    while True:
        headers = [("User-Agent", USER_AGENT), ("Accept", accept_header)]
        if auth is not None and target.origin == origin:
            value = auth.authorization("GET", target.target)
            if value is not None:
                headers.append(("Authorization", value))
        protocol = IngestProtocol(
            build_request(target.target, target.authority, headers),
            accept,
            on_events,
            clock=clock,
        )
        try:
            async with asyncio.timeout(response_timeout):
                await _connect(target, protocol)
                head = await protocol.head
        except TimeoutError:
            protocol.abort(UpstreamError("timed out"))
            raise UpstreamError(f"no response within {response_timeout:g} s") from None
        except OSError as exc:  # reset or refused after connecting, before the head
            protocol.abort(UpstreamError("connection lost"))
            reason = exc.strerror or type(exc).__name__
            raise UpstreamError(f"connection lost before the response: {reason}") from None
        except BaseException:
            protocol.abort(UpstreamError("cancelled"))
            raise
        if head.status == 200:
            return Opened(protocol, head, target)
        protocol.close()
        if head.status == 401 and auth is not None and auth_rounds < max_auth_rounds:
            result = auth.handle_challenge(head.get_all("www-authenticate"))
            if result is ChallengeResult.RETRY:
                auth_rounds += 1
                continue
            if result is ChallengeResult.UNSUPPORTED:
                raise AuthError("401 Unauthorized: no supported authentication scheme offered")
            raise AuthError("401 Unauthorized: check credentials")
        if head.status == 401:
            detail = "no credentials configured" if auth is None else "check credentials"
            raise AuthError(f"401 Unauthorized: {detail}")
        if head.status == 403:
            raise AuthError("403 Forbidden: check credentials and the user's privileges")
        location = head.get("location")
        if head.status in (301, 302, 303, 307, 308) and location:
            try:
                new = target.resolve(location)
            except GatewayError:
                raise UpstreamError(f"{head.status_text}: unusable redirect") from None
            if new.origin != origin:
                # Never follow: the new origin must not receive our credentials (or our trust).
                raise UpstreamError(
                    f"{head.status_text}: redirect to another origin ({new.host}) not followed"
                )
            if redirects >= max_redirects:
                raise UpstreamError(f"{head.status_text}: too many redirects")
            redirects += 1
            target = new
            continue
        raise UpstreamError(head.status_text)
