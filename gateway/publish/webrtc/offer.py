"""The SDP a WHEP request carries, judged before any peer connection exists.

A peer connection costs sockets, a certificate and a task or two, so a request that
cannot become a session is turned away on its text alone: too large, not SDP, too
many sections, no ICE credentials or DTLS fingerprint, or no video the gateway can
send (H.264 packetization-mode 1 in a profile a Constrained Baseline stream
satisfies). What is read here is only what decides that; aiortc parses the offer
again in full once it is admitted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiortc.sdp import H264Profile, parse_h264_profile_level_id

from gateway.config import IceServer
from gateway.errors import RemoteProtocolError

#: Offers are a few kilobytes (Chromium's, with every codec, about 6 KB).
MAX_OFFER_BYTES = 32 * 1024
#: Media sections in an offer at most: a player asks for one video and one audio.
MAX_SECTIONS = 16
MAX_LINES = 2000
#: Profiles a Constrained Baseline stream is valid for (RFC 6184 §8.1 profile-level-id).
SENDABLE_PROFILES = frozenset(
    {H264Profile.PROFILE_CONSTRAINED_BASELINE, H264Profile.PROFILE_BASELINE}
)
_LINE = re.compile(r"[a-z]=")
_RTPMAP = re.compile(r"a=rtpmap:(\d+) ([^/\s]+)/(\d+)")
_FMTP = re.compile(r"a=fmtp:(\d+) (.*)")
_DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})


@dataclass(frozen=True, slots=True)
class OfferSummary:
    """What an admissible offer asks for."""

    #: The offer has an audio section that receives Opus.
    opus: bool
    #: Media sections in the offer.
    sections: int


@dataclass(slots=True)
class _Section:
    kind: str
    rejected: bool
    direction: str = "sendrecv"
    codecs: dict[str, str] | None = None
    fmtp: dict[str, str] | None = None


def check_offer(text: str) -> OfferSummary:
    """Return what ``text`` asks for, or raise ``RemoteProtocolError`` saying why not."""
    if len(text) > MAX_OFFER_BYTES:
        raise RemoteProtocolError(f"offer is larger than {MAX_OFFER_BYTES} bytes")
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise RemoteProtocolError(f"offer has more than {MAX_LINES} lines")
    if not lines or lines[0].strip() != "v=0":
        raise RemoteProtocolError("body is not an SDP offer (no v=0 first)")
    sections: list[_Section] = []
    session_attrs: set[str] = set()
    media_attrs: set[str] = set()
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if not _LINE.match(line):
            raise RemoteProtocolError(f"offer line {line[:24]!r} is not SDP")
        if line.startswith("m="):
            if len(sections) == MAX_SECTIONS:
                raise RemoteProtocolError(f"offer has more than {MAX_SECTIONS} media sections")
            fields = line[2:].split()
            if len(fields) < 4:
                raise RemoteProtocolError("offer has a malformed m= line")
            sections.append(_Section(fields[0], fields[1] == "0", codecs={}, fmtp={}))
            continue
        if not line.startswith("a="):
            continue
        name = line[2:].partition(":")[0]
        (media_attrs if sections else session_attrs).add(name)
        if not sections:
            continue
        section = sections[-1]
        _read_attribute(section, line, name)
    attrs = session_attrs | media_attrs
    if not {"ice-ufrag", "ice-pwd"} <= attrs:
        raise RemoteProtocolError("offer has no ICE credentials (a=ice-ufrag, a=ice-pwd)")
    if "fingerprint" not in attrs:
        raise RemoteProtocolError("offer has no DTLS fingerprint (a=fingerprint)")
    receiving = [s for s in sections if not s.rejected and s.direction in ("recvonly", "sendrecv")]
    if not any(s.kind == "video" and _sends_h264(s) for s in receiving):
        raise RemoteProtocolError(
            "offer receives no H.264 video with packetization-mode=1 "
            "in a Constrained Baseline compatible profile"
        )
    opus = any(s.kind == "audio" and "opus/48000" in (s.codecs or {}).values() for s in receiving)
    return OfferSummary(opus=opus, sections=len(sections))


def _read_attribute(section: _Section, line: str, name: str) -> None:
    assert section.codecs is not None
    assert section.fmtp is not None
    if name in _DIRECTIONS:
        section.direction = name
    elif name == "rtpmap":
        match = _RTPMAP.match(line)
        if match:
            pt, codec, rate = match.groups()
            section.codecs[pt] = f"{codec.lower()}/{rate}"
    elif name == "fmtp":
        match = _FMTP.match(line)
        if match:
            section.fmtp[match.group(1)] = match.group(2)


def _sends_h264(section: _Section) -> bool:
    """Return True if the section accepts what the shared encode sends."""
    assert section.codecs is not None
    assert section.fmtp is not None
    for pt, codec in section.codecs.items():
        if codec != "h264/90000":
            continue
        params = dict(p.strip().partition("=")[::2] for p in section.fmtp.get(pt, "").split(";"))
        if params.get("packetization-mode", "0").strip() != "1":
            continue
        try:
            profile, _ = parse_h264_profile_level_id(params.get("profile-level-id", "42e01f"))
        except ValueError:
            continue
        if profile in SENDABLE_PROFILES:
            return True
    return False


def announce(sdp: str, address: str) -> str:
    """Return ``sdp`` with each UDP host candidate also offered at ``address`` (1:1 NAT).

    The candidate keeps its port: a 1:1 NAT maps the public address's ports to the
    host's one for one, so a peer's checks sent there reach the same socket.
    """
    out = []
    for line in sdp.split("\r\n"):
        out.append(line)
        if not line.startswith("a=candidate:"):
            continue
        fields = line.split()
        if len(fields) < 8 or fields[2].lower() != "udp" or fields[7] != "host":
            continue
        if fields[4] == address:
            continue
        foundation = fields[0] + "n"
        priority = str(max(int(fields[3]) - 1, 0)) if fields[3].isdigit() else fields[3]
        out.append(" ".join([foundation, fields[1], fields[2], priority, address, *fields[5:8]]))
    return "\r\n".join(out)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ice_server_links(servers: tuple[IceServer, ...]) -> list[str]:
    """Return one ``Link`` header value per ICE server URL (RFC 9725 §4.6)."""
    links = []
    for server in servers:
        for url in server.urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username is not None and server.credential is not None:
                link += f"; username={_quoted(server.username)}"
                link += f"; credential={_quoted(server.credential.value)}"
                link += '; credential-type="password"'
            links.append(link)
    return links
