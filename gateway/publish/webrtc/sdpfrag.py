"""Trickle ICE SDP fragments (``application/trickle-ice-sdpfrag``, RFC 8840 §9), sans-IO.

WHEP carries them in PATCH (draft-ietf-wish-whep, after RFC 9725 §4.3): a client trickles
candidates, signals end-of-candidates, or restarts ICE with new credentials. A fragment
is a few SDP lines: ``a=ice-ufrag``/``a=ice-pwd`` at session or media level (the media
level wins, RFC 8839 §5.4), then one media description per ``a=mid`` with its
``a=candidate`` lines (RFC 8839 §5.1) and ``a=end-of-candidates`` (RFC 8840 §8.2).

The parser never touches the network and raises only ``RemoteProtocolError``; every
candidate it returns is one that ``aioice.Candidate.from_sdp`` parses without raising.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from gateway.errors import RemoteProtocolError

#: Default bound on a fragment's size: a browser's trickle PATCH is a few hundred bytes.
MAX_BYTES = 16 * 1024
#: Default bound on a fragment's lines (each candidate is one).
MAX_LINES = 256

# RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/"; ufrag 4..256, pwd 22..256 chars.
_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}")
_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}")
# RFC 8839 §5.1: foundation = 1*32ice-char.
_FOUNDATION = re.compile(r"[A-Za-z0-9+/]{1,32}")
# RFC 5888 identification-tag = token (RFC 4566 §9).
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,64}")
_HOSTNAME = re.compile(r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*")
_LINE = re.compile(r"([a-z])=(.*)")
# Candidates, credentials and mids are visible ASCII and spaces only: then str.split(),
# which aioice uses, splits exactly where the grammar's SP are.
_VISIBLE = re.compile(r"[\x20-\x7e]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]{1,10}")

_TRANSPORTS = frozenset({"udp", "tcp"})
_TYPES = frozenset({"host", "srflx", "prflx", "relay"})  # RFC 8839 §5.1 candidate-types
_TCP_TYPES = frozenset({"active", "passive", "so"})  # RFC 6544 §4.5


@dataclass(frozen=True, slots=True)
class MediaFrag:
    """One media description of a fragment: the ICE attributes of one ``mid``."""

    #: The ``a=mid`` naming the offer's media section (RFC 9143 identification-tag).
    mid: str
    #: The ``m=`` line value as sent, e.g. ``audio 9 UDP/TLS/RTP/SAVPF 111``.
    media: str
    #: Media-level ``a=ice-ufrag``, or None (the session level then applies).
    ice_ufrag: str | None = None
    #: Media-level ``a=ice-pwd``, or None (the session level then applies).
    ice_pwd: str | None = None
    #: The ``a=candidate:`` values (what follows the colon), validated, in order.
    candidates: tuple[str, ...] = ()
    #: Whether the section had ``a=end-of-candidates``.
    end_of_candidates: bool = False


@dataclass(frozen=True, slots=True)
class SdpFrag:
    """A parsed trickle-ice-sdpfrag: session-level credentials and media descriptions."""

    #: Session-level ``a=ice-ufrag``, or None.
    ice_ufrag: str | None = None
    #: Session-level ``a=ice-pwd``, or None.
    ice_pwd: str | None = None
    #: Session-level ``a=end-of-candidates``: no more candidates for any media.
    end_of_candidates: bool = False
    #: The media descriptions, in order, with distinct mids.
    media: tuple[MediaFrag, ...] = ()

    @property
    def ufrags(self) -> frozenset[str]:
        """Return every ice-ufrag the fragment names, at any level."""
        named = {m.ice_ufrag for m in self.media} | {self.ice_ufrag}
        return frozenset(u for u in named if u is not None)

    @property
    def candidate_count(self) -> int:
        """Return the number of candidates in all media descriptions."""
        return sum(len(m.candidates) for m in self.media)

    def credentials(self, section: MediaFrag | None = None) -> tuple[str | None, str | None]:
        """Return the (ufrag, pwd) in force for ``section``, or for the fragment as a whole."""
        if section is None:
            if self.ice_ufrag is not None or not self.media:
                return self.ice_ufrag, self.ice_pwd
            section = next((m for m in self.media if m.ice_ufrag is not None), self.media[0])
        ufrag = section.ice_ufrag if section.ice_ufrag is not None else self.ice_ufrag
        pwd = section.ice_pwd if section.ice_pwd is not None else self.ice_pwd
        return ufrag, pwd

    def ended(self, section: MediaFrag) -> bool:
        """Tell whether no more candidates follow for ``section``."""
        return self.end_of_candidates or section.end_of_candidates

    def to_text(self) -> str:
        """Render the fragment as CRLF-terminated SDP lines (parse_sdpfrag's inverse)."""
        lines = [*_credential_lines(self.ice_ufrag, self.ice_pwd)]
        if self.end_of_candidates:
            lines.append("a=end-of-candidates")
        for m in self.media:
            lines += [f"m={m.media}", f"a=mid:{m.mid}"]
            lines += _credential_lines(m.ice_ufrag, m.ice_pwd)
            lines += [f"a=candidate:{c}" for c in m.candidates]
            if m.end_of_candidates:
                lines.append("a=end-of-candidates")
        return "".join(line + "\r\n" for line in lines)


def _credential_lines(ufrag: str | None, pwd: str | None) -> list[str]:
    """Render ice-ufrag and ice-pwd lines for the ones that are set."""
    lines = [] if ufrag is None else [f"a=ice-ufrag:{ufrag}"]
    return lines if pwd is None else [*lines, f"a=ice-pwd:{pwd}"]


def is_ice_restart(
    frag: SdpFrag, current_remote_ufrag: str | None, *, retired: Collection[str] = ()
) -> bool:
    """Tell whether ``frag`` restarts ICE: it names an ice-ufrag that is not the current one.

    RFC 8839 §4.4.1.1.1: a restart changes ice-ufrag and ice-pwd. A fragment naming the
    current ufrag (or none) only trickles. ``retired`` lists the peer's ufrags from before
    earlier restarts: a delayed fragment naming one is stale, not a new restart.
    """
    return bool(frag.ufrags - {current_remote_ufrag} - set(retired))


class _Level:
    """The attributes gathered so far for the session level or one media description."""

    __slots__ = ("candidates", "end", "media", "mid", "pwd", "ufrag")

    def __init__(self, media: str | None) -> None:
        self.media = media
        self.mid: str | None = None
        self.ufrag: str | None = None
        self.pwd: str | None = None
        self.candidates: list[str] = []
        self.end = False


def _on_ufrag(level: _Level, value: str) -> None:
    if level.ufrag is not None:
        raise ValueError("repeated a=ice-ufrag")
    if not _UFRAG.fullmatch(value):
        raise ValueError("a=ice-ufrag is not 4 to 256 ice-chars")
    level.ufrag = value


def _on_pwd(level: _Level, value: str) -> None:
    if level.pwd is not None:
        raise ValueError("repeated a=ice-pwd")
    if not _PWD.fullmatch(value):
        raise ValueError("a=ice-pwd is not 22 to 256 ice-chars")
    level.pwd = value


def _on_mid(level: _Level, value: str) -> None:
    if level.media is None:
        raise ValueError("a=mid before any m= line")
    if level.mid is not None:
        raise ValueError("repeated a=mid")
    if not _TOKEN.fullmatch(value):
        raise ValueError("a=mid is not a token")
    level.mid = value


def _on_candidate(level: _Level, value: str) -> None:
    if level.media is None:
        raise ValueError("a=candidate before any m= line")
    _check_candidate(value)
    level.candidates.append(value)


def _on_end(level: _Level, value: str) -> None:
    level.end = True


# The attributes a fragment carries (RFC 8840 §9.2); every other attribute is ignored.
_ATTRIBUTES: dict[str, Callable[[_Level, str], None]] = {
    "ice-ufrag": _on_ufrag,
    "ice-pwd": _on_pwd,
    "mid": _on_mid,
    "candidate": _on_candidate,
    "end-of-candidates": _on_end,
}


def parse_sdpfrag(text: str, *, max_bytes: int = MAX_BYTES, max_lines: int = MAX_LINES) -> SdpFrag:
    """Parse a trickle-ice-sdpfrag body, or raise RemoteProtocolError with a one-line reason.

    :param text: the PATCH body, decoded.
    :param max_bytes: refuse bodies whose UTF-8 encoding is larger.
    :param max_lines: refuse bodies with more lines.
    """
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise RemoteProtocolError(f"sdpfrag larger than {max_bytes} bytes")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if len(lines) > max_lines:
        raise RemoteProtocolError(f"sdpfrag has more than {max_lines} lines")
    session = _Level(None)
    sections: list[_Level] = []
    for number, raw in enumerate(lines, 1):
        line = raw.removesuffix("\r")
        try:
            level = _parse_line(line, session, sections)
        except ValueError as exc:
            raise RemoteProtocolError(f"sdpfrag line {number}: {exc}") from None
        if level is not None:
            sections.append(level)
    return _build(session, sections)


def _parse_line(line: str, session: _Level, sections: list[_Level]) -> _Level | None:
    """Apply one line; return the new media description an m= line opens."""
    if not line:
        return None  # blank lines are not SDP, but harmless
    if _CONTROL.search(line):
        raise ValueError("control character")
    match = _LINE.fullmatch(line)
    if match is None:
        raise ValueError("not a <type>=<value> line")
    kind, value = match.groups()
    if kind == "m":
        if not value or not _VISIBLE.fullmatch(value):
            raise ValueError("malformed m= line")
        return _Level(value)
    if kind != "a":
        return None  # c=, b=, ... may appear in a media description; nothing ICE
    name, _, attr = value.partition(":")
    handler = _ATTRIBUTES.get(name)
    if handler is not None:
        if not _VISIBLE.fullmatch(attr):
            raise ValueError(f"a={name} is not printable ASCII")
        handler(sections[-1] if sections else session, attr)
    return None


def _build(session: _Level, sections: list[_Level]) -> SdpFrag:
    """Freeze the gathered levels, checking each media description has a distinct mid."""
    media = []
    seen: set[str] = set()
    for number, level in enumerate(sections, 1):
        assert level.media is not None
        if level.mid is None:
            raise RemoteProtocolError(f"sdpfrag media description {number} has no a=mid")
        if level.mid in seen:
            raise RemoteProtocolError(f"sdpfrag repeats a=mid:{level.mid}")
        seen.add(level.mid)
        media.append(
            MediaFrag(
                mid=level.mid,
                media=level.media,
                ice_ufrag=level.ufrag,
                ice_pwd=level.pwd,
                candidates=tuple(level.candidates),
                end_of_candidates=level.end,
            )
        )
    return SdpFrag(session.ufrag, session.pwd, session.end, tuple(media))


def check_candidate(value: str) -> None:
    """Raise RemoteProtocolError unless ``value`` is an ``a=candidate`` value aioice can parse."""
    try:
        _check_candidate(value)
    except ValueError as exc:
        raise RemoteProtocolError(str(exc)) from None


def _check_candidate(value: str) -> None:
    """Raise ValueError unless ``value`` is a candidate attribute value (RFC 8839 §5.1)."""
    if not _VISIBLE.fullmatch(value):
        raise ValueError("candidate is not printable ASCII")
    bits = value.split()
    if len(bits) < 8:
        raise ValueError("candidate has fewer than 8 fields")
    foundation, component, transport, priority, address, port, typ, kind = bits[:8]
    if not _FOUNDATION.fullmatch(foundation):
        raise ValueError("candidate foundation is not 1 to 32 ice-chars")
    if not _number(component, 3) or not 1 <= int(component) <= 256:
        raise ValueError("candidate component is not in 1..256")
    if transport.lower() not in _TRANSPORTS:
        raise ValueError("candidate transport is not udp or tcp")
    if not _number(priority, 10) or int(priority) >= 1 << 32:
        raise ValueError("candidate priority is not a 32-bit number")
    _check_address(address, "candidate address")
    _check_port(port, "candidate port")
    if typ != "typ" or kind not in _TYPES:
        raise ValueError("candidate type is not typ host/srflx/prflx/relay")
    extensions = bits[8:]
    if len(extensions) % 2:
        raise ValueError("candidate extension without a value")
    for name, ext in zip(extensions[::2], extensions[1::2], strict=True):
        _check_extension(name, ext)


def _check_extension(name: str, value: str) -> None:
    """Check one ``name value`` pair after the candidate type (the ones aioice reads)."""
    if not _TOKEN.fullmatch(name):
        raise ValueError("candidate extension name is not a token")
    if name == "raddr":
        _check_address(value, "candidate raddr")
    elif name == "rport":
        _check_port(value, "candidate rport")
    elif name == "generation" and not _number(value, 10):
        raise ValueError("candidate generation is not a number")
    elif name == "tcptype" and value not in _TCP_TYPES:
        raise ValueError("candidate tcptype is not active/passive/so")


def _number(text: str, digits: int) -> bool:
    """Tell whether ``text`` is 1 to ``digits`` ASCII digits."""
    return len(text) <= digits and _DIGITS.fullmatch(text) is not None


def _check_address(text: str, what: str) -> None:
    """Accept an IP literal or a host name (an mDNS ``.local`` name, RFC 8839 FQDN)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if len(text) > 253 or not _HOSTNAME.fullmatch(text):
            raise ValueError(f"{what} is neither an IP address nor a host name") from None


def _check_port(text: str, what: str) -> None:
    if not _number(text, 5) or int(text) > 65535:
        raise ValueError(f"{what} is not in 0..65535")
