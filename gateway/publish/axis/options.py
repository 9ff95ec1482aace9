"""The MJPEG request's own parameters (VAPIX §5.2.6), parsed without I/O.

Image parameters (``resolution``, ``compression``, ``colorlevel``, ``rotation``,
``clock``, ``date``, ``text``) are ``gateway.transcode.parse_image_params``'s; ``camera``
selects the camera and is the handler's. Every other key is checked here against one
table, so each accepted parameter has exactly one parser and one error message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.hub import Priority
from gateway.media import Frame, Payload
from gateway.transcode import ParamError

#: Values of ``maxlag`` below this many ms mean this many ms (DESIGN §6).
MIN_MAXLAG_MS = 500
#: Upper bounds that keep a typo from meaning "forever" in an int the OS cannot sleep.
MAX_FPS = 1000
MAX_SECONDS = 10**7
MAX_FRAMES = 10**9


def integer(name: str, low: int, high: int) -> Callable[[str], int]:
    """Return the parser of an Axis integer parameter in [low, high] (one-line errors)."""

    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            shown = text if len(text) <= 20 else text[:20] + "..."
            raise ParamError(f"{name} must be an integer from {low} to {high}, got {shown!r}")
        return int(text)

    return parse


#: Parameter -> parser. Rate keys are resolved together in ``parse_mjpeg_options``.
PARSERS: dict[str, Callable[[str], int]] = {
    "showlength": integer("showlength", 0, 1),
    "deltatime": integer("deltatime", 0, 1),
    "duration": integer("duration", 0, MAX_SECONDS),
    "nbrofframes": integer("nbrofframes", 0, MAX_FRAMES),
    "maxlag": integer("maxlag", 0, MAX_SECONDS * 1000),
    "req_fps": integer("req_fps", 1, MAX_FPS),
    "des_fps": integer("des_fps", 1, MAX_FPS),
    "fps": integer("fps", 1, MAX_FPS),
}
#: Rate keys and the priority each gives (``fps`` is newer firmware's ``des_fps``).
RATE_KEYS = {"req_fps": Priority.REQUIRED, "des_fps": Priority.DESIRED, "fps": Priority.DESIRED}


@dataclass(frozen=True, slots=True)
class MjpegOptions:
    """What one MJPEG client asked for, besides the image and the camera."""

    #: Frames per second asked (None: every frame of the source).
    target_fps: int | None = None
    #: REQUIRED for ``req_fps``; DESIRED for ``des_fps``/``fps``/nothing.
    priority: Priority = Priority.DESIRED
    #: Send ``Content-Length`` in each part (``showlength=0`` omits it).
    showlength: bool = True
    #: Send ``X-Delta-Time`` (µs since the previous delivered image) in each part.
    deltatime: bool = False
    #: Seconds to stream (None: until the client leaves).
    duration: int | None = None
    #: Frames to send (None: no limit).
    nbrofframes: int | None = None
    #: Cut the client's backlog beyond this lag, in ns (None: no ``maxlag``).
    maxlag_ns: int | None = None


def check_quad(query: Mapping[str, str]) -> None:
    """Refuse ``quad=1`` (one image per camera here); ``quad=0`` is the default."""
    if query.get("quad", "0") != "0":
        raise ParamError("quad is not supported (only quad=0)")


def parse_mjpeg_options(query: Mapping[str, str]) -> MjpegOptions:
    """Validate the non-image parameters of an MJPEG request; raise ParamError."""
    check_quad(query)
    values = {key: parse(query[key]) for key, parse in PARSERS.items() if key in query}
    rates = [key for key in RATE_KEYS if key in values]
    if len(rates) > 1:
        raise ParamError(f"{rates[0]} and {rates[1]} cannot be used at the same time")
    target, priority = None, Priority.DESIRED
    if rates:
        target, priority = values[rates[0]], RATE_KEYS[rates[0]]
    maxlag = values.get("maxlag")
    return MjpegOptions(
        target_fps=target,
        priority=priority,
        showlength=values.get("showlength", 1) == 1,
        deltatime=values.get("deltatime", 0) == 1,
        duration=values.get("duration") or None,
        nbrofframes=values.get("nbrofframes") or None,
        maxlag_ns=None if maxlag is None else max(maxlag, MIN_MAXLAG_MS) * 1_000_000,
    )


def part_header(length: int | None, delta_us: int | None) -> bytes:
    """Return the delimiter and headers of one part (VAPIX §5.2.7, RFC 2046 §5.1.1)."""
    head = b"--myboundary\r\nContent-Type: image/jpeg\r\n"
    if length is not None:
        head += b"Content-Length: %d\r\n" % length
    if delta_us is not None:
        head += b"X-Delta-Time: %d\r\n" % delta_us
    return head + b"\r\n"


#: What follows a part's body: the CRLF before the next delimiter (RFC 2046 §5.1.1).
CRLF = b"\r\n"


class PartCache:
    """The part of the newest frame without ``X-Delta-Time``, built once for all clients.

    Every client of a stream without ``deltatime`` sends the same header, so the
    ``(header, payload, CRLF)`` chunks and their length are made once per frame.
    """

    __slots__ = ("_frame", "_part", "showlength")

    def __init__(self, showlength: bool) -> None:
        self.showlength = showlength
        self._frame: Frame | None = None
        self._part: tuple[tuple[Payload, ...], int] = ((), 0)

    def get(self, frame: Frame) -> tuple[tuple[Payload, ...], int]:
        """Return the chunks of ``frame``'s part and their total length."""
        if frame is not self._frame:
            size = len(frame.payload)
            header = part_header(size if self.showlength else None, None)
            self._part = ((header, frame.payload, CRLF), len(header) + size + len(CRLF))
            self._frame = frame
        return self._part
