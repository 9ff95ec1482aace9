"""Endpoint handlers of the simulated Axis camera (VAPIX §5.2, §5.3, §5.5)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from gateway.errors import ConfigError
from gateway.sim.encoders import AudioCodec, insert_comment
from gateway.sim.framing import Framing, make_framing
from gateway.sim.options import MPEG2_FORMATS, Quirk, Quirks, check_size
from gateway.sim.source import Chunk, Source, SourceClosedError
from gateway.sim.state import STATE, SimState

log = logging.getLogger(__name__)

#: The quirks in force for a request (global ones merged with ``quirk=`` parameters).
QUIRKS = web.RequestKey("sim_quirks", Quirks)
#: How often a stalled stream checks whether its client is still there (seconds).
HOLD_POLL = 0.5
#: The audio path, whose live connections getparam.cgi reports.
AUDIO_PATH = "/axis-cgi/audio/receive.cgi"


class ParamError(Exception):
    """A query parameter is invalid; answered ``400 Error: <message>`` like a camera."""


class IdentityResponse(web.StreamResponse):
    """A streamed response whose body ends when the server closes the connection.

    aiohttp would chunk an HTTP/1.1 body of unknown length; a camera sends it as is and
    closes (RFC 9112 §6.3 item 8). aiohttp's WebSocketResponse opts out the same way.
    """

    _length_check = False


def _state(request: web.Request) -> SimState:
    return request.app[STATE]


def _int(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdecimal():
        raise ParamError(f"{name} must be a non-negative integer, got {text!r}")
    return int(text)


def _channel(request: web.Request) -> int:
    text = request.match_info.get("camera") or request.query.get("camera", "1")
    channels = _state(request).options.channels
    if not text.isdecimal() or not 1 <= int(text) <= channels:
        raise ParamError(f"camera must be 1..{channels}, got {text!r}")
    return int(text)


def _size(request: web.Request) -> tuple[int, int]:
    text = request.query.get("resolution")
    if text is None:
        return _state(request).options.size
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdecimal() and height.isdecimal()):
        raise ParamError(f"resolution must be WIDTHxHEIGHT, got {text!r}")
    size = int(width), int(height)
    try:
        check_size(size, "resolution")
    except ConfigError as exc:
        raise ParamError(str(exc)) from None
    return size


def _rate(request: web.Request) -> float | None:
    """Return the client's target rate: req_fps, else des_fps or fps, else None."""
    query = request.query
    if "req_fps" in query and ("des_fps" in query or "fps" in query):
        raise ParamError("req_fps and des_fps cannot be used at the same time")
    for name in ("req_fps", "des_fps", "fps"):
        if name in query:
            try:
                value = float(query[name])
            except ValueError:
                value = 0.0
            if not 0 < value <= 1000:
                raise ParamError(f"{name} must be a positive number, got {query[name]!r}")
            return value
    return None


class RatePicker:
    """Picks frames by source timestamp so a client gets its rate, evenly spaced."""

    def __init__(self, fps: float | None, source_interval: float) -> None:
        self._step = round(1e9 / fps) if fps else 0
        self._slack = round(source_interval * 1e9 / 2)
        self._due: int | None = None

    def take(self, mono_ns: int) -> bool:
        """Return True when the frame captured at mono_ns should be sent."""
        if self._due is not None and mono_ns < self._due - self._slack:
            return False
        due = mono_ns if self._due is None else self._due
        # After a stall, restart the schedule from now rather than sending a burst.
        self._due = max(due + self._step, mono_ns + self._step - self._slack)
        return True


