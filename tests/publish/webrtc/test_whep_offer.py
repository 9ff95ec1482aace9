"""The offer is judged on its text alone (``offer.check_offer``), and the answer's extras.

Browser-like offers (``whep_sdp``) are admitted; each reason to turn one away is its
own case, with the reason in the message; any text at all either passes or raises
``RemoteProtocolError`` (Hypothesis). ``announce`` adds the 1:1 NAT address as a
candidate; ``ice_server_links`` writes the ``Link`` headers of RFC 9725 §4.6.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import IceServer, Secret
from gateway.errors import RemoteProtocolError
from gateway.publish.webrtc.offer import (
    MAX_LINES,
    MAX_OFFER_BYTES,
    MAX_SECTIONS,
    OfferSummary,
    announce,
    check_offer,
    ice_server_links,
)

from .whep_sdp import (
    AV1,
    CRLF,
    OPUS,
    VP8,
    VP9,
    Codec,
    chromium_offer,
    firefox_offer,
    h264,
    many_sections,
)

#: Constrained Baseline, the profile the encode sends, in packetization-mode 1.
CB_MODE_1 = h264(106, "42e01f", 1, 107)


def test_chromium_offer_is_admitted() -> None:
    offer = chromium_offer()
    assert len(offer) > 4000  # every codec, as Chromium writes it
    assert check_offer(offer) == OfferSummary(opus=True, sections=2)


def test_firefox_offer_is_admitted() -> None:
    # fmtp before rtpmap, ICE credentials per section, the fingerprint at session level.
    assert check_offer(firefox_offer()) == OfferSummary(opus=True, sections=2)


@pytest.mark.parametrize(
    "video",
    [
        pytest.param((CB_MODE_1,), id="42e01f-mode1"),
        pytest.param((h264(102, "42001f", 1),), id="baseline-42001f-mode1"),
        pytest.param((VP8, *VP9, CB_MODE_1, AV1), id="vp8-vp9-h264-av1"),
        pytest.param((h264(114, "640c1f", 1), CB_MODE_1), id="constrained-high-then-42e01f"),
        pytest.param((h264(108, "42e01f", 0), h264(106, "42e01f", 1)), id="mode0-then-mode1"),
        pytest.param((h264(106, "42E01F", 1),), id="upper-case-profile"),
    ],
)
def test_offers_with_sendable_h264_are_admitted(video: tuple[Codec, ...]) -> None:
    assert check_offer(chromium_offer(video=video)).sections == 2


@pytest.mark.parametrize(
    "video",
    [
        pytest.param((VP8, *VP9, AV1), id="no-h264"),
        pytest.param((h264(104, "42001f", 0), h264(108, "42e01f", 0)), id="mode0-only"),
        pytest.param(
            (Codec(106, "H264/90000", "profile-level-id=42e01f", ()),), id="mode-absent-is-0"
        ),
        pytest.param((h264(112, "64001f", 1), h264(114, "640c1f", 1)), id="high-only"),
        pytest.param((h264(127, "4d001f", 1),), id="main-only"),
        pytest.param((h264(106, "zzzzzz", 1),), id="bad-profile-level-id"),
        pytest.param((Codec(106, "H264/8000", CB_MODE_1.fmtp),), id="wrong-clock"),
    ],
)
def test_offers_without_sendable_h264_are_refused(video: tuple[Codec, ...]) -> None:
    with pytest.raises(RemoteProtocolError, match=r"no H\.264 video with packetization-mode=1"):
        check_offer(chromium_offer(video=video))


def test_firefox_offer_with_mode_0_only_is_refused() -> None:
    mode_0 = Codec(97, "H264/90000", "profile-level-id=42e01f;level-asymmetry-allowed=1")
    with pytest.raises(RemoteProtocolError, match=r"no H\.264"):
        check_offer(firefox_offer(video=(mode_0,)))


@pytest.mark.parametrize("direction", ["sendonly", "inactive"])
def test_a_video_section_that_does_not_receive_is_refused(direction: str) -> None:
    with pytest.raises(RemoteProtocolError, match=r"no H\.264"):
        check_offer(chromium_offer(video_direction=direction))


def test_sendrecv_video_is_admitted() -> None:
    assert check_offer(chromium_offer(video_direction="sendrecv")).sections == 2


def test_a_rejected_video_section_is_refused() -> None:
    # Port 0: the section is declined (RFC 8866 §5.14).
    with pytest.raises(RemoteProtocolError, match=r"no H\.264"):
        check_offer(chromium_offer(video_port=0))


@pytest.mark.parametrize(
    ("audio", "opus"),
    [
        pytest.param(None, False, id="no-audio-section"),
        pytest.param((Codec(0, "PCMU/8000"), Codec(8, "PCMA/8000")), False, id="g711-only"),
        pytest.param((OPUS,), True, id="opus-only"),
    ],
)
def test_opus_is_sent_only_if_the_offer_receives_it(
    audio: tuple[Codec, ...] | None, opus: bool
) -> None:
    summary = check_offer(chromium_offer(audio=audio))
    assert summary.opus is opus
    assert summary.sections == (1 if audio is None else 2)


def test_credentials_at_session_level_count() -> None:
    offer = chromium_offer(ufrag=None, pwd=None, fingerprint_value=None)
    head, sep, rest = offer.partition("m=video")
    extra = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\n"
    extra += "a=fingerprint:sha-256 00:11\r\n"
    assert check_offer(head + extra + sep + rest).opus


def _without(offer: str, prefix: str) -> str:
    return CRLF.join(line for line in offer.split(CRLF) if not line.startswith(prefix))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", "no v=0 first", id="empty"),
        pytest.param("hello world\r\n", "no v=0 first", id="garbage"),
        pytest.param("\x00\xff" * 300, "no v=0 first", id="binary"),
        pytest.param(chromium_offer()[5:], "no v=0 first", id="no-v-line"),
        pytest.param("v=1\r\n" + chromium_offer()[5:], "no v=0 first", id="v-1"),
        pytest.param("v=0\r\n<html>\r\n", "is not SDP", id="not-sdp-line"),
        pytest.param("v=0\r\n" + "a=x:" + "y" * 2**20, "larger than", id="1-MB"),
        pytest.param(
            "v=0\r\n" + "a=x\r\n" * (MAX_LINES + 1), f"more than {MAX_LINES} lines", id="lines"
        ),
        pytest.param(many_sections(1000), f"more than {MAX_SECTIONS} media", id="1000-m-lines"),
        pytest.param(many_sections(MAX_SECTIONS + 1), "media sections", id="17-m-lines"),
        pytest.param("v=0\r\nm=video 9\r\n", "malformed m= line", id="short-m-line"),
        pytest.param(_without(chromium_offer(), "a=ice-ufrag"), "ICE credentials", id="no-ufrag"),
        pytest.param(_without(chromium_offer(), "a=ice-pwd"), "ICE credentials", id="no-pwd"),
        pytest.param(_without(chromium_offer(), "a=fingerprint"), "fingerprint", id="no-print"),
        pytest.param(_without(chromium_offer(), "m=video"), "no H.264", id="no-m-video"),
    ],
)
def test_offers_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=re.escape(reason)):
        check_offer(text)


def test_the_size_bound_is_the_documented_one() -> None:
    filler = "a=x:" + "y" * (MAX_OFFER_BYTES - len(chromium_offer()) - 10) + CRLF
    offer = chromium_offer() + filler
    assert len(offer) <= MAX_OFFER_BYTES
    assert check_offer(offer).sections == 2
    with pytest.raises(RemoteProtocolError, match="larger than"):
        check_offer(offer + "a=x:" + "y" * 20 + CRLF)


# -- any input either passes or raises RemoteProtocolError ------------------------------

SDP_PIECES = st.sampled_from(
    [
        "v=0",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "m=audio 0 X",
        "m=",
        "a=rtpmap:96 H264/90000",
        "a=rtpmap:96",
        "a=rtpmap:x H264/",
        "a=fmtp:96 packetization-mode=1;profile-level-id=42e01f",
        "a=fmtp:96 packetization-mode=1;profile-level-id=",
        "a=fmtp:96 ;;==;packetization-mode",
        "a=fmtp:96 profile-level-id=42e00b",
        "a=fmtp:96 profile-level-id=42f00b",
        "a=fmtp:96 profile-level-id=ffffff;packetization-mode=1",
        "a=recvonly",
        "a=sendonly",
        "a=ice-ufrag:a",
        "a=ice-pwd:b",
        "a=fingerprint:sha-256 00",
        "a=",
        "a=:",
        "c=IN IP4 0.0.0.0",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=2000))
def test_any_text_passes_or_raises_remote_protocol_error(text: str) -> None:
    try:
        check_offer(text)
    except RemoteProtocolError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(SDP_PIECES, st.text(max_size=40)), max_size=60), st.booleans())
def test_sdp_like_lines_pass_or_raise_remote_protocol_error(lines: list[str], crlf: bool) -> None:
    text = ("\r\n" if crlf else "\n").join(["v=0", *lines])
    try:
        summary = check_offer(text)
    except RemoteProtocolError:
        return
    assert summary.sections == sum(line.strip().startswith("m=") for line in text.splitlines())


#: Fixed for the run: Hypothesis replays draws against the same text.
BROWSER_OFFERS = (chromium_offer(), firefox_offer())


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mangled_browser_offers_pass_or_raise_remote_protocol_error(data: st.DataObject) -> None:
    lines = data.draw(st.sampled_from(BROWSER_OFFERS)).split(CRLF)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "copy", "cut", "replace"]))
        if action == "drop":
            del lines[at]
        elif action == "copy":
            lines.insert(data.draw(st.integers(0, len(lines))), lines[at])
        elif action == "cut":
            lines[at] = lines[at][: data.draw(st.integers(0, len(lines[at])))]
        else:
            lines[at] = data.draw(st.text(max_size=30))
        if not lines:
            lines = [""]
    try:
        check_offer(CRLF.join(lines))
    except RemoteProtocolError:
        pass


# -- announce (1:1 NAT) -----------------------------------------------------------------

ANSWER = CRLF.join(
    [
        "v=0",
        "o=- 3921 3921 IN IP4 0.0.0.0",
        "m=video 41000 UDP/TLS/RTP/SAVPF 106",
        "c=IN IP4 127.0.0.1",
        "a=candidate:7d7b 1 udp 2130706431 127.0.0.1 41000 typ host",
        "a=candidate:9aa1 1 udp 1694498815 198.51.100.2 41000 typ srflx"
        " raddr 127.0.0.1 rport 41000",
        "a=candidate:c1 1 tcp 1518280447 127.0.0.1 9 typ host tcptype passive",
        "a=candidate:e2 1 udp 2130706431 203.0.113.7 41002 typ host",
        "a=end-of-candidates",
        "",
    ]
)


def test_announce_adds_the_public_address_after_each_udp_host_candidate() -> None:
    out = announce(ANSWER, "203.0.113.7").split(CRLF)
    added = "a=candidate:7d7bn 1 udp 2130706430 203.0.113.7 41000 typ host"
    assert out[out.index("a=candidate:7d7b 1 udp 2130706431 127.0.0.1 41000 typ host") + 1] == added
    # Everything else stays, in order: srflx, TCP, and a candidate already there.
    assert [line for line in out if line != added] == ANSWER.split(CRLF)


def test_announce_leaves_an_sdp_without_candidates_alone() -> None:
    sdp = chromium_offer()
    assert announce(sdp, "203.0.113.7") == sdp


# -- Link headers -----------------------------------------------------------------------


def _unquote(value: str) -> str:
    """Return the content of an RFC 9110 §5.6.4 quoted-string."""
    assert value[0] == value[-1] == '"'
    return re.sub(r"\\(.)", r"\1", value[1:-1])


def test_ice_server_links() -> None:
    servers = (
        IceServer(urls=("stun:stun.example.net:3478", "stun:[2001:db8::1]:3478")),
        IceServer(
            urls=("turn:turn.example.net:3478?transport=udp",),
            username='cam"1\\a',
            credential=Secret('p"w\\d;,='),
        ),
        IceServer(urls=("turns:turn.example.net:5349",), username="only-a-name"),
    )
    links = ice_server_links(servers)
    assert links[:2] == [
        '<stun:stun.example.net:3478>; rel="ice-server"',
        '<stun:[2001:db8::1]:3478>; rel="ice-server"',
    ]
    turn = links[2]
    assert turn.startswith('<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; ')
    params = {
        name: _unquote(value)
        for name, value in re.findall(r';\s*([a-z-]+)=("(?:[^"\\]|\\.)*")', turn)
    }
    assert params == {
        "rel": "ice-server",
        "username": 'cam"1\\a',
        "credential": 'p"w\\d;,=',
        "credential-type": "password",
    }
    # A server without a credential gets no half-set of attributes.
    assert links[3] == '<turns:turn.example.net:5349>; rel="ice-server"'
    assert len(links) == 4


def test_no_ice_servers_no_links() -> None:
    assert ice_server_links(()) == []
