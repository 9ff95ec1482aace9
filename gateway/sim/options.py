"""Simulator options and the table of quirks (dialects and faults, DESIGN §7)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from gateway.errors import ConfigError


class Quirk(enum.Enum):
    """A dialect or fault the simulator can switch on, by its ``--quirk`` / ``quirk=`` name."""

    NO_CONTENT_LENGTH = "no-content-length"
    LF_ONLY = "lf-only"
    BOUNDARY_DASHES = "boundary-dashes"
    BOUNDARY_QUOTED = "boundary-quoted"
    BOUNDARY_MISMATCH = "boundary-mismatch"
    NO_INITIAL_BOUNDARY = "no-initial-boundary"
    PREAMBLE = "preamble"
    EXTRA_BLANK_LINES = "extra-blank-lines"
    CHUNKED = "chunked"
    WRONG_CONTENT_LENGTH = "wrong-content-length"
    STALL_AFTER = "stall-after"
    CLOSE_MID_FRAME = "close-mid-frame"
    STATUS_401 = "status-401"
    STATUS_503 = "status-503"
    HTML_ERROR = "html-error"
    NEW_BOUNDARY = "new-boundary"
    AUDIO_NO_BLANK_LINE = "audio-no-blank-line"
    CLOSE_DELIMITER_THEN_JUNK = "close-delimiter-then-junk"
    BOUNDARY_IN_JPEG = "boundary-in-jpeg"


#: One line per quirk: what it does to the response. The CLI help and docs use this.
QUIRK_HELP: Final[Mapping[Quirk, str]] = {
    Quirk.NO_CONTENT_LENGTH: "parts carry no Content-Length (readers must scan for the boundary)",
    Quirk.LF_ONLY: "multipart framing uses bare LF line endings instead of CRLF",
    Quirk.BOUNDARY_DASHES: "declared as boundary=--myboundary while the body uses --myboundary",
    Quirk.BOUNDARY_QUOTED: 'declared as boundary="myboundary" (a quoted-string)',
    Quirk.BOUNDARY_MISMATCH: "the body uses a different boundary from the declared one",
    Quirk.NO_INITIAL_BOUNDARY: "the first part starts with its headers, no delimiter before it",
    Quirk.PREAMBLE: "a line of text before the first delimiter (RFC 2046 §5.1.1 preamble)",
    Quirk.EXTRA_BLANK_LINES: "blank lines before the first delimiter and after each payload",
    Quirk.CHUNKED: "HTTP/1.1 chunked transfer coding of the body (identity for HTTP/1.0)",
    Quirk.WRONG_CONTENT_LENGTH: "every 5th part declares a Content-Length 7 short or 9 long",
    Quirk.STALL_AFTER: "stall-after=N: after N frames keep the connection open, send nothing",
    Quirk.CLOSE_MID_FRAME: "close-mid-frame=N: after N frames send half a frame, then close",
    Quirk.STATUS_401: "every request is answered 401, whatever the credentials",
    Quirk.STATUS_503: "every request is answered 503 Service Unavailable",
    Quirk.HTML_ERROR: "every request is answered 200 with a text/html error page",
    Quirk.NEW_BOUNDARY: "each connection uses a different random boundary",
    Quirk.AUDIO_NO_BLANK_LINE: "audio parts omit the blank line after their headers (§5.5.2)",
    Quirk.CLOSE_DELIMITER_THEN_JUNK: (
        "close-delimiter-then-junk=N: after N parts send the close delimiter, then keep the"
        " connection open and go on sending parts"
    ),
    Quirk.BOUNDARY_IN_JPEG: (
        "boundary-in-jpeg=N: JPEG number N carries the close delimiter in a COM segment"
        " (a reader without Content-Length sees the stream end there); the stream goes on"
    ),
}

#: Quirks written NAME=N, with N a frame count.
COUNTED: Final = frozenset(
    {
        Quirk.STALL_AFTER,
        Quirk.CLOSE_MID_FRAME,
        Quirk.CLOSE_DELIMITER_THEN_JUNK,
        Quirk.BOUNDARY_IN_JPEG,
    }
)

#: Active quirks: each maps to its count (0 for quirks without one).
Quirks = Mapping[Quirk, int]


class QuirkError(ValueError):
    """A quirk name or count is not valid."""


def parse_quirks(specs: Iterable[str]) -> dict[Quirk, int]:
    """Parse quirk specs such as ``lf-only`` and ``stall-after=3``."""
    quirks: dict[Quirk, int] = {}
    for spec in specs:
        name, sep, count = spec.strip().partition("=")
        try:
            quirk = Quirk(name)
        except ValueError:
            known = ", ".join(q.value for q in Quirk)
            raise QuirkError(f"unknown quirk {name!r} (known: {known})") from None
        if quirk in COUNTED:
            if not sep or not count.isdecimal():
                raise QuirkError(f"quirk {name!r} needs a frame count: {name}=N")
            quirks[quirk] = int(count)
        elif sep:
            raise QuirkError(f"quirk {name!r} takes no value")
        else:
            quirks[quirk] = 0
    return quirks


#: Supported values of SimOptions.auth.
AUTH_SCHEMES: Final = ("basic", "digest")
#: Supported values of SimOptions.mpeg2_format: elementary, program or transport stream.
MPEG2_FORMATS: Final = ("es", "ps", "ts")
#: Supported values of SimOptions.audio_codec.
AUDIO_CODECS: Final = ("g726", "g726le", "pcmu")


@dataclass(frozen=True)
class SimOptions:
    """What the simulated camera serves."""

    #: Source frame rate of every channel (MPEG-2 uses the nearest rate it can signal).
    fps: float = 25.0
    #: Default resolution (width, height); requests may ask for another with resolution=.
    size: tuple[int, int] = (640, 480)
    #: Quirk specs switched on for every request, e.g. ``{"lf-only", "stall-after=5"}``.
    quirks: frozenset[str] = field(default_factory=frozenset)
    #: ``"basic"`` or ``"digest"`` to require credentials; None serves anyone.
    auth: str | None = None
    #: (name, password) accepted when auth is set.
    user: tuple[str, str] | None = None
    #: Number of video inputs (``camera=1..channels``).
    channels: int = 4
    #: ``"es"`` (elementary), ``"ps"`` (program) or ``"ts"`` (transport stream) for MPEG-2.
    mpeg2_format: str = "es"
    #: MPEG-2 open GOPs: B-pictures at a GOP start refer to the previous GOP.
    mpeg2_open_gop: bool = False
    #: Default audio encoding: ``"g726"``, ``"g726le"`` or ``"pcmu"``.
    audio_codec: str = "g726"
    #: Seconds a Digest nonce stays valid; later uses are answered ``stale=true``.
    nonce_ttl: float = 300.0

    def __post_init__(self) -> None:
        """Reject values the simulator cannot serve, naming the field."""
        if not 0 < self.fps <= 120:
            raise ConfigError(f"sim.fps: must be in (0, 120], got {self.fps}")
        check_size(self.size, "sim.size")
        if not 1 <= self.channels <= 16:
            raise ConfigError(f"sim.channels: must be 1..16, got {self.channels}")
        if self.mpeg2_format not in MPEG2_FORMATS:
            raise ConfigError(f"sim.mpeg2_format: must be one of {', '.join(MPEG2_FORMATS)}")
        if self.audio_codec not in AUDIO_CODECS:
            raise ConfigError(f"sim.audio_codec: must be one of {', '.join(AUDIO_CODECS)}")
        if self.auth is not None and self.auth not in AUTH_SCHEMES:
            raise ConfigError(f"sim.auth: must be one of {', '.join(AUTH_SCHEMES)}")
        if (self.auth is None) != (self.user is None):
            raise ConfigError("sim.auth: auth and user go together")
        if self.nonce_ttl <= 0:
            raise ConfigError("sim.nonce_ttl: must be positive")
        try:
            parse_quirks(self.quirks)
        except QuirkError as exc:
            raise ConfigError(f"sim.quirks: {exc}") from None

    @property
    def parsed_quirks(self) -> dict[Quirk, int]:
        """Return the global quirks, parsed."""
        return parse_quirks(self.quirks)


def check_size(size: tuple[int, int], key: str) -> None:
    """Raise ConfigError unless size is an even width x height between 16 and 4096."""
    width, height = size
    if not (16 <= width <= 4096 and 16 <= height <= 4096) or width % 2 or height % 2:
        raise ConfigError(f"{key}: must be even, 16..4096 per side, got {width}x{height}")
