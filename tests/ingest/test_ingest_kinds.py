"""The per-kind tables: body consumer per response, and consumer events to frame data."""

from __future__ import annotations

import itertools
import re
from fractions import Fraction

import pytest

from gateway.demux.http1 import ResponseHead
from gateway.demux.mpeg2 import Mpeg2Indexer, PictureType, UnitIndexed
from gateway.demux.multipart import MultipartDemuxer, PartDropped, PartReceived
from gateway.demux.parts import DropReason
from gateway.errors import LocalProtocolError, UpstreamError
from gateway.ingest.kinds import (
    AUDIO_TIME_BASE,
    FRAME_DATA,
    STAMPERS,
    TIME_BASES,
    ArrivalStamper,
    FrameData,
    PtsStamper,
    SmoothedStamper,
    audio_frame_data,
    make_consumer,
    mjpeg_frame_data,
    mpeg2_frame_data,
)
from gateway.ingest.raw import RawConsumer, RawReceived
from gateway.media import VIDEO_TIME_BASE, CutPoint, StreamKind

HEADERS = (("content-type", "image/jpeg"), ("x-delta-time", "40"))
NS = 1_000_000_000


def part(content_type: str) -> PartReceived:
    return PartReceived(b"\xff\xd8..\xff\xd9", content_type, HEADERS, None)


def raw(content_type: str, pictures: int = 0) -> RawReceived:
    return RawReceived(b"\x00\x00\x01\x00" * pictures, content_type)


def head(content_type: str | None) -> ResponseHead:
    headers = (("content-type", content_type),) if content_type is not None else ()
    return ResponseHead((1, 0), 200, "OK", headers)


@pytest.mark.parametrize("kind", list(StreamKind))
def test_every_kind_has_a_frame_data_function_and_a_time_base(kind: StreamKind) -> None:
    assert callable(FRAME_DATA[kind])
    assert TIME_BASES[kind] == (AUDIO_TIME_BASE if kind is StreamKind.AUDIO else VIDEO_TIME_BASE)


def test_mjpeg_frame_data() -> None:
    data = mjpeg_frame_data(part("image/jpeg"))
    assert data == FrameData(b"\xff\xd8..\xff\xd9", "image/jpeg", HEADERS, pictures=1)
    assert mjpeg_frame_data(part("")) == FrameData(part("").payload, "image/jpeg", HEADERS)
    assert mjpeg_frame_data(part("text/plain")) is None  # not a frame
    assert mjpeg_frame_data(raw("image/jpeg")) is None
    assert mjpeg_frame_data(PartDropped(DropReason.MISSING_EOI, 10)) is None


def test_mpeg2_frame_data_is_one_indexed_unit_with_its_cut_point() -> None:
    cut = CutPoint(closed_gop=False, broken_link=False, join=b"join")
    unit = UnitIndexed(b"\x00\x00\x01\x00", PictureType.I, 2, cut, leading=False, pictures=3)
    data = mpeg2_frame_data(unit)
    assert data is not None
    # Pictures that start in one container packet share a unit; fps_in counts them all.
    assert (data.content_type, data.pictures, data.headers) == ("video/mpeg", 3, ())
    assert (data.cut, data.leading) == (cut, False)
    leading = mpeg2_frame_data(UnitIndexed(b"b", PictureType.B, 0, None, True, 1))
    assert leading is not None
    assert (leading.cut, leading.leading, leading.pictures) == (None, True, 1)
    tail = mpeg2_frame_data(UnitIndexed(b"\x00\x00\x01\xb7", None, None, None, False, 0))
    assert tail is not None
    assert tail.pictures == 0  # bytes after the last picture (sequence end) still go out
    assert mpeg2_frame_data(raw("video/mpeg", pictures=3)) is None
    assert mpeg2_frame_data(part("video/mpeg")) is None


