"""MPEG-2 indexer timestamps: PES PTS per picture, GOP starts, frame rates; hostile PTS fields."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.demux.codec import mpeg_frame_rate
from gateway.demux.mpeg2 import PictureType, UnitIndexed
from gateway.demux.mpeg2_packets import pes_pts, read_timestamp
from gateway.sim.mpeg2 import PMT_PID, VIDEO_PID, TsPacketizer, pack_header, psi_tables
from tests.demux.mpeg2_helpers import DEMUXER, feed_every_way, ffmpeg_stream, sim_stream, units_of

TS_PACKET = 188
#: The simulator's first decode time (gateway.sim.mpeg2) and 25 fps in 90 kHz ticks.
START, TICKS = 45_000, 3600


def timestamp(prefix: int, ts: int, *, markers: int = 0b111) -> bytes:
    """Return a 5-byte PTS/DTS field (ISO/IEC 13818-1 §2.4.3.7); markers: the three bits."""
    ts &= (1 << 33) - 1
    value = (
        prefix << 36
        | (ts >> 30 & 7) << 33
        | (markers >> 2 & 1) << 32
        | (ts >> 15 & 0x7FFF) << 17
        | (markers >> 1 & 1) << 16
        | (ts & 0x7FFF) << 1
        | markers & 1
    )
    return value.to_bytes(5, "big")


def es_pictures(count: int = 8) -> list[bytes]:
    """Return the simulator's elementary stream cut into pictures (closed GOPs, 25 fps)."""
    events, error = feed_every_way(sim_stream("es", False, pictures=count + 4), ("all",))
    assert error is None
    pictures = [bytes(u.payload) for u in units_of(events)][:count]
    assert len(pictures) == count
    return pictures


def ps_pes(payload: bytes, header: bytes) -> bytes:
    """Return a pack and one MPEG-2 video PES packet: flags byte 7, then header[1:] as is."""
    body = b"\x80" + header + payload
    return pack_header(0) + b"\x00\x00\x01\xe0" + len(body).to_bytes(2, "big") + body


def pts_header(pts: int) -> bytes:
    """Return PES header bytes 7.. for a PTS-only header."""
    return b"\x80\x05" + timestamp(0b0010, pts)


def ps_stream(headers: list[bytes]) -> bytes:
    """Return one PES packet per picture of the simulator's ES, with the given headers."""
    pictures = es_pictures(len(headers))
    return b"".join(ps_pes(p, h) for p, h in zip(pictures, headers, strict=True))


def timed(units: list[UnitIndexed]) -> list[tuple[int | None, int | None]]:
    """Return (temporal_reference, pts) per unit."""
    return [(u.temporal_reference, u.pts) for u in units]


# -- streams that carry a PTS per picture --------------------------------------------------


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed", "open"])
@pytest.mark.parametrize("container", ["ps", "ts"])
def test_simulator_pictures_carry_their_pts(container: str, open_gop: bool) -> None:
    events, error = feed_every_way(sim_stream(container, open_gop), ("all", "random"))
    assert error is None
    units = units_of(events)
    gop_start = 0
    for k, unit in enumerate(units):
        assert unit.frame_rate == 25
        if unit.gop:
            assert unit.picture_type is PictureType.I
            gop_start = k
        tr = unit.temporal_reference
        assert tr is not None
        # Closed GOPs from the encoder: display index = GOP's first decode index + tr.
        if not open_gop:
            assert unit.pts == START + (gop_start + tr) * TICKS
    assert sum(u.gop for u in units) == 3
    # Presentation order: B-pictures come after the later reference picture.
    assert [u.pts for u in units[:4]] == [START, START + 3 * TICKS, START + TICKS, START + 7200]


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed", "open"])
def test_elementary_stream_has_no_pts(open_gop: bool) -> None:
    units = units_of(feed_every_way(sim_stream("es", open_gop), ("all",))[0])
    assert all(u.pts is None for u in units)
    assert [u.gop for u in units].count(True) == 3
    assert all(u.frame_rate == 25 for u in units)


def pyav_pts(data: bytes, demuxer: str) -> list[int | None]:
    """Return the pts of every picture FFmpeg's demuxer and parser find, in decode order."""
    with av.open(io.BytesIO(data), "r", format=demuxer) as container:
        return [p.pts for p in container.demux(video=0) if p.size]


