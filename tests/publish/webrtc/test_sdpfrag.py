"""gateway.publish.webrtc.sdpfrag: RFC 8840 fragments as WHEP clients send them, hostile ones."""

from __future__ import annotations

import pytest
from aioice import Candidate
from aiortc.sdp import candidate_from_sdp
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import RemoteProtocolError
from gateway.publish.webrtc.sdpfrag import (
    MAX_BYTES,
    MAX_LINES,
    MediaFrag,
    SdpFrag,
    check_candidate,
    is_ice_restart,
    parse_sdpfrag,
)

PWD = "bP+XJMM09aR8AiX1jdukzR6Y"
HOST = "1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1"
TCP = "473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw"
SRFLX = (
    "842163049 1 udp 1677729535 203.0.113.7 43210 typ srflx raddr 0.0.0.0 rport 0 "
    "generation 0 ufrag EsAw network-cost 999"
)
MDNS = (
    "2463836218 1 udp 2113937151 5c5e1d8b-3ec5-4c8e-8e7a-1b0e3b1d2f4a.local 54321 typ host "
    "generation 0 ufrag EsAw network-cost 999"
)
IPV6 = "1 1 UDP 2122252543 2001:db8::1 50000 typ host"
RELAY = "3 1 udp 16777215 198.51.100.20 3478 typ relay raddr 203.0.113.7 rport 43210"
AIOICE = "16572de626da4e5384a0ce2d0d93678a 1 udp 2130706431 127.0.0.1 53050 typ host"
VALID_CANDIDATES = [HOST, TCP, SRFLX, MDNS, IPV6, RELAY, AIOICE]

# A WHEP trickle PATCH as a Chromium-based client sends it: media-level credentials.
CHROMIUM = (
    "a=ice-options:trickle ice2\r\n"
    "a=group:BUNDLE 0 1\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "a=mid:0\r\n"
    "a=ice-ufrag:EsAw\r\n"
    f"a=ice-pwd:{PWD}\r\n"
    f"a=candidate:{HOST}\r\n"
    f"a=candidate:{TCP}\r\n"
    f"a=candidate:{MDNS}\r\n"
    f"a=candidate:{SRFLX}\r\n"
    "a=end-of-candidates\r\n"
)
# Session-level credentials, one section per mid, "m=audio 9 RTP/AVP 0" placeholders
# (the shape of common JavaScript WHIP/WHEP clients), LF line ends, no final newline.
SESSION_LEVEL = (
    "a=ice-ufrag:EsAw\n"
    f"a=ice-pwd:{PWD}\n"
    "m=audio 9 RTP/AVP 0\n"
    "a=mid:audio0\n"
    f"a=candidate:{IPV6}\n"
    "m=audio 9 RTP/AVP 0\n"
    "a=mid:video1\n"
    "c=IN IP4 0.0.0.0\n"
    f"a=candidate:{RELAY}\n"
    "a=end-of-candidates"
)
# An ICE restart: only the new credentials (the candidates are trickled afterwards).
RESTART = f"a=ice-ufrag:ysXw\r\na=ice-pwd:{PWD}\r\n"


def test_chromium_fragment() -> None:
    frag = parse_sdpfrag(CHROMIUM)
    assert frag == SdpFrag(
        media=(
            MediaFrag(
                mid="0",
                media="video 9 UDP/TLS/RTP/SAVPF 96",
                ice_ufrag="EsAw",
                ice_pwd=PWD,
                candidates=(HOST, TCP, MDNS, SRFLX),
                end_of_candidates=True,
            ),
        )
    )
    assert frag.credentials() == ("EsAw", PWD)
    assert frag.ufrags == {"EsAw"}
    assert frag.candidate_count == 4
    assert frag.ended(frag.media[0])


def test_session_level_fragment() -> None:
    frag = parse_sdpfrag(SESSION_LEVEL)
    assert (frag.ice_ufrag, frag.ice_pwd, frag.end_of_candidates) == ("EsAw", PWD, False)
    assert [m.mid for m in frag.media] == ["audio0", "video1"]
    assert [m.candidates for m in frag.media] == [(IPV6,), (RELAY,)]
    assert [frag.ended(m) for m in frag.media] == [False, True]
    assert all(frag.credentials(m) == ("EsAw", PWD) for m in frag.media)


def test_media_level_credentials_win() -> None:
    frag = parse_sdpfrag(
        f"a=ice-ufrag:sess\r\na=ice-pwd:{PWD}\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n"
        "a=ice-ufrag:media\r\n"
    )
    assert frag.credentials(frag.media[0]) == ("media", PWD)
    assert frag.credentials() == ("sess", PWD)
    assert frag.ufrags == {"sess", "media"}


def test_restart_fragment_and_session_end() -> None:
    frag = parse_sdpfrag(RESTART)
    assert frag == SdpFrag(ice_ufrag="ysXw", ice_pwd=PWD)
    assert frag.credentials() == ("ysXw", PWD)
    ended = parse_sdpfrag("a=end-of-candidates\r\n")
    assert ended.end_of_candidates
    assert ended.credentials() == (None, None)
    assert parse_sdpfrag("") == SdpFrag()


