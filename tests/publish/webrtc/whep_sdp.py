"""Browser-like SDP offers for the WHEP tests, written from the SDP grammar (RFC 8866).

Each offer is assembled from tables shaped like what the browsers send to a WHEP
endpoint (a ``recvonly`` video and audio section, bundled, with ICE credentials and a
DTLS fingerprint): Chromium's codec list (VP8, VP9 profiles 0 and 2, H.264 in both
packetization modes in Baseline, Constrained Baseline, Main, High and Constrained High,
AV1, RED/ULPFEC, each with its RTX twin; Opus, RED, G.722, G.711, CN, DTMF) and
Firefox's (``fmtp`` before ``rtpmap``, ICE credentials per section, the fingerprint at
session level, ``extmap`` with a direction). Keyword arguments make the variants the
tests need: other codecs, another direction, an attribute left out, candidates.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

CRLF = "\r\n"


@dataclass(frozen=True, slots=True)
class Codec:
    """One payload type of an m= line: its rtpmap, fmtp and feedback."""

    #: The RTP payload type.
    pt: int
    #: The rtpmap encoding: ``name/clock[/channels]``.
    encoding: str
    #: The fmtp parameters, if any.
    fmtp: str | None = None
    #: The rtcp-fb values.
    feedback: tuple[str, ...] = ()
    #: The payload type of its retransmission codec (RFC 4588), if any.
    rtx: int | None = None


VIDEO_FEEDBACK = ("goog-remb", "transport-cc", "ccm fir", "nack", "nack pli")


def h264(pt: int, profile: str, mode: int, rtx: int | None = None) -> Codec:
    """Return a Chromium H.264 payload type of ``profile`` (profile-level-id) and ``mode``."""
    fmtp = f"level-asymmetry-allowed=1;packetization-mode={mode};profile-level-id={profile}"
    return Codec(pt, "H264/90000", fmtp, VIDEO_FEEDBACK, rtx)


#: H.264 as Chromium offers it: Baseline and Constrained Baseline in both modes, Main,
#: High and Constrained High (640c1f) in mode 1.
CHROMIUM_H264 = (
    h264(102, "42001f", 1, 103),
    h264(104, "42001f", 0, 105),
    h264(106, "42e01f", 1, 107),
    h264(108, "42e01f", 0, 109),
    h264(127, "4d001f", 1, 125),
    h264(112, "64001f", 1, 113),
    h264(114, "640c1f", 1, 115),
)
VP8 = Codec(96, "VP8/90000", None, VIDEO_FEEDBACK, 97)
VP9 = (
    Codec(98, "VP9/90000", "profile-id=0", VIDEO_FEEDBACK, 99),
    Codec(100, "VP9/90000", "profile-id=2", VIDEO_FEEDBACK, 101),
)
AV1 = Codec(45, "AV1/90000", "level-idx=5;profile=0;tier=0", VIDEO_FEEDBACK, 46)
RESILIENCE = (Codec(116, "red/90000", None, (), 117), Codec(118, "ulpfec/90000"))
CHROMIUM_VIDEO = (VP8, *VP9, *CHROMIUM_H264, AV1, *RESILIENCE)

OPUS = Codec(111, "opus/48000/2", "minptime=10;useinbandfec=1", ("transport-cc",))
CHROMIUM_AUDIO = (
    OPUS,
    Codec(63, "red/48000/2", "111/111"),
    Codec(9, "G722/8000"),
    Codec(0, "PCMU/8000"),
    Codec(8, "PCMA/8000"),
    Codec(13, "CN/8000"),
    Codec(110, "telephone-event/48000"),
    Codec(126, "telephone-event/8000"),
)
CHROMIUM_VIDEO_EXTMAP = (
    "urn:ietf:params:rtp-hdrext:toffset",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "urn:3gpp:video-orientation",
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
    "http://www.webrtc.org/experiments/rtp-hdrext/video-content-type",
    "http://www.webrtc.org/experiments/rtp-hdrext/video-timing",
    "http://www.webrtc.org/experiments/rtp-hdrext/color-space",
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
)
CHROMIUM_AUDIO_EXTMAP = (
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "urn:ietf:params:rtp-hdrext:sdes:mid",
)


def fingerprint() -> str:
    """Return a random SHA-256 certificate fingerprint value (RFC 8122 §5)."""
    return "sha-256 " + ":".join(f"{b:02X}" for b in secrets.token_bytes(32))


def ice_credentials() -> tuple[str, str]:
    """Return a fresh ice-ufrag (4+ chars) and ice-pwd (22+ chars) (RFC 8839 §5.4)."""
    return secrets.token_hex(4), secrets.token_hex(12)


def host_candidate(port: int, address: str = "127.0.0.1", foundation: str = "1") -> str:
    """Return an ``a=candidate`` value of a UDP host candidate (RFC 8839 §5.1)."""
    return f"{foundation} 1 udp 2122260223 {address} {port} typ host generation 0 network-id 1"


def _rtp_lines(codecs: Sequence[Codec]) -> list[str]:
    """Return the rtpmap, rtcp-fb and fmtp lines of ``codecs`` and their RTX twins."""
    out: list[str] = []
    for codec in codecs:
        out.append(f"a=rtpmap:{codec.pt} {codec.encoding}")
        out += [f"a=rtcp-fb:{codec.pt} {fb}" for fb in codec.feedback]
        if codec.fmtp is not None:
            out.append(f"a=fmtp:{codec.pt} {codec.fmtp}")
        if codec.rtx is not None:
            clock = codec.encoding.split("/")[1]
            out += [f"a=rtpmap:{codec.rtx} rtx/{clock}", f"a=fmtp:{codec.rtx} apt={codec.pt}"]
    return out


def _payload_types(codecs: Sequence[Codec]) -> str:
    pts: list[int] = []
    for codec in codecs:
        pts.append(codec.pt)
        if codec.rtx is not None:
            pts.append(codec.rtx)
    return " ".join(map(str, pts))


def chromium_offer(
    *,
    video: Sequence[Codec] = CHROMIUM_VIDEO,
    audio: Sequence[Codec] | None = CHROMIUM_AUDIO,
    video_direction: str = "recvonly",
    video_port: int = 9,
    ufrag: str | None = "",
    pwd: str | None = "",
    fingerprint_value: str | None = "",
    candidates: Sequence[str] = (),
) -> str:
    """Return an offer as Chromium's ``RTCPeerConnection`` writes it for a WHEP player.

    ``ufrag``/``pwd``/``fingerprint_value``: "" for fresh ones, None to leave the line out.
    ``candidates``: ``a=candidate`` values put in every section (gathering complete).
    """
    fresh_ufrag, fresh_pwd = ice_credentials()
    ufrag = fresh_ufrag if ufrag == "" else ufrag
    pwd = fresh_pwd if pwd == "" else pwd
    print_value = fingerprint() if fingerprint_value == "" else fingerprint_value
    mids = ["0"] if audio is None else ["0", "1"]
    lines = [
        "v=0",
        f"o=- {secrets.randbelow(2**62)} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        f"a=group:BUNDLE {' '.join(mids)}",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS",
    ]
    sections: list[tuple[str, Sequence[Codec], str, int, Sequence[str]]] = [
        ("video", video, video_direction, video_port, CHROMIUM_VIDEO_EXTMAP)
    ]
    if audio is not None:
        sections.append(("audio", audio, "recvonly", 9, CHROMIUM_AUDIO_EXTMAP))
    for mid, (kind, codecs, direction, port, extmap) in enumerate(sections):
        lines += [
            f"m={kind} {port} UDP/TLS/RTP/SAVPF {_payload_types(codecs)}",
            "c=IN IP4 0.0.0.0",
            "a=rtcp:9 IN IP4 0.0.0.0",
            *(f"a=candidate:{c}" for c in candidates),
        ]
        if ufrag is not None:
            lines.append(f"a=ice-ufrag:{ufrag}")
        if pwd is not None:
            lines.append(f"a=ice-pwd:{pwd}")
        lines.append("a=ice-options:trickle")
        if print_value is not None:
            lines.append(f"a=fingerprint:{print_value}")
        lines += [
            "a=setup:actpass",
            f"a=mid:{mid}",
            *(f"a=extmap:{i} {uri}" for i, uri in enumerate(extmap, start=1 + 13 * mid)),
            f"a={direction}",
            "a=rtcp-mux",
        ]
        if kind == "video":
            lines.append("a=rtcp-rsize")
        lines += _rtp_lines(codecs)
    return CRLF.join(lines) + CRLF


#: Firefox's video payload types: VP8, VP9, H.264 mode 1 and mode 0 (no
#: packetization-mode parameter), each with RTX; RED and ULPFEC.
FIREFOX_VIDEO = (
    Codec(120, "VP8/90000", "max-fs=12288;max-fr=60", VIDEO_FEEDBACK, 124),
    Codec(121, "VP9/90000", "max-fs=12288;max-fr=60", VIDEO_FEEDBACK, 125),
    Codec(
        126,
        "H264/90000",
        "profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1",
        VIDEO_FEEDBACK,
        127,
    ),
    Codec(97, "H264/90000", "profile-level-id=42e01f;level-asymmetry-allowed=1", (), 98),
    Codec(123, "ulpfec/90000"),
    Codec(122, "red/90000", None, (), 119),
)
FIREFOX_AUDIO = (
    Codec(109, "opus/48000/2", "maxplaybackrate=48000;stereo=1;useinbandfec=1"),
    Codec(9, "G722/8000/1"),
    Codec(0, "PCMU/8000"),
    Codec(8, "PCMA/8000"),
    Codec(101, "telephone-event/8000/1", "0-15"),
)


def firefox_offer(*, video: Sequence[Codec] = FIREFOX_VIDEO) -> str:
    """Return an offer as Firefox writes it for a WHEP player (recvonly video and audio)."""
    lines = [
        "v=0",
        f"o=mozilla...THIS_IS_SDPARTA-128.0 {secrets.randbelow(2**62)} 0 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        f"a=fingerprint:{fingerprint()}",
        "a=group:BUNDLE 0 1",
        "a=ice-options:trickle",
        "a=msid-semantic:WMS *",
    ]
    # One transport for the bundle: the same credentials in each section.
    ufrag, pwd = ice_credentials()
    for mid, (kind, codecs, extmap) in enumerate(
        [
            (
                "video",
                video,
                [
                    "3 urn:ietf:params:rtp-hdrext:sdes:mid",
                    "4 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
                    "5 urn:ietf:params:rtp-hdrext:toffset",
                    "6/recvonly http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
                ],
            ),
            (
                "audio",
                FIREFOX_AUDIO,
                [
                    "1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
                    "2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level",
                    "3 urn:ietf:params:rtp-hdrext:sdes:mid",
                ],
            ),
        ]
    ):
        lines += [
            f"m={kind} 9 UDP/TLS/RTP/SAVPF {_payload_types(codecs)}",
            "c=IN IP4 0.0.0.0",
            "a=recvonly",
            *(f"a=extmap:{e}" for e in extmap),
            # Firefox sorts its attributes: fmtp before rtpmap, ICE per section.
            *sorted(line for line in _rtp_lines(codecs) if line.startswith("a=fmtp:")),
            f"a=ice-pwd:{pwd}",
            f"a=ice-ufrag:{ufrag}",
            f"a=mid:{mid}",
            "a=rtcp-mux",
            *(line for line in _rtp_lines(codecs) if not line.startswith("a=fmtp:")),
            "a=setup:actpass",
            f"a=ssrc:{secrets.randbelow(2**32)} cname:{{{secrets.token_hex(8)}}}",
        ]
    return CRLF.join(lines) + CRLF


def many_sections(count: int) -> str:
    """Return a small offer with ``count`` minimal m= lines (under every size bound)."""
    ufrag, pwd = ice_credentials()
    head = ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", f"a=ice-ufrag:{ufrag}"]
    head += [f"a=ice-pwd:{pwd}", f"a=fingerprint:{fingerprint()}"]
    return CRLF.join(head + ["m=audio 9 X 0"] * count) + CRLF