class Faults:
    """The per-connection faults: stall, close mid-frame or end the multipart body after N units."""

    def __init__(self, quirks: Quirks, framing: Framing | None = None) -> None:
        self.stall_after = quirks.get(Quirk.STALL_AFTER)
        self.close_after = quirks.get(Quirk.CLOSE_MID_FRAME)
        # Multipart faults need the framing (MPEG-2 has none: they do not apply).
        self._framing = framing
        self.end_after = quirks.get(Quirk.CLOSE_DELIMITER_THEN_JUNK) if framing else None
        self.boundary_in = quirks.get(Quirk.BOUNDARY_IN_JPEG) if framing else None

    def payload(self, sent: int, data: bytes) -> bytes:
        """Return JPEG number sent, with the close delimiter inside it when that is due."""
        if self._framing is None or sent != self.boundary_in:
            return data
        # A COM segment may hold any bytes (ITU T.81 B.2.4.5): RFC 2046 §5.1.1 forbids the
        # delimiter inside a body, so only Content-Length saves a reader here.
        return insert_comment(data, self._framing.close_line().decode("ascii"))

    async def before(
        self, request: web.Request, response: web.StreamResponse, sent: int, unit: bytes, cut: int
    ) -> bool:
        """Apply a due fault before unit number sent; return True when the stream must end.

        cut is where the payload starts in unit: close-mid-frame sends half of it.
        """
        if self.stall_after is not None and sent >= self.stall_after:
            await _hold(request)
            return True
        if self.close_after is not None and sent >= self.close_after:
            await response.write(unit[: cut + (len(unit) - cut) // 2])
            if request.transport is not None:
                request.transport.close()
            return True
        if self._framing is not None and sent == self.end_after:
            # The body ends here; what follows is an epilogue a reader must ignore, and
            # the connection stays open (the camera "forgot" to close it).
            await response.write(self._framing.close_line())
        return False


async def _hold(request: web.Request) -> None:
    """Keep the connection open and silent until the client leaves or the server stops."""
    closing = _state(request).closing
    while not closing.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        try:
            await asyncio.wait_for(closing.wait(), HOLD_POLL)
        except TimeoutError:
            pass


async def _wait(source: Source, index: int, deadline: float | None) -> bool:
    """Wait for chunk index; return False when the duration ran out or the source closed."""
    try:
        async with asyncio.timeout_at(deadline):
            await source.wait(index)
    except (TimeoutError, SourceClosedError):
        return False
    return True


async def _open(request: web.Request, content_type: str) -> web.StreamResponse:
    """Send the head of a streamed response: identity body closed at the end, or chunked."""
    response = IdentityResponse(
        headers={"Content-Type": content_type, "Cache-Control": "no-cache", "Pragma": "no-cache"}
    )
    response.force_close()
    if Quirk.CHUNKED in request[QUIRKS] and request.version >= (1, 1):
        response.enable_chunked_encoding()
    await response.prepare(request)
    return response


def _deadline(request: web.Request) -> float | None:
    duration = _int(request, "duration", 0)
    return asyncio.get_running_loop().time() + duration if duration else None


async def mjpeg(request: web.Request) -> web.StreamResponse:
    """Serve ``multipart/x-mixed-replace`` JPEG (§5.2.6/5.2.7)."""
    state = _state(request)
    channel, size, rate = _channel(request), _size(request), _rate(request)
    limit = _int(request, "nbrofframes", 0)
    deadline = _deadline(request)
    framing = make_framing(request[QUIRKS], content_length=request.query.get("showlength") != "0")
    delta = request.query.get("deltatime") == "1"
    source = state.video_source(channel, size)
    picker, faults = RatePicker(rate, source.interval), Faults(request[QUIRKS], framing)
    response = await _open(request, framing.content_type)
    source.subscribe()
    try:
        await response.write(framing.opening())
        index = _start_index(source)
        sent, previous = 0, 0
        while (not limit or sent < limit) and await _wait(source, index, deadline):
            chunk = source.latest
            assert chunk is not None
            index = chunk.index + 1
            if not picker.take(chunk.mono_ns):
                continue
            extra: tuple[tuple[str, str], ...] = ()
            if delta:
                extra = (("X-Delta-Time", str((chunk.mono_ns - previous) // 1000 if sent else 0)),)
            data = faults.payload(sent, chunk.data)
            head = framing.head("image/jpeg", len(data), sent, extra)
            unit = b"".join((head, data, framing.tail()))
            if await faults.before(request, response, sent, unit, len(head)):
                return response
            await response.write(unit)
            sent, previous = sent + 1, chunk.mono_ns
        await response.write_eof()
    except ConnectionError:
        log.debug("mjpeg client %s left", request.remote)
    finally:
        source.unsubscribe()
    return response


def _start_index(source: Source) -> int:
    """Return the first chunk a new client gets: the newest if fresh, else the next one."""
    latest = source.latest
    now_ns = round(asyncio.get_running_loop().time() * 1e9)
    if latest is not None and now_ns - latest.mono_ns < 2 * source.interval * 1e9:
        return latest.index
    return source.next_index


async def snapshot(request: web.Request) -> web.StreamResponse:
    """Serve one JPEG with Content-Length (§5.2.1-5.2.3)."""
    source = _state(request).video_source(_channel(request), _size(request))
    source.subscribe()
    try:
        if not await _wait(source, _start_index(source), None):
            return web.Response(status=503, text="Error: shutting down\r\n")
        chunk = source.latest
        assert chunk is not None
    finally:
        source.unsubscribe()
    return web.Response(body=chunk.data, content_type="image/jpeg")


class ChunkReader:
    """Reads every chunk of a source in order, starting (and resyncing) at a key chunk."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._next = source.next_index
        self._synced = False

    async def read(self, deadline: float | None) -> list[Chunk] | None:
        """Return the next chunks, or None when the duration ran out or the source closed."""
        while await _wait(self._source, self._next, deadline):
            chunks = self._source.since(self._next)
            if not chunks:
                self._next = self._source.next_index
                continue
            if chunks[0].index != self._next:
                self._synced = False  # this client fell out of the ring: skip to a key
            self._next = chunks[-1].index + 1
            if not self._synced:
                keys = [i for i, chunk in enumerate(chunks) if chunk.key]
                if not keys:
                    continue
                chunks, self._synced = chunks[keys[-1] :], True
            return chunks
        return None


async def _pump(
    request: web.Request,
    response: web.StreamResponse,
    source: Source,
    deadline: float | None,
    unit: Callable[[Chunk, int], tuple[bytes, int]],
    *,
    framing: Framing | None = None,
) -> web.StreamResponse:
    """Send every chunk of ``source`` in order, framed by ``unit`` -> (bytes, head length)."""
    faults = Faults(request[QUIRKS], framing)
    source.subscribe()
    try:
        reader, sent = ChunkReader(source), 0
        while (chunks := await reader.read(deadline)) is not None:
            for chunk in chunks:
                data, head_length = unit(chunk, sent)
                if await faults.before(request, response, sent, data, head_length):
                    return response
                await response.write(data)
                sent += 1
        await response.write_eof()
    except ConnectionError:
        log.debug("%s client %s left", request.path, request.remote)
    finally:
        source.unsubscribe()
    return response


async def mpeg2(request: web.Request) -> web.StreamResponse:
    """Serve MPEG-2 video as elementary, program or transport stream (§5.3.1/5.3.2)."""
    state = _state(request)
    channel, size = _channel(request), _size(request)
    container = request.query.get("format", state.options.mpeg2_format)
    if container not in MPEG2_FORMATS:
        raise ParamError(f"format must be es, ps or ts, got {container!r}")
    deadline = _deadline(request)
    source = state.mpeg2_source(channel, size, container)
    response = await _open(request, "video/mpeg")
    return await _pump(request, response, source, deadline, lambda chunk, sent: (chunk.data, 0))


async def audio(request: web.Request) -> web.StreamResponse:
    """Serve multipart audio parts without Content-Length (§5.5.1/5.5.2)."""
    state = _state(request)
    channel = _channel(request)
    try:
        codec = AudioCodec(request.query.get("codec", state.options.audio_codec))
    except ValueError:
        raise ParamError("codec must be g726, g726le or pcmu") from None
    deadline = _deadline(request)
    framing: Framing = make_framing(request[QUIRKS], content_length=False, audio=True)
    source = state.audio_source(channel, codec)
    response = await _open(request, framing.content_type)

    def unit(chunk: Chunk, sent: int) -> tuple[bytes, int]:
        # The opening (preamble, first delimiter) rides with the first part.
        head = (framing.opening() if sent == 0 else b"") + framing.head(
            codec.content_type, len(chunk.data), sent
        )
        return b"".join((head, chunk.data, framing.tail())), len(head)

    return await _pump(request, response, source, deadline, unit, framing=framing)


async def audio_params(request: web.Request) -> web.StreamResponse:
    """Serve the ``root.Audioc`` parameters (§5.5.4); connectedClients is live."""
    clients = _state(request).connections[AUDIO_PATH]
    lines = (
        "root.Audioc.duplexMode=half",
        "root.Audioc.maxNumberOfClients=20",
        "root.Audioc.forwardOnPost=yes",
        "root.Audioc.buttonMode=push",
        "root.Audioc.clientBufferSize=400",
        f"root.Audioc.connectedClients={clients}",
        "root.Audioc.connectedPostClients=0",
    )
    return web.Response(text="\r\n".join(lines) + "\r\n\r\n", content_type="text/plain")