@pytest.mark.parametrize(
    ("muxer", "container", "size"),
    [
        ("mpeg", "ps", (640, 480)),
        ("mpegts", "ts", (640, 480)),
        ("mpeg", "ps", (160, 120)),  # several pictures per PES packet
        ("mpegts", "ts", (160, 120)),
    ],
)
def test_pts_agree_with_ffmpeg(muxer: str, container: str, size: tuple[int, int]) -> None:
    data = ffmpeg_stream(muxer, True, pictures=60, size=size)
    units = units_of(feed_every_way(data, ("all", "random", "buffer-large"))[0])
    reference = pyav_pts(data, DEMUXER[container])
    ours: list[int | None] = []
    for unit in units:
        ours += [unit.pts] + [None] * (unit.pictures - 1) if unit.pictures else []
    assert len(ours) == len(reference) == 60
    given_ = [(k, pts) for k, pts in enumerate(ours) if pts is not None]
    assert len(given_) >= 15
    assert all(reference[k] == pts for k, pts in given_)


def test_only_the_first_picture_of_a_pes_packet_has_its_pts() -> None:
    pictures = es_pictures(4)
    two = ps_pes(pictures[0] + pictures[1], pts_header(1000))  # I and P in one PES
    data = two + b"".join(ps_pes(p, pts_header(2000 + k)) for k, p in enumerate(pictures[2:]))
    units = units_of(feed_every_way(data)[0])
    assert [u.pictures for u in units] == [2, 1, 1]
    assert [u.pts for u in units] == [1000, 2000, 2001]
    assert [u.gop for u in units] == [True, False, False]


def test_pts_near_the_wrap_and_with_dts() -> None:
    top = (1 << 33) - 1
    headers = [
        pts_header(top),
        b"\xc0\x0a" + timestamp(0b0011, 0) + timestamp(0b0001, top - 3600),
        pts_header(1 << 32),
    ]
    units = units_of(feed_every_way(ps_stream(headers))[0])
    assert [u.pts for u in units] == [top, 0, 1 << 32]


def test_mpeg1_packet_headers_carry_pts() -> None:
    pictures = es_pictures(3)
    fields = [b"\x0f", b"\x40\x20" + timestamp(0b0010, 777), timestamp(0b0011, 888) + bytes(5)]
    packs = b""
    for picture, field in zip(pictures, fields, strict=True):
        body = field + picture  # no stuffing; STD buffer fields; PTS, or PTS and DTS
        pack = b"\x00\x00\x01\xba\x21\x00\x01\x00\x01\x80\x00\x01"  # MPEG-1 pack header
        packs += pack + b"\x00\x00\x01\xe0" + len(body).to_bytes(2, "big") + body
    units = units_of(feed_every_way(packs)[0])
    assert [u.pts for u in units] == [None, 777, 888]


def ts_packet(pid: int, payload: bytes, *, start: bool, cc: int) -> bytes:
    """Return one TS packet carrying payload (stuffed with an adaptation field)."""
    short = TS_PACKET - 4 - len(payload)
    assert short >= 0
    adapt = b""
    if short:
        adapt = bytes([short - 1]) + (b"\x00" + b"\xff" * (short - 2) if short > 1 else b"")
    head = bytes([0x47, (0x40 if start else 0) | pid >> 8, pid & 0xFF, (0x30 if short else 0x10)])
    return head[:3] + bytes([head[3] | cc]) + adapt + payload


def test_ts_pes_header_split_across_packets() -> None:
    pictures = es_pictures(2)
    ts = TsPacketizer()
    pat, pmt = psi_tables()
    data = ts.psi(0, pat) + ts.psi(PMT_PID, pmt)
    pes = b"\x00\x00\x01\xe0\x00\x00\x80" + pts_header(123_456) + pictures[0]
    # The PTS field straddles the first two TS packets: 11 header bytes, then the rest.
    data += ts_packet(VIDEO_PID, pes[:11], start=True, cc=0)
    rest, cc = pes[11:], 1
    while rest:
        data += ts_packet(VIDEO_PID, rest[:184], start=False, cc=cc & 15)
        rest, cc = rest[184:], cc + 1
    data += ts.packets(VIDEO_PID, b"\x00\x00\x01\xe0\x00\x00\x80" + pts_header(9) + pictures[1])
    units = units_of(feed_every_way(data)[0])
    assert [u.pts for u in units] == [123_456, 9]


# -- frame rates -----------------------------------------------------------------------------


def sequence_header(code: int, extension: int | None = None) -> bytes:
    """Return a 640x480 sequence header with frame_rate_code, and a sequence extension
    whose last byte is ``extension`` (low_delay, frame_rate_extension_n and _d)."""
    head = b"\x00\x00\x01\xb3\x28\x01\xe0" + bytes([0x10 | code]) + b"\xff\xff\xe0\x18"
    if extension is not None:
        head += b"\x00\x00\x01\xb5\x14\x8a\x00\x01\x00" + bytes([extension])
    return head


