"""HLS playlist lines as typed values, written from one table of tags and attributes.

Every line a playlist can hold is a frozen dataclass (``Part``, ``ServerControl``...);
``TAGS`` maps each class to its tag name, the protocol version it needs (RFC 8216bis §8)
and how its value is written: nothing, a decimal-integer, ``EXTINF``'s duration, a
date, or an attribute list whose every attribute (name, field, value type: §4.2) is a
row of the table. Nothing else writes a tag, so a misspelt name or a wrong value type
can only live in the table, which has a test per row. Values that break §4.2 (a quote
in a quoted-string, a negative float) raise ``LocalProtocolError``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from gateway.errors import LocalProtocolError
from gateway.media import NS_PER_SECOND

#: The largest decimal-integer (§4.2).
MAX_INTEGER = 2**64 - 1
#: Decimal places of every decimal-floating-point written: 1 µs, finer than a 90 kHz tick
#: so sums of durations stay exact to well under a frame.
DECIMALS = 6


class Value(enum.Enum):
    """How a tag's value is written after ``#TAG``."""

    NONE = "none"  # #EXTM3U
    INTEGER = "decimal-integer"  # #EXT-X-TARGETDURATION:1
    DURATION = "EXTINF duration"  # #EXTINF:0.96,
    DATE = "date-time"  # #EXT-X-PROGRAM-DATE-TIME:2025-01-02T03:04:05.678Z
    ATTRIBUTES = "attribute-list"  # #EXT-X-PART:DURATION=0.2,URI="..."


class AttrType(enum.Enum):
    """AttributeValue types (§4.2) the gateway writes."""

    INTEGER = "decimal-integer"
    FLOAT = "decimal-floating-point"
    QUOTED = "quoted-string"
    ENUM = "enumerated-string"
    RESOLUTION = "decimal-resolution"
    #: An enumerated-string that is only ever YES: written when the field is True.
    YES = "YES when true"


@dataclass(frozen=True, slots=True)
class Attr:
    """One attribute of a tag: its name, the dataclass field it reads, its value type."""

    name: str
    field: str
    type: AttrType


@dataclass(frozen=True, slots=True)
class TagSpec:
    """How one tag class is written."""

    #: The tag without the leading ``#``.
    name: str
    #: The lowest EXT-X-VERSION a playlist holding this tag may declare (§8).
    version: int
    value: Value
    #: The field holding the value (INTEGER, DURATION, DATE tags).
    field: str = ""
    #: The attributes (ATTRIBUTES tags), written in this order; None fields are left out.
    attrs: tuple[Attr, ...] = ()


class HintType(enum.Enum):
    """EXT-X-PRELOAD-HINT TYPE values (§4.4.5.3)."""

    PART = "PART"
    MAP = "MAP"


# ---- the lines ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    """``#EXTM3U``, the first line of every playlist (§4.4.1.1)."""


@dataclass(frozen=True, slots=True)
class Version:
    """``#EXT-X-VERSION`` (§4.4.1.2); ``render`` computes it."""

    number: int


@dataclass(frozen=True, slots=True)
class TargetDuration:
    """``#EXT-X-TARGETDURATION`` (§4.4.3.1): every EXTINF, rounded, is at most this."""

    seconds: int


@dataclass(frozen=True, slots=True)
class MediaSequence:
    """``#EXT-X-MEDIA-SEQUENCE`` (§4.4.3.2): the first listed segment's number."""

    number: int


@dataclass(frozen=True, slots=True)
class DiscontinuitySequence:
    """``#EXT-X-DISCONTINUITY-SEQUENCE`` (§4.4.3.3)."""

    number: int


@dataclass(frozen=True, slots=True)
class PartInf:
    """``#EXT-X-PART-INF`` (§4.4.3.7)."""

    #: The Part Target Duration, seconds: every part lasts at most this.
    part_target: float


@dataclass(frozen=True, slots=True)
class ServerControl:
    """``#EXT-X-SERVER-CONTROL`` (§4.4.3.8); None leaves an attribute out."""

    #: Skip Boundary, seconds (at least six target durations).
    can_skip_until: float | None = None
    #: Seconds from the end a regular client starts at (at least three target durations).
    hold_back: float | None = None
    #: Seconds from the end a low-latency client starts at (at least three part targets).
    part_hold_back: float | None = None
    can_block_reload: bool = False


@dataclass(frozen=True, slots=True)
class Discontinuity:
    """``#EXT-X-DISCONTINUITY`` (§4.4.4.3): the next segment changes its encoding."""


