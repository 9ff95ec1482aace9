"""Whole playlists: line order, the computed EXT-X-VERSION, and a segmenter's playlists."""

from __future__ import annotations

import pytest

from gateway.errors import LocalProtocolError
from gateway.publish.hls.live import media_playlist, multivariant_playlist
from gateway.publish.hls.playlist import (
    MediaPlaylist,
    MultivariantPlaylist,
    PartEntry,
    SegmentEntry,
    Variant,
    render,
    round_half_up,
    seconds,
)
from gateway.publish.hls.tags import HintType, PartInf, PreloadHint, ServerControl, StreamInf

from .m3u8 import problems
from .streams import aac, feed, regular, segmenter, synthetic

PDT = 1_735_689_600_000_000_000

LOW_LATENCY = MediaPlaylist(
    target_duration=1,
    media_sequence=41,
    server_control=ServerControl(
        can_skip_until=6.0, hold_back=3.0, part_hold_back=0.6, can_block_reload=True
    ),
    part_inf=PartInf(0.2),
    discontinuity_sequence=2,
    segments=(
        SegmentEntry("seg41.m4s", 1.0, program_date_time=PDT, map_uri="init3.mp4"),
        SegmentEntry(
            "seg42.m4s",
            0.52,
            (
                PartEntry("part42.0.m4s", 0.2, True),
                PartEntry("part42.1.m4s", 0.2),
                PartEntry("part42.2.m4s", 0.12),
            ),
            PDT + 10**9,
        ),
        SegmentEntry(
            None,
            None,
            (PartEntry("part43.0.m4s", 0.2, True),),
            PDT + 1_520_000_000,
            "init4.mp4",
            discontinuity=True,
        ),
    ),
    preload_hints=(PreloadHint(HintType.PART, "part43.1.m4s"),),
)

EXPECTED = """\
#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:1
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,HOLD-BACK=3.0,PART-HOLD-BACK=0.6
#EXT-X-PART-INF:PART-TARGET=0.2
#EXT-X-MEDIA-SEQUENCE:41
#EXT-X-DISCONTINUITY-SEQUENCE:2
#EXT-X-MAP:URI="init3.mp4"
#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:00.000Z
#EXTINF:1.0,
seg41.m4s
#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:01.000Z
#EXT-X-PART:DURATION=0.2,URI="part42.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.2,URI="part42.1.m4s"
#EXT-X-PART:DURATION=0.12,URI="part42.2.m4s"
#EXTINF:0.52,
seg42.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="init4.mp4"
#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:01.520Z
#EXT-X-PART:DURATION=0.2,URI="part43.0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part43.1.m4s"
"""


def test_a_low_latency_playlist_in_order() -> None:
    # §4.4.4.9: a segment's DISCONTINUITY, MAP and PROGRAM-DATE-TIME before its parts.
    assert render(LOW_LATENCY) == EXPECTED


def test_the_version_is_what_the_tags_need() -> None:
    # EXTINF is always written as a decimal-floating-point: version 3 (§8).
    plain = MediaPlaylist(1, 0, (SegmentEntry("seg0.m4s", 1.0),))
    assert render(plain) == (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXTINF:1.0,\nseg0.m4s\n"
    )
    assert render(MultivariantPlaylist(())) == "#EXTM3U\n"  # version 1: no tag


def test_a_complete_segment_needs_a_duration() -> None:
    with pytest.raises(LocalProtocolError):
        render(MediaPlaylist(1, 0, (SegmentEntry("seg0.m4s", None),)))


def test_a_multivariant_playlist() -> None:
    playlist = MultivariantPlaylist(
        (
            Variant(
                "media.m3u8", StreamInf(900_000, 700_000, "avc1.42c01e,mp4a.40.2", (320, 240), 25.0)
            ),
        )
    )
    assert render(playlist) == (
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=700000,"
        'CODECS="avc1.42c01e,mp4a.40.2",RESOLUTION=320x240,FRAME-RATE=25.0\nmedia.m3u8\n'
    )


@pytest.mark.parametrize(
    ("ticks", "up", "value"),
    [
        (18000, False, 0.2),
        (21600, False, 0.24),
        (1, False, 0.000011),
        (1, True, 0.000012),
        (54000, True, 0.6),
        (18018, False, 0.2002),
        (90001, False, 1.000011),
    ],
)
def test_seconds(ticks: int, up: bool, value: float) -> None:
    assert seconds(ticks, up=up) == value


def test_round_half_up() -> None:
    assert [round_half_up(x) for x in (0.49, 0.5, 1.5, 2.5, 1.499999)] == [0, 1, 2, 3, 1]


def test_a_segmenters_playlists() -> None:
    audio_format, audio = aac(0, 3 * 90_000)
    seg = segmenter(audio=audio_format)
    with pytest.raises(LocalProtocolError):
        media_playlist(seg)
    with pytest.raises(LocalProtocolError):
        multivariant_playlist(seg)
    feed(seg, synthetic(regular(25, 3)), audio)
    text = render(media_playlist(seg))
    assert problems(text) == []
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,HOLD-BACK=3.0," in text
    assert "PART-HOLD-BACK=0.6\n#EXT-X-PART-INF:PART-TARGET=0.2\n" in text
    assert '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part3.0.m4s"\n' in text
    variant = multivariant_playlist(seg).variants[0]
    assert variant.uri == "media.m3u8"
    inf = variant.stream_inf
    assert inf.codecs == "avc1.64000d,mp4a.40.2"
    assert inf.resolution == (160, 120)
    assert inf.frame_rate == 25.0
    sizes = [s.size * 8 / (s.duration / 90_000) for s in seg.segments]
    assert inf.bandwidth == pytest.approx(max(sizes), abs=1)
    assert inf.average_bandwidth is not None
    assert inf.average_bandwidth <= inf.bandwidth