@pytest.mark.parametrize("text", [CHROMIUM, SESSION_LEVEL, RESTART, "a=end-of-candidates\n"])
def test_round_trip(text: str) -> None:
    frag = parse_sdpfrag(text)
    assert parse_sdpfrag(frag.to_text()) == frag


def test_to_text_is_crlf_sdp() -> None:
    frag = SdpFrag(
        ice_ufrag="EsAw",
        ice_pwd=PWD,
        media=(
            MediaFrag(
                "0", "audio 9 UDP/TLS/RTP/SAVPF 111", candidates=(AIOICE,), end_of_candidates=True
            ),
        ),
    )
    assert frag.to_text() == (
        f"a=ice-ufrag:EsAw\r\na=ice-pwd:{PWD}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
        f"a=candidate:{AIOICE}\r\na=end-of-candidates\r\n"
    )


@pytest.mark.parametrize("value", VALID_CANDIDATES)
def test_valid_candidates_parse_in_aioice_and_aiortc(value: str) -> None:
    check_candidate(value)
    assert Candidate.from_sdp(value).port == int(value.split()[5])
    assert candidate_from_sdp(value).ip == value.split()[4]


def test_is_ice_restart() -> None:
    trickle = parse_sdpfrag(CHROMIUM)
    assert not is_ice_restart(trickle, "EsAw")
    assert is_ice_restart(trickle, "zzzz")
    # A delayed fragment of an earlier generation is stale, not a new restart.
    assert not is_ice_restart(trickle, "ysXw", retired={"EsAw"})
    assert not is_ice_restart(parse_sdpfrag("a=end-of-candidates\n"), "EsAw")
    assert is_ice_restart(parse_sdpfrag(RESTART), "EsAw")
    assert is_ice_restart(parse_sdpfrag(RESTART), None)


def _cand(**fields: str) -> str:
    """Return a candidate value with some of the 8 fields replaced, plus extensions."""
    base = {
        "foundation": "1",
        "component": "1",
        "transport": "udp",
        "priority": "2122260223",
        "address": "192.0.2.1",
        "port": "61764",
        "typ": "typ",
        "type": "host",
    }
    extra = fields.pop("extra", "")
    base.update(fields)
    return " ".join(base.values()) + (f" {extra}" if extra else "")


BAD_CANDIDATES = [
    ("1 1 udp 2122260223 192.0.2.1 61764 typ", "fewer than 8 fields"),
    (_cand(foundation="a" * 33), "foundation"),
    (_cand(foundation="ab_c"), "foundation"),
    (_cand(component="0"), "component"),
    (_cand(component="257"), "component"),
    (_cand(component="1a"), "component"),
    (_cand(component="\u0663"), "printable ASCII"),  # ARABIC-INDIC DIGIT THREE: int() takes it
    (_cand(transport="sctp"), "transport"),
    (_cand(priority="99999999999"), "priority"),
    (_cand(priority="4294967296"), "priority"),
    (_cand(priority="-1"), "priority"),
    (_cand(address="not_a_host!"), "address"),
    (_cand(address="a" * 254), "address"),
    (_cand(port="65536"), "port"),
    (_cand(port="80a"), "port"),
    (_cand(typ="type"), "type"),
    (_cand(type="bogus"), "type"),
    (_cand(type="HOST"), "type"),
    (_cand(extra="generation"), "without a value"),
    (_cand(extra="rport x"), "rport"),
    (_cand(extra="rport 70000"), "rport"),
    (_cand(extra="raddr bad!addr"), "raddr"),
    (_cand(extra="generation x"), "generation"),
    (_cand(extra="tcptype weird"), "tcptype"),
    (_cand(extra="b@d value"), "extension name"),
    (_cand(extra="name caf\u00e9"), "printable ASCII"),
    (_cand(extra="name a\u2028b"), "printable ASCII"),  # str.split() splits there
]


@pytest.mark.parametrize(("value", "reason"), BAD_CANDIDATES)
def test_bad_candidates(value: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason):
        check_candidate(value)
    text = f"m=audio 9 RTP/AVP 0\na=mid:0\na=candidate:{value}\n"
    with pytest.raises(RemoteProtocolError, match=f"^sdpfrag line 3: .*{reason}"):
        parse_sdpfrag(text)