@dataclass(frozen=True, slots=True)
class Map:
    """``#EXT-X-MAP`` (§4.4.4.5): the init segment of the segments that follow."""

    uri: str


@dataclass(frozen=True, slots=True)
class ProgramDateTime:
    """``#EXT-X-PROGRAM-DATE-TIME`` (§4.4.4.6): the wall clock of a segment's first sample."""

    #: Nanoseconds since the Unix epoch, UTC.
    unix_ns: int


@dataclass(frozen=True, slots=True)
class Part:
    """``#EXT-X-PART`` (§4.4.4.9)."""

    duration: float
    uri: str
    #: The part holds an IDR picture (a client may start there).
    independent: bool = False


@dataclass(frozen=True, slots=True)
class Inf:
    """``#EXTINF`` (§4.4.4.1): the duration of the segment whose URI follows."""

    duration: float


@dataclass(frozen=True, slots=True)
class Uri:
    """A URI line: a media segment, or a variant's media playlist."""

    uri: str


@dataclass(frozen=True, slots=True)
class Skip:
    """``#EXT-X-SKIP`` (§4.4.5.2): this many segments were left out (a delta update)."""

    skipped_segments: int


@dataclass(frozen=True, slots=True)
class PreloadHint:
    """``#EXT-X-PRELOAD-HINT`` (§4.4.5.3): the resource a client may ask for before it exists."""

    type: HintType
    uri: str


@dataclass(frozen=True, slots=True)
class StreamInf:
    """``#EXT-X-STREAM-INF`` (§4.4.6.2): one variant; its media playlist's URI follows."""

    #: Peak segment bit rate, bits per second.
    bandwidth: int
    #: Average segment bit rate, bits per second.
    average_bandwidth: int | None = None
    #: RFC 6381 codecs of every track, comma separated.
    codecs: str | None = None
    #: (width, height) of the video.
    resolution: tuple[int, int] | None = None
    #: Maximum frame rate, frames per second.
    frame_rate: float | None = None


Line = (
    Header | Version | TargetDuration | MediaSequence | DiscontinuitySequence | PartInf
    | ServerControl | Discontinuity | Map | ProgramDateTime | Part | Inf | Uri | Skip
    | PreloadHint | StreamInf
)  # fmt: skip

# ---- the table ------------------------------------------------------------------------

_A = Attr
_T = AttrType
#: Every tag the gateway writes (RFC 8216bis section in the comment).
TAGS: Final[dict[type, TagSpec]] = {
    Header: TagSpec("EXTM3U", 1, Value.NONE),  # 4.4.1.1
    Version: TagSpec("EXT-X-VERSION", 1, Value.INTEGER, "number"),  # 4.4.1.2
    TargetDuration: TagSpec("EXT-X-TARGETDURATION", 1, Value.INTEGER, "seconds"),  # 4.4.3.1
    MediaSequence: TagSpec("EXT-X-MEDIA-SEQUENCE", 1, Value.INTEGER, "number"),  # 4.4.3.2
    DiscontinuitySequence: TagSpec(  # 4.4.3.3
        "EXT-X-DISCONTINUITY-SEQUENCE", 1, Value.INTEGER, "number"
    ),
    PartInf: TagSpec(  # 4.4.3.7
        "EXT-X-PART-INF", 1, Value.ATTRIBUTES, attrs=(_A("PART-TARGET", "part_target", _T.FLOAT),)
    ),
    ServerControl: TagSpec(  # 4.4.3.8
        "EXT-X-SERVER-CONTROL",
        1,
        Value.ATTRIBUTES,
        attrs=(
            _A("CAN-BLOCK-RELOAD", "can_block_reload", _T.YES),
            _A("CAN-SKIP-UNTIL", "can_skip_until", _T.FLOAT),
            _A("HOLD-BACK", "hold_back", _T.FLOAT),
            _A("PART-HOLD-BACK", "part_hold_back", _T.FLOAT),
        ),
    ),
    Discontinuity: TagSpec("EXT-X-DISCONTINUITY", 1, Value.NONE),  # 4.4.4.3
    # §8: EXT-X-MAP in a playlist without EXT-X-I-FRAMES-ONLY needs version 6.
    Map: TagSpec("EXT-X-MAP", 6, Value.ATTRIBUTES, attrs=(_A("URI", "uri", _T.QUOTED),)),
    ProgramDateTime: TagSpec("EXT-X-PROGRAM-DATE-TIME", 1, Value.DATE, "unix_ns"),  # 4.4.4.6
    Part: TagSpec(  # 4.4.4.9
        "EXT-X-PART",
        1,
        Value.ATTRIBUTES,
        attrs=(
            _A("DURATION", "duration", _T.FLOAT),
            _A("URI", "uri", _T.QUOTED),
            _A("INDEPENDENT", "independent", _T.YES),
        ),
    ),
    # §8: floating-point EXTINF durations need version 3.
    Inf: TagSpec("EXTINF", 3, Value.DURATION, "duration"),  # 4.4.4.1
    # §8: EXT-X-SKIP needs version 9 (10 only when it replaces EXT-X-DATERANGE tags).
    Skip: TagSpec(
        "EXT-X-SKIP",
        9,
        Value.ATTRIBUTES,
        attrs=(_A("SKIPPED-SEGMENTS", "skipped_segments", _T.INTEGER),),
    ),
    PreloadHint: TagSpec(  # 4.4.5.3
        "EXT-X-PRELOAD-HINT",
        1,
        Value.ATTRIBUTES,
        attrs=(_A("TYPE", "type", _T.ENUM), _A("URI", "uri", _T.QUOTED)),
    ),
    StreamInf: TagSpec(  # 4.4.6.2
        "EXT-X-STREAM-INF",
        1,
        Value.ATTRIBUTES,
        attrs=(
            _A("BANDWIDTH", "bandwidth", _T.INTEGER),
            _A("AVERAGE-BANDWIDTH", "average_bandwidth", _T.INTEGER),
            _A("CODECS", "codecs", _T.QUOTED),
            _A("RESOLUTION", "resolution", _T.RESOLUTION),
            _A("FRAME-RATE", "frame_rate", _T.FLOAT),
        ),
    ),
}