@pytest.mark.parametrize(
    ("code", "extension", "rate"),
    [
        (1, None, Fraction(24000, 1001)),
        (2, None, Fraction(24)),
        (3, 0, Fraction(25)),
        (4, None, Fraction(30000, 1001)),
        (5, None, Fraction(30)),
        (6, None, Fraction(50)),
        (7, None, Fraction(60000, 1001)),
        (8, None, Fraction(60)),
        (3, 0b1_00_00001, Fraction(25, 2)),  # n = 0, d = 1: 12.5 fps
        (5, 0b0_01_00000, Fraction(60)),  # n = 1, d = 0
        (0, None, None),  # forbidden
        (9, None, None),  # reserved
    ],
)
def test_frame_rate_table(code: int, extension: int | None, rate: Fraction | None) -> None:
    assert mpeg_frame_rate(sequence_header(code, extension)) == rate


def test_frame_rate_of_truncated_headers() -> None:
    assert mpeg_frame_rate(b"") is None
    assert mpeg_frame_rate(sequence_header(3)[:7]) is None
    assert mpeg_frame_rate(sequence_header(3, 0)[:-1]) == 25  # extension cut off: ignored


# -- hostile PTS fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"\x80\x05" + timestamp(0b0010, 5, markers=0b011),  # a marker bit 0
        b"\x80\x05" + timestamp(0b0010, 5, markers=0b110),
        b"\x80\x05" + timestamp(0b0100, 5),  # not a PTS field's prefix
        b"\x80\x00",  # PTS flag, no bytes for it
        b"\x80\x03\xff\xff\xff",  # PTS flag, 3 bytes
        b"\xc0\x05" + timestamp(0b0011, 5),  # PTS and DTS flags, room for one field
        b"\x40\x05" + timestamp(0b0010, 5),  # PTS_DTS_flags '01' (forbidden)
        b"\x00\x05" + timestamp(0b0010, 5),  # no flag: the bytes are stuffing
    ],
)
def test_malformed_pts_fields_give_no_pts(header: bytes) -> None:
    data = ps_stream([header, pts_header(7200)])
    events, error = feed_every_way(data)
    assert error is None
    units = units_of(events)
    assert [u.pts for u in units] == [None, 7200]
    assert b"".join(bytes(u.payload) for u in units) == data  # the picture is delivered


def test_ts_malformed_pts_gives_no_pts() -> None:
    pictures = es_pictures(2)
    ts = TsPacketizer()
    pat, pmt = psi_tables()
    data = ts.psi(0, pat) + ts.psi(PMT_PID, pmt)
    bad = b"\x80\x80\x02\x21\x00"  # PTS flag, header_data_length 2
    data += ts.packets(VIDEO_PID, b"\x00\x00\x01\xe0\x00\x00" + bad + pictures[0])
    data += ts.packets(VIDEO_PID, b"\x00\x00\x01\xe0\x00\x00\x80" + pts_header(9) + pictures[1])
    units = units_of(feed_every_way(data)[0])
    assert [u.pts for u in units] == [None, 9]


def test_timestamp_readers_on_short_input() -> None:
    assert read_timestamp(b"\x21\x00\x01\x00", 0) is None
    assert read_timestamp(timestamp(0b0010, 99), 0) == 99
    assert pes_pts(b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05\x21") is None  # bytes missing


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=2, max_size=14), st.sampled_from(["ps", "ts"]))
def test_any_pes_header_fields_parse_or_raise(fields: bytes, container: str) -> None:
    """Whatever follows a video PES start: units or RemoteProtocolError, nothing else."""
    pictures = es_pictures(2)
    if container == "ps":
        head = b"\x80" + fields
        body = head + pictures[0]
        data = pack_header(0) + b"\x00\x00\x01\xe0" + len(body).to_bytes(2, "big") + body
        data += ps_pes(pictures[1], pts_header(1))
    else:
        ts = TsPacketizer()
        pat, pmt = psi_tables()
        data = ts.psi(0, pat) + ts.psi(PMT_PID, pmt)
        data += ts.packets(VIDEO_PID, b"\x00\x00\x01\xe0\x00\x00\x80" + fields + pictures[0])
        data += ts.packets(VIDEO_PID, b"\x00\x00\x01\xe0\x00\x00\x80" + pts_header(1) + pictures[1])
    events, error = feed_every_way(data, ("all", "bytewise", "random"))
    if error is None:
        for unit in units_of(events):
            assert unit.pts is None or 0 <= unit.pts < 1 << 33
