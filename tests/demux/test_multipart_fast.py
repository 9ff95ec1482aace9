"""The one-loop path for Content-Length parts agrees with the state handlers it skips."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.demux import parts
from gateway.demux.multipart import Event, MultipartDemuxer, PartDropped, PartReceived
from gateway.demux.parts import DropReason
from tests.demux.test_multipart import CT, J1, J2, J3, jpeg, part, payloads

Feeder = Callable[..., tuple[list[Event], str | None]]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("content-type", "image/jpeg"), ("content-length", "12")], (12, "image/jpeg")),
        ([("content-length", "0012")], (12, None)),
        ([("content-type", "a/b"), ("content-type", "c/d"), ("content-length", "1")], (1, "a/b")),
        ([("content-type", "image/jpeg")], None),  # no length: delimited by the boundary
        ([("content-length", "1"), ("content-length", "1")], None),  # several: the slow path
        ([("content-length", "1a")], None),
        ([("content-length", "")], None),
        ([("content-length", "١٢")], None),  # Unicode digits are not ASCII digits
        ([("content-length", "101")], None),  # over max_part_size
        ([("content-length", "0" * 13 + "1")], None),  # long digit strings: never int()
    ],
)
def test_length_and_type(headers: list[tuple[str, str]], expected: object) -> None:
    assert parts.length_and_type(headers, max_part_size=100) == expected


@pytest.mark.parametrize(
    ("payload", "whole"),
    [
        (J1, True),
        (b"\xff\xd8\xff\xd9", True),
        (b"\xff\xd8\xd9", False),  # too short to hold both markers
        (J1 + b"\r\n", False),  # whole, but only jpeg_problem strips the line break
        (J1[1:], False),
        (J1[:-1], False),
        (b"", False),
    ],
)
def test_whole_jpeg(payload: bytes, whole: bool) -> None:
    assert parts.whole_jpeg(payload) is whole
    assert parts.whole_jpeg(memoryview(payload)) is whole
    if whole:
        assert parts.jpeg_problem(payload) is None


def test_counted_line_break_still_delivers_at_once(feed: Feeder) -> None:
    # Some cameras count the CRLF after the JPEG in Content-Length (parts.jpeg_problem).
    data = part(J1 + b"\r\n") + part(J2 + b"\r\n") + b"--myboundary--\r\n"
    events, error = feed(CT, data)
    assert error is None
    assert payloads(events) == [J1 + b"\r\n", J2 + b"\r\n"]


def test_non_jpeg_and_torn_parts_between_jpegs(feed: Feeder) -> None:
    audio = bytes(range(200))
    torn = J2[:-2]
    data = (
        part(J1)
        + part(audio, ctype=b"audio/32KADPCM")
        + part(torn)
        + part(J3, ctype=b"image/jpeg; q=1")
        + b"--myboundary--\r\n"
    )
    events, error = feed(CT, data)
    assert error is None
    received = [(e.content_type, bytes(e.payload)) for e in events if isinstance(e, PartReceived)]
    assert received == [("image/jpeg", J1), ("audio/32KADPCM", audio), ("image/jpeg", J3)]
    assert [e.reason for e in events if isinstance(e, PartDropped)] == [DropReason.MISSING_EOI]


def test_unchecked_jpeg_is_delivered_with_its_length(feed: Feeder) -> None:
    data = part(J1[:-2]) + part(J2) + b"--myboundary--\r\n"
    events, error = feed(CT, data, check_jpeg=False)
    assert error is None
    assert payloads(events) == [J1[:-2], J2]
    assert [e.content_length for e in events if isinstance(e, PartReceived)] == [
        len(J1) - 2,
        len(J2),
    ]


def test_many_content_types_beyond_the_cache(feed: Feeder) -> None:
    # More distinct Content-Type values than the demuxer remembers: same answers.
    types = [b"image/jpeg; n=%d" % i for i in range(150)] + [b"IMAGE/JPEG", b"image/jpg"]
    data = b"".join(part(jpeg(i, 20), ctype=t) for i, t in enumerate(types)) + b"--myboundary--"
    events, error = feed(CT, data)
    assert error is None
    received = [e for e in events if isinstance(e, PartReceived)]
    assert [e.content_type for e in received] == [t.split(b";")[0].decode() for t in types]


def test_headers_match_the_slow_path() -> None:
    head = (
        b"--myboundary  \r\nContent-Type :\timage/jpeg \r\nX-Time: 1\n"
        b"CONTENT-LENGTH: %d\r\n\r\n" % len(J2)
    )
    data = part(J1) + head + J2 + b"\r\n--myboundary--\r\n"
    fast = MultipartDemuxer(CT).receive_data(data)
    slow: list[Event] = []
    demuxer = MultipartDemuxer(CT)
    for i in range(len(data)):
        slow += demuxer.receive_data(data[i : i + 1])
    assert fast == slow
    second = fast[1]
    assert isinstance(second, PartReceived)
    assert second.headers == (
        ("content-type", "image/jpeg"),
        ("x-time", "1"),
        ("content-length", str(len(J2))),
    )


def test_part_across_chunks_is_copied_once_and_only_it() -> None:
    demuxer = MultipartDemuxer(CT)
    demuxer.receive_data(part(J1)[:-2])  # the first part goes through scratch
    before = demuxer.bytes_copied
    third = part(J3)
    cut = len(third) - len(J3) - 2 + 4  # headers and 4 body bytes in the first chunk
    first = b"\r\n" + part(J2) + third[:cut]
    events = demuxer.receive_data(first) + demuxer.receive_data(third[cut:] + part(J1))
    assert payloads(events) == [J2, J3, J1]  # J1 is whole: delivered before its delimiter
    assert demuxer.bytes_copied - before == len(J3)
    for event in events:
        assert isinstance(event, PartReceived)
        assert isinstance(event.payload, memoryview)
        assert event.payload.readonly