def render_line(line: Line) -> str:
    """Return one line of a playlist (no line terminator)."""
    if isinstance(line, Uri):
        return _uri_line(line.uri)
    spec = TAGS[type(line)]
    text = "#" + spec.name
    if spec.value is Value.NONE:
        return text
    if spec.value is Value.ATTRIBUTES:
        pairs = []
        for attr in spec.attrs:
            value = getattr(line, attr.field)
            if value is None or value is False:
                continue
            pairs.append(f"{attr.name}={_ATTR_WRITERS[attr.type](value)}")
        return f"{text}:{','.join(pairs)}"
    value = getattr(line, spec.field)
    if spec.value is Value.INTEGER:
        return f"{text}:{_integer(value)}"
    if spec.value is Value.DURATION:
        return f"{text}:{_decimal(value)},"  # no title
    return f"{text}:{_date(value)}"


def _uri_line(uri: str) -> str:
    if not uri or uri[0] == "#" or any(ch in uri for ch in "\r\n"):
        raise LocalProtocolError(f"not a playlist URI line: {uri!r}")
    return uri


def _integer(value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INTEGER:
        raise LocalProtocolError(f"not a decimal-integer: {value!r}")
    return str(value)


def _decimal(value: float) -> str:
    if not math.isfinite(value) or value < 0:
        raise LocalProtocolError(f"not a decimal-floating-point: {value!r}")
    text = f"{value:.{DECIMALS}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _quoted(value: str) -> str:
    # §4.2: non-empty, no line feed, carriage return or double quote.
    if not value or any(ch in value for ch in '\r\n"'):
        raise LocalProtocolError(f"not a quoted-string: {value!r}")
    return f'"{value}"'


def _enumerated(value: enum.Enum | str) -> str:
    text = value.value if isinstance(value, enum.Enum) else value
    if not isinstance(text, str) or not text or any(ch in text for ch in '",\r\n\t '):
        raise LocalProtocolError(f"not an enumerated-string: {value!r}")
    return text


def _resolution(value: tuple[int, int]) -> str:
    width, height = value
    return f"{_integer(width)}x{_integer(height)}"


def _yes(value: bool) -> str:
    if value is not True:
        raise LocalProtocolError(f"a YES attribute takes True, got {value!r}")
    return "YES"


def _date(unix_ns: int) -> str:
    # §4.4.4.6: ISO 8601 with a time zone; milliseconds, as §4.4.5.1 asks of dates.
    moment = datetime.fromtimestamp(unix_ns // NS_PER_SECOND, UTC)
    millis = unix_ns % NS_PER_SECOND // 1_000_000
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


_ATTR_WRITERS: Final[dict[AttrType, Callable[..., str]]] = {
    AttrType.INTEGER: _integer,
    AttrType.FLOAT: _decimal,
    AttrType.QUOTED: _quoted,
    AttrType.ENUM: _enumerated,
    AttrType.RESOLUTION: _resolution,
    AttrType.YES: _yes,
}