def test_audio_frame_data_from_parts_and_reads() -> None:
    from_part = audio_frame_data(part("audio/32KADPCM"))
    assert from_part is not None
    assert (from_part.content_type, from_part.headers, from_part.pictures) == (
        "audio/32KADPCM", HEADERS, 1,
    )  # fmt: skip
    assert audio_frame_data(part("")) == FrameData(part("").payload, "audio/32KADPCM", HEADERS)
    assert audio_frame_data(part("image/jpeg")) is None
    from_read = audio_frame_data(raw("audio/basic"))
    assert from_read is not None
    assert (from_read.content_type, from_read.headers, from_read.pictures) == ("audio/basic", (), 1)


@pytest.mark.parametrize(
    ("kind", "stamper"),
    [
        (StreamKind.MJPEG, SmoothedStamper),
        (StreamKind.MPEG2, PtsStamper),
        (StreamKind.AUDIO, ArrivalStamper),
    ],
)
def test_every_kind_has_a_stamper(kind: StreamKind, stamper: type) -> None:
    made = STAMPERS[kind]()
    assert isinstance(made, stamper)
    assert STAMPERS[kind]() is not made  # one per stream: they keep state


def test_audio_is_stamped_at_arrival_in_samples() -> None:
    stamper = STAMPERS[StreamKind.AUDIO]()
    assert stamper.stamp(part("audio/basic"), 3 * NS + 125_000, new_connection=True) == 24_001


def test_mjpeg_is_stamped_by_the_smoothed_clock() -> None:
    stamper = SmoothedStamper()
    times = [stamper.stamp(part("image/jpeg"), NS + k * 40_000_000, new_connection=k == 0)
             for k in range(10)]  # fmt: skip
    assert times[0] == 90_000
    assert all(b > a for a, b in itertools.pairwise(times))
    assert stamper.clock.frames == 10


def test_mpeg2_is_stamped_from_the_unit() -> None:
    stamper = PtsStamper()
    first = UnitIndexed(b"", PictureType.I, 0, None, False, 1, 1000, True, Fraction(25))
    then = UnitIndexed(b"", PictureType.P, 1, None, False, 1, 4600, False, Fraction(25))
    assert stamper.stamp(first, NS, new_connection=True) == 90_000
    assert stamper.stamp(then, NS + 500_000_000, new_connection=False) == 93_600
    with pytest.raises(LocalProtocolError):
        stamper.stamp(part("video/mpeg"), NS, new_connection=False)


def test_media_type_drops_parameters_and_case() -> None:
    assert FrameData(b"", "Audio/G726-32; Rate=8000").media_type == "audio/g726-32"


@pytest.mark.parametrize(
    ("kind", "content_type", "consumer"),
    [
        (StreamKind.MJPEG, "multipart/x-mixed-replace; boundary=b", MultipartDemuxer),
        (StreamKind.AUDIO, "multipart/x-mixed-replace; boundary=b", MultipartDemuxer),
        (StreamKind.MPEG2, "video/mpeg", Mpeg2Indexer),
        (StreamKind.MPEG2, "video/MP2T", Mpeg2Indexer),
        (StreamKind.MPEG2, "video/mp2p", Mpeg2Indexer),
        (StreamKind.AUDIO, "audio/basic", RawConsumer),
    ],
)
def test_make_consumer(kind: StreamKind, content_type: str, consumer: type) -> None:
    assert isinstance(make_consumer(kind, head(content_type)), consumer)


@pytest.mark.parametrize(
    ("kind", "content_type", "shown"),
    [
        (StreamKind.MJPEG, "image/jpeg", "image/jpeg"),
        (StreamKind.MPEG2, "multipart/x-mixed-replace; boundary=b", "multipart/x-mixed-replace"),
        (StreamKind.MPEG2, "video/h264", "video/h264"),
        (StreamKind.AUDIO, "text/html; charset=utf-8", "text/html"),
        (StreamKind.MJPEG, None, "(none)"),
    ],
)
def test_make_consumer_refuses_what_it_cannot_ingest(
    kind: StreamKind, content_type: str | None, shown: str
) -> None:
    with pytest.raises(UpstreamError, match=rf"^unexpected content type {re.escape(shown)}$"):
        make_consumer(kind, head(content_type))