HOSTILE = [
    ("a" * (MAX_BYTES + 1), "larger than"),
    ("a=x:" + "\u00e9" * (MAX_BYTES // 2), "larger than"),
    ("a=x\n" * (MAX_LINES + 1), "more than"),
    ("\x00\x01\x02", "control character"),
    ("a=ice-ufrag:abcd\rx\n", "control character"),
    ("hello world\n", "not a <type>=<value> line"),
    ("A=ice-ufrag:abcd\n", "not a <type>=<value> line"),
    ("=abcd\n", "not a <type>=<value> line"),
    (f"a=candidate:{HOST}\n", "line 1: a=candidate before any m= line"),
    ("a=mid:0\n", "a=mid before any m= line"),
    ("m=audio 9 RTP/AVP 0\na=candidate:" + HOST + "\n", "media description 1 has no a=mid"),
    ("m=audio 9 RTP/AVP 0\na=mid:0\nm=audio 9 RTP/AVP 0\na=mid:0\n", "repeats a=mid:0"),
    ("m=audio 9 RTP/AVP 0\na=mid:0\na=mid:1\n", "repeated a=mid"),
    ("m=audio 9 RTP/AVP 0\na=mid:a b\n", "a=mid is not a token"),
    ("a=ice-ufrag:abcd\na=ice-ufrag:efgh\n", "line 2: repeated a=ice-ufrag"),
    (f"a=ice-pwd:{PWD}\na=ice-pwd:{PWD}\n", "repeated a=ice-pwd"),
    ("a=ice-ufrag:abc\n", "ice-ufrag is not 4 to 256"),
    ("a=ice-ufrag:ab_cd\n", "ice-ufrag is not 4 to 256"),
    ("a=ice-ufrag:" + "a" * 257 + "\n", "ice-ufrag is not 4 to 256"),
    ("a=ice-pwd:tooshort\n", "ice-pwd is not 22 to 256"),
    ("a=ice-ufrag:ab\u00e9d\n", "not printable ASCII"),
    ("m=\n", "malformed m= line"),
    ("m=audio 9 RTP/AVP 0\u00e9\n", "malformed m= line"),
]


@pytest.mark.parametrize(("text", "reason"), HOSTILE)
def test_hostile_fragments(text: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason) as info:
        parse_sdpfrag(text)
    assert "\n" not in str(info.value)  # a one-line reason for the HTTP error body


def test_limits_are_keywords() -> None:
    with pytest.raises(RemoteProtocolError, match="larger than 10 bytes"):
        parse_sdpfrag(RESTART, max_bytes=10)
    with pytest.raises(RemoteProtocolError, match="more than 1 lines"):
        parse_sdpfrag(RESTART, max_lines=1)
    assert parse_sdpfrag(RESTART, max_lines=2).ice_ufrag == "ysXw"


def test_other_attributes_and_lines_are_ignored() -> None:
    frag = parse_sdpfrag(
        "v=0\r\na=ice-lite\r\na=tool:caf\u00e9\r\nm=audio 9 RTP/AVP 0\r\nb=AS:30\r\na=mid:0\r\n"
        "a=rtcp-mux\r\n\r\n"
    )
    assert frag == SdpFrag(media=(MediaFrag("0", "audio 9 RTP/AVP 0"),))


# Pieces real fragments are made of, so random concatenations hit the interesting states.
PIECES = [
    "a=ice-ufrag:EsAw",
    "a=ice-ufrag:ysXw",
    f"a=ice-pwd:{PWD}",
    "a=end-of-candidates",
    "m=audio 9 RTP/AVP 0",
    "m=",
    "a=mid:0",
    "a=mid:1",
    "a=mid:",
    "a=candidate:",
    *(f"a=candidate:{c}" for c in VALID_CANDIDATES),
    " typ host",
    " raddr ",
    " rport 99999",
    " generation 1",
    "1.2.3.4",
    "::1",
    "65535",
    "\r\n",
    "\n",
    "\r",
    " ",
    "\x00",
    "\u00e9",
    "\u2028",
    "a=",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=12)), max_size=40))
def test_parse_raises_only_remote_protocol_error(pieces: list[str]) -> None:
    text = "".join(pieces)
    try:
        frag = parse_sdpfrag(text, max_bytes=2048, max_lines=32)
    except RemoteProtocolError as exc:
        reason = str(exc)
    else:
        reason = ""
    if reason:
        assert "\n" not in reason
        return
    assert parse_sdpfrag(frag.to_text()) == frag
    for section in frag.media:
        for value in section.candidates:
            Candidate.from_sdp(value)  # never raises on what the parser accepted
            candidate_from_sdp(value)


ICE_CHARS = st.sampled_from("abcXYZ019+/")
UFRAGS = st.text(ICE_CHARS, min_size=4, max_size=12)
PWDS = st.text(ICE_CHARS, min_size=22, max_size=30)
SECTIONS = st.builds(
    MediaFrag,
    mid=st.text(st.sampled_from("ab01-"), min_size=1, max_size=4),
    media=st.sampled_from(["audio 9 RTP/AVP 0", "video 9 UDP/TLS/RTP/SAVPF 96 97"]),
    ice_ufrag=st.none() | UFRAGS,
    ice_pwd=st.none() | PWDS,
    candidates=st.lists(st.sampled_from(VALID_CANDIDATES), max_size=3).map(tuple),
    end_of_candidates=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(
    st.none() | UFRAGS,
    st.none() | PWDS,
    st.booleans(),
    st.lists(SECTIONS, max_size=3, unique_by=lambda m: m.mid).map(tuple),
)
def test_rendered_fragments_parse_back(
    ufrag: str | None, pwd: str | None, end: bool, media: tuple[MediaFrag, ...]
) -> None:
    frag = SdpFrag(ufrag, pwd, end, media)
    assert parse_sdpfrag(frag.to_text()) == frag
