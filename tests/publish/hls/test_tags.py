"""Every row of the tag table, written once and compared with RFC 8216bis's syntax."""

from __future__ import annotations

import pytest

from gateway.errors import LocalProtocolError
from gateway.publish.hls import tags
from gateway.publish.hls.tags import (
    TAGS,
    AttrType,
    Discontinuity,
    DiscontinuitySequence,
    Header,
    HintType,
    Inf,
    Line,
    Map,
    MediaSequence,
    Part,
    PartInf,
    PreloadHint,
    ProgramDateTime,
    ServerControl,
    Skip,
    StreamInf,
    TargetDuration,
    Uri,
    Version,
    render_line,
)

#: One instance of every tag class, the line it must render to (spelling and attribute
#: names as in RFC 8216bis §4.4), and the EXT-X-VERSION it needs (§8).
EXPECTED: dict[type, tuple[Line, str, int]] = {
    Header: (Header(), "#EXTM3U", 1),
    Version: (Version(9), "#EXT-X-VERSION:9", 1),
    TargetDuration: (TargetDuration(2), "#EXT-X-TARGETDURATION:2", 1),
    MediaSequence: (MediaSequence(2680), "#EXT-X-MEDIA-SEQUENCE:2680", 1),
    DiscontinuitySequence: (DiscontinuitySequence(3), "#EXT-X-DISCONTINUITY-SEQUENCE:3", 1),
    PartInf: (PartInf(0.2), "#EXT-X-PART-INF:PART-TARGET=0.2", 1),
    ServerControl: (
        ServerControl(
            can_skip_until=12.0, hold_back=6.0, part_hold_back=0.600001, can_block_reload=True
        ),
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,HOLD-BACK=6.0,"
        "PART-HOLD-BACK=0.600001",
        1,
    ),
    Discontinuity: (Discontinuity(), "#EXT-X-DISCONTINUITY", 1),
    Map: (Map("init0.mp4"), '#EXT-X-MAP:URI="init0.mp4"', 6),
    ProgramDateTime: (
        ProgramDateTime(1_735_689_600_123_456_789),
        "#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:00.123Z",
        1,
    ),
    Part: (
        Part(0.2, "part7.0.m4s", independent=True),
        '#EXT-X-PART:DURATION=0.2,URI="part7.0.m4s",INDEPENDENT=YES',
        1,
    ),
    Inf: (Inf(1.04), "#EXTINF:1.04,", 3),
    Skip: (Skip(6), "#EXT-X-SKIP:SKIPPED-SEGMENTS=6", 9),
    PreloadHint: (
        PreloadHint(HintType.PART, "part7.1.m4s"),
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part7.1.m4s"',
        1,
    ),
    StreamInf: (
        StreamInf(
            bandwidth=1_280_000,
            average_bandwidth=1_000_000,
            codecs="avc1.42c01f,mp4a.40.2",
            resolution=(640, 480),
            frame_rate=25.0,
        ),
        "#EXT-X-STREAM-INF:BANDWIDTH=1280000,AVERAGE-BANDWIDTH=1000000,"
        'CODECS="avc1.42c01f,mp4a.40.2",RESOLUTION=640x480,FRAME-RATE=25.0',
        1,
    ),
}


def test_every_table_row_has_a_test() -> None:
    assert set(EXPECTED) == set(TAGS)
    assert len({spec.name for spec in TAGS.values()}) == len(TAGS)


@pytest.mark.parametrize("cls", list(TAGS), ids=lambda cls: TAGS[cls].name)
def test_table_row(cls: type) -> None:
    line, text, version = EXPECTED[cls]
    assert type(line) is cls
    assert render_line(line) == text
    assert TAGS[cls].version == version


def test_optional_attributes_are_left_out() -> None:
    assert render_line(Part(0.16, "part1.2.m4s")) == '#EXT-X-PART:DURATION=0.16,URI="part1.2.m4s"'
    assert render_line(ServerControl(part_hold_back=0.6)) == (
        "#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=0.6"
    )
    assert render_line(StreamInf(bandwidth=1)) == "#EXT-X-STREAM-INF:BANDWIDTH=1"
    assert render_line(PreloadHint(HintType.MAP, "init1.mp4")) == (
        '#EXT-X-PRELOAD-HINT:TYPE=MAP,URI="init1.mp4"'
    )


def test_every_attribute_type_has_a_writer() -> None:
    used = {attr.type for spec in TAGS.values() for attr in spec.attrs}
    assert used == set(AttrType)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0.0"), (1.0, "1.0"), (0.24, "0.24"), (1 / 3, "0.333333"), (12.0000004, "12.0")],
)
def test_decimal_floating_point(value: float, text: str) -> None:
    assert render_line(Inf(value)) == f"#EXTINF:{text},"


def test_uri_lines() -> None:
    assert render_line(Uri("seg12.m4s")) == "seg12.m4s"
    for bad in ("", "#EXT-X-ENDLIST", "a\nb"):
        with pytest.raises(LocalProtocolError):
            render_line(Uri(bad))


@pytest.mark.parametrize(
    "line",
    [
        Map('in"it.mp4'),  # §4.2: no double quote in a quoted-string
        Map(""),  # nor an empty one
        Part(0.2, "part\r1.m4s"),
        Inf(-1.0),  # decimal-floating-point is non-negative
        Inf(float("nan")),
        PartInf(float("inf")),
        TargetDuration(-1),  # decimal-integer is 0 .. 2**64-1
        MediaSequence(2**64),
        DiscontinuitySequence(True),
        StreamInf(bandwidth=1, resolution=(-1, 2)),
        PreloadHint(HintType.PART, "a,b\n"),
    ],
)
def test_values_outside_their_type_are_refused(line: Line) -> None:
    with pytest.raises(LocalProtocolError):
        render_line(line)


def test_an_enumerated_string_has_no_separators() -> None:
    assert tags._enumerated("PART") == "PART"
    for bad in ("A,B", 'A"', "A B", ""):
        with pytest.raises(LocalProtocolError):
            tags._enumerated(bad)


def test_dates_are_utc_with_milliseconds() -> None:
    assert render_line(ProgramDateTime(0)) == "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00.000Z"
    assert render_line(ProgramDateTime(999_999_999)).endswith("T00:00:00.999Z")
