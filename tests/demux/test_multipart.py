"""Multipart demuxer: VAPIX and other dialects, limits, zero copy, FFmpeg's mpjpeg muxer."""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence
from typing import Any

import av
import numpy as np
import pytest

from gateway.demux.multipart import (
    Event,
    MultipartDemuxer,
    PartDropped,
    PartReceived,
    StreamEnded,
)
from gateway.demux.parts import DropReason
from gateway.errors import LocalProtocolError, RemoteProtocolError

#: The feeder fixture (conftest.py): events and error message, identical every way.
Feeder = Callable[..., tuple[list[Event], str | None]]


def jpeg(seed: int, size: int = 60) -> bytes:
    """Return a fake but well-formed-enough JPEG (SOI, body without markers, EOI)."""
    rng = random.Random(seed)
    body = bytes(rng.choice(b"ABCDEFGH\r\n-xyz\x00") for _ in range(size))
    return b"\xff\xd8" + body + b"\xff\xd9"


def part(
    payload: bytes, *, boundary: bytes = b"myboundary", length: bool = True, **kw: Any
) -> bytes:
    """Return one VAPIX §5.2.7 part: delimiter line, headers, body, CRLF."""
    ctype: bytes = kw.get("ctype", b"image/jpeg")
    eol: bytes = kw.get("eol", b"\r\n")
    head = b"--" + boundary + eol + b"Content-Type: " + ctype + eol
    if length:
        head += b"Content-Length: %d" % len(payload) + eol
    return head + eol + payload + eol


CT = "multipart/x-mixed-replace;boundary=myboundary"
J1, J2, J3 = jpeg(1), jpeg(2, 300), jpeg(3, 5)


def payloads(events: Sequence[object]) -> list[bytes]:
    return [bytes(e.payload) for e in events if isinstance(e, PartReceived)]


def test_vapix_mjpeg_with_content_length(feed: Feeder) -> None:
    data = part(J1) + part(J2) + part(J3)
    events, error = feed(CT, data)
    assert error is None
    assert payloads(events) == [J1, J2, J3]
    first = events[0]
    assert isinstance(first, PartReceived)
    assert first.content_type == "image/jpeg"
    assert first.content_length == len(J1)
    assert first.headers == (("content-type", "image/jpeg"), ("content-length", str(len(J1))))
    assert events[-1] == StreamEnded()


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        pytest.param(CT, part(J1, length=False) + part(J2, length=False), id="no-content-length"),
        pytest.param(
            CT,
            (part(J1, eol=b"\n") + part(J2, eol=b"\n", length=False)),
            id="lf-only",
        ),
        pytest.param(
            'multipart/x-mixed-replace; boundary="myboundary"', part(J1) + part(J2), id="quoted"
        ),
        pytest.param(
            "multipart/x-mixed-replace;BOUNDARY=--myboundary", part(J1) + part(J2), id="dashes"
        ),
        pytest.param("multipart/x-mixed-replace;boundary=other", part(J1) + part(J2), id="differs"),
        pytest.param(None, part(J1) + part(J2, length=False), id="no-content-type"),
        pytest.param("multipart/x-mixed-replace", part(J1) + part(J2), id="no-boundary-param"),
        pytest.param(CT, part(J1)[len(b"--myboundary\r\n") :] + part(J2), id="no-initial-boundary"),
        pytest.param(CT, b"myboundary\r\nsome text\r\n\r\n" + part(J1) + part(J2), id="preamble"),
        pytest.param(
            CT,
            b"preamble text\r\n\r\n" + part(J1)[len(b"--myboundary\r\n") :] + part(J2),
            id="preamble-no-initial-boundary",
        ),
        pytest.param(
            CT,
            part(J1)
            .replace(b"Content-Type", b"CONTENT-type")
            .replace(b"Content-Length", b"content-LENGTH")
            + part(J2),
            id="header-case",
        ),
        pytest.param(
            CT,
            part(J1) + b"\r\n\r\n" + part(J2, length=False) + b"\r\n\r\n",
            id="blank-lines-before",
        ),
        pytest.param(
            CT,
            part(J1).replace(b"--myboundary\r\n", b"--myboundary\r\n\r\n\r\n") + part(J2),
            id="blank-lines-after",
        ),
        pytest.param(
            CT, part(J1).replace(b"myboundary\r\n", b"myboundary \t\r\n") + part(J2), id="padding"
        ),
        pytest.param(CT, part(J1) + part(J2, length=False)[:-2], id="no-eol-before-delimiter"),
    ],
)
def test_dialects(feed: Feeder, content_type: str | None, data: bytes) -> None:
    events, error = feed(content_type, data + b"--myboundary--\r\nepilogue")
    assert error is None
    assert payloads(events) == [J1, J2]
    assert events[-1] == StreamEnded(by_delimiter=True)  # the epilogue (and EOF) adds nothing
    assert sum(isinstance(e, StreamEnded) for e in events) == 1


def test_a_close_delimiter_inside_a_jpeg_without_length_ends_the_body(feed: Feeder) -> None:
    # A COM segment may hold any bytes; without Content-Length only the delimiter frames
    # the part, so the stream ends there: the caller must close the connection.
    com = b"\xff\xfe\x00\x14\r\n--myboundary--\r\n"
    tricked = J2[:2] + com + J2[2:]
    data = part(J1, length=False) + part(tricked, length=False) + part(J3, length=False)
    events, error = feed(CT, data)
    assert error is None
    assert payloads(events) == [J1]
    assert events[1:] == [
        PartDropped(DropReason.MISSING_EOI, 6),  # SOI and the COM marker and length
        StreamEnded(by_delimiter=True),
    ]
    with_length = part(J1) + part(tricked) + part(J3)
    events, error = feed(CT, with_length + b"--myboundary--\r\n")
    assert payloads(events) == [J1, tricked, J3]  # Content-Length frames it: all is well
    assert events[-1] == StreamEnded(by_delimiter=True)


def test_the_end_of_the_connection_is_not_a_close_delimiter() -> None:
    demuxer = MultipartDemuxer(CT)
    events = demuxer.receive_data(part(J1))
    events += demuxer.receive_eof()
    assert payloads(events) == [J1]
    assert events[-1] == StreamEnded(by_delimiter=False)


def test_boundary_is_learned_from_body() -> None:
    demuxer = MultipartDemuxer("multipart/x-mixed-replace;boundary=other")
    assert demuxer.boundary == b"other"
    demuxer.receive_data(part(J1))
    assert demuxer.boundary == b"myboundary"
    assert MultipartDemuxer('multipart/mixed; boundary="--a b"').boundary == b"a b"


def test_no_content_type_and_no_initial_boundary(feed: Feeder) -> None:
    body = part(J1, length=False)[len(b"--myboundary\r\n") :] + part(J2, length=False)
    events, error = feed(None, body + b"--myboundary\r\n")
    assert error is None
    assert payloads(events) == [J1, J2]


def test_vapix_audio_without_blank_line(feed: Feeder) -> None:
    # VAPIX §5.5.2: "Content-Type: audio/32KADPCM\r\n<Audio data>\r\n--<boundary>".
    audio = [bytes(range(128, 228)), b"\x80\x00\r\n\x10\x20", b"\xaa" * 7]
    data = b"".join(
        b"--myboundary\r\nContent-Type: audio/32KADPCM\r\n" + a + b"\r\n" for a in audio
    )
    events, error = feed(CT, data + b"--myboundary\r\n")
    assert error is None
    assert payloads(events) == audio
    assert {e.content_type for e in events if isinstance(e, PartReceived)} == {"audio/32KADPCM"}


def test_non_image_parts_in_video_stream(feed: Feeder) -> None:
    text = b"event=motion\r\n"
    data = (
        part(J1)
        + part(text, ctype=b"text/plain")
        + part(b"\x01\x02", ctype=b"audio/32KADPCM", length=False)
    )
    events, error = feed(CT, data + b"--myboundary--")
    assert error is None
    kinds = [(e.content_type, bytes(e.payload)) for e in events if isinstance(e, PartReceived)]
    assert kinds == [("image/jpeg", J1), ("text/plain", text), ("audio/32KADPCM", b"\x01\x02")]


def test_part_without_content_type_is_sniffed(feed: Feeder) -> None:
    data = b"--myboundary\r\nContent-Length: %d\r\n\r\n" % len(J1) + J1 + b"\r\n"
    data += b"--myboundary\r\nX-Other: 1\r\n\r\nhello\r\n--myboundary\r\n"
    events, error = feed(CT, data)
    assert error is None
    assert [(e.content_type, bytes(e.payload)) for e in events if isinstance(e, PartReceived)] == [
        ("image/jpeg", J1),
        ("application/octet-stream", b"hello"),
    ]


@pytest.mark.parametrize("delta", [-7, -1, 3, 25, 500])
@pytest.mark.parametrize("where", [0, 1])
def test_wrong_content_length_drops_only_that_part(feed: Feeder, delta: int, where: int) -> None:
    frames = [J1, J2, J3, jpeg(4, 40)]
    chunks = [part(f) for f in frames]
    bad = frames[where]
    chunks[where] = chunks[where].replace(
        b"Length: %d" % len(bad), b"Length: %d" % (len(bad) + delta)
    )
    events, error = feed(CT, b"".join(chunks) + b"--myboundary--\r\n")
    assert error is None
    assert payloads(events) == [f for i, f in enumerate(frames) if i != where]
    dropped = [e for e in events if isinstance(e, PartDropped)]
    assert dropped == [PartDropped(DropReason.LENGTH_MISMATCH, len(bad) + 2)]


@pytest.mark.parametrize("extra", [1, 2])
def test_content_length_counting_the_crlf_is_tolerated(feed: Feeder, extra: int) -> None:
    data = b"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % (
        len(J1) + extra
    )
    events, error = feed(CT, data + J1 + b"\r\n--myboundary\r\n")
    assert error is None
    # With a Content-Length the payload is exactly that many bytes.
    assert payloads(events) == [J1 + b"\r\n"[:extra]]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (J1[:-1], DropReason.MISSING_EOI),
        (J1[:30], DropReason.MISSING_EOI),
        (J1[2:], DropReason.MISSING_SOI),
        (b"", DropReason.MISSING_SOI),
    ],
)
@pytest.mark.parametrize("length", [True, False])
def test_torn_jpeg_is_dropped(feed: Feeder, frame: bytes, reason: DropReason, length: bool) -> None:
    events, error = feed(CT, part(J1) + part(frame, length=length) + part(J2) + b"--myboundary--")
    assert error is None
    assert payloads(events) == [J1, J2]
    assert [e for e in events if isinstance(e, PartDropped)] == [PartDropped(reason, len(frame))]


def test_check_jpeg_off_delivers_anything() -> None:
    demuxer = MultipartDemuxer(CT, check_jpeg=False)
    events = demuxer.receive_data(part(b"not a jpeg") + b"--myboundary--")
    assert payloads(events) == [b"not a jpeg"]


@pytest.mark.parametrize("length", [True, False])
def test_close_mid_frame(feed: Feeder, length: bool) -> None:
    data = part(J1, length=length) + part(J2, length=length)[:-50]
    events, error = feed(CT, data)
    assert error is None
    assert payloads(events) == [J1]
    assert events[-2:] == [PartDropped(DropReason.TRUNCATED, len(J2) - 48), StreamEnded()]
    demuxer = MultipartDemuxer(CT)
    demuxer.receive_data(data)
    demuxer.receive_eof()
    assert (demuxer.parts_received, demuxer.parts_dropped, demuxer.bytes_received) == (
        1,
        1,
        len(data),
    )


def test_content_length_part_is_complete_at_eof(feed: Feeder) -> None:
    events, error = feed(CT, part(J1)[:-2])
    assert error is None
    assert payloads(events) == [J1]


def test_jpeg_is_delivered_before_the_next_delimiter() -> None:
    # Servers that send the delimiter first (motion, mjpg-streamer) must not add a frame of latency.
    demuxer = MultipartDemuxer(CT)
    events = demuxer.receive_data(
        b"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(J1) + J1
    )
    assert payloads(events) == [J1]


def test_zero_copy_payload_is_the_read_buffer() -> None:
    demuxer = MultipartDemuxer(CT)
    head = b"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(J2)
    assert demuxer.receive_data(part(J1) + head) != []
    assert demuxer.bytes_copied == len(J1)
    buf = demuxer.get_buffer(-1)
    assert len(buf) == len(J2)  # exactly the part: the read lands in the frame's buffer
    buf[:] = J2
    (event,) = demuxer.buffer_updated(len(J2))
    assert isinstance(event, PartReceived)
    assert isinstance(event.payload, memoryview)
    assert event.payload.readonly
    assert event.payload.obj is buf.obj
    assert demuxer.bytes_copied == len(J1)  # nothing more was copied


def test_between_parts_reads_are_small() -> None:
    # After a Content-Length part only a few body bytes ride along with the next headers.
    demuxer = MultipartDemuxer(CT)
    demuxer.receive_data(part(J1) + part(J2))
    assert len(demuxer.get_buffer(65536)) <= 1024


def test_huge_size_hint_does_not_allocate_it() -> None:
    assert len(MultipartDemuxer(CT).get_buffer(2**40)) <= 2**20


def test_counters(feed: Feeder) -> None:
    demuxer = MultipartDemuxer(CT)
    data = part(J1) + part(J1[:-3]) + part(J2, length=False)
    demuxer.receive_data(data)
    assert (demuxer.parts_received, demuxer.parts_dropped, demuxer.bytes_received) == (
        1,
        1,
        len(data),
    )
    demuxer.receive_data(b"--myboundary\r\n")
    assert demuxer.parts_received == 2


# -- limits ---------------------------------------------------------------------------


def _limit_error(feed: Feeder, data: bytes, **limits: int) -> str | None:
    error: str | None = feed(CT, data, **limits)[1]
    return error


@pytest.mark.parametrize(
    ("data", "limits", "message"),
    [
        (
            b"--myboundary\r\nX-Long: " + b"a" * 100 + b"\r\n\r\n",
            {"max_line_size": 64},
            "header line exceeds max_line_size (64 bytes)",
        ),
        (
            b"--myboundary\r\n" + b"X-A: 1\r\n" * 5 + b"\r\n",
            {"max_headers": 4},
            "part has more than max_headers (4)",
        ),
        (
            b"--myboundary\r\n" + b"X-Header: 1234567890\r\n" * 10 + b"\r\n",
            {"max_header_block": 100},
            "header block exceeds max_header_block (100 bytes)",
        ),
        (
            b"--myboundary\r\n" + b"\r\n" * 60,
            {"max_header_block": 100},
            "header block exceeds max_header_block (100 bytes)",
        ),
        (
            part(jpeg(1, 200), length=False),
            {"max_part_size": 100},
            "part exceeds max_part_size (100 bytes)",
        ),
        (
            b"--myboundary\r\nContent-Length: 101\r\n\r\n",
            {"max_part_size": 100},
            "part Content-Length 101 exceeds max_part_size (100 bytes)",
        ),
        (b"x" * 200, {"max_preamble": 100}, "preamble exceeds max_preamble (100 bytes)"),
        (b"line\r\n" * 40, {"max_preamble": 100}, "preamble exceeds max_preamble (100 bytes)"),
        (b"--" + b"b" * 71 + b"\r\n", {}, "boundary exceeds max_boundary_length (70 bytes)"),
        (
            b"--" + b"b" * 11 + b"\r\n",
            {"max_boundary_length": 10},
            "boundary exceeds max_boundary_length (10 bytes)",
        ),
    ],
)
def test_limits(feed: Feeder, data: bytes, limits: dict[str, int], message: str) -> None:
    assert _limit_error(feed, data + part(J1), **limits) == message


def test_limits_hold_at_exact_size(feed: Feeder) -> None:
    frame = jpeg(9, 96)
    assert (
        _limit_error(feed, part(frame, length=False) + b"--myboundary--", max_part_size=100) is None
    )
    assert _limit_error(feed, part(frame) + b"--myboundary--", max_part_size=100) is None
    line = b"X-Long: " + b"a" * 56
    assert (
        _limit_error(
            feed, b"--myboundary\r\n" + line + b"\r\n\r\n" + J1 + b"\r\n", max_line_size=64
        )
        is None
    )


def test_declared_boundary_too_long() -> None:
    with pytest.raises(
        RemoteProtocolError, match=r"boundary exceeds max_boundary_length \(70 bytes\)"
    ):
        MultipartDemuxer("multipart/x-mixed-replace;boundary=" + "b" * 71)


@pytest.mark.parametrize(
    "value", ["-5", "+5", "0x10", "1e3", "5 5", "", "abc", "5.0", "9" * 5000, "½"]
)
def test_bad_content_length_is_rejected(feed: Feeder, value: str) -> None:
    data = b"--myboundary\r\nContent-Length: " + value.encode("utf-8") + b"\r\n\r\n" + J1 + b"\r\n"
    events, error = feed(CT, data)
    assert error is not None
    assert "Content-Length" in error
    assert payloads(events) == []


def test_conflicting_content_lengths(feed: Feeder) -> None:
    data = b"--myboundary\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
    assert feed(CT, data)[1] == "part has conflicting Content-Length headers"


def test_errors_are_sticky_and_misuse_is_local() -> None:
    demuxer = MultipartDemuxer(CT, max_preamble=10)
    with pytest.raises(RemoteProtocolError):
        demuxer.receive_data(b"x" * 20)
    with pytest.raises(RemoteProtocolError):
        demuxer.receive_data(b"--myboundary\r\n")
    done = MultipartDemuxer(CT)
    assert done.receive_eof() == [StreamEnded()]
    assert done.receive_eof() == []
    with pytest.raises(LocalProtocolError):
        done.receive_data(b"x")
    fresh = MultipartDemuxer(CT)
    fresh.get_buffer(10)
    with pytest.raises(LocalProtocolError):
        fresh.buffer_updated(11)


# -- FFmpeg's mpjpeg muxer: a dialect no one here wrote --------------------------------------


def test_ffmpeg_mpjpeg_muxer_output_is_parsed_frame_exact(feed: Feeder) -> None:
    out = io.BytesIO()
    packets: list[bytes] = []
    with av.open(out, "w", format="mpjpeg") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuvj420p"
        for i in range(6):
            y, x = np.mgrid[0:64, 0:96]
            image = np.stack([(x * 3 + i * 40) % 256, (y * 4) % 256, (x ^ y) % 256], axis=-1)
            frame = av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                packets.append(bytes(packet))
                container.mux(packet)
        for packet in stream.encode(None):
            packets.append(bytes(packet))
            container.mux(packet)
    data = out.getvalue()
    assert len(packets) == 6
    # FFmpeg does not send a Content-Type for the response body here: learn the boundary.
    for content_type in (None, "multipart/x-mixed-replace;boundary=ffmpeg"):
        events, error = feed(content_type, data)
        assert error is None
        assert payloads(events) == packets
    assert MultipartDemuxer(None).receive_data(data[:20]) == []


def test_parts_inside_an_immutable_chunk_are_views_of_it() -> None:
    demuxer = MultipartDemuxer(CT)
    demuxer.receive_data(part(J1)[:-2])  # the first part goes through scratch
    chunk = b"\r\n" + part(J2) + part(J3)[:-2]
    before = demuxer.bytes_copied
    events = demuxer.receive_data(chunk)
    assert payloads(events) == [J2, J3]
    for event in events:
        assert isinstance(event, PartReceived)
        assert isinstance(event.payload, memoryview)
        assert event.payload.obj is chunk
    assert demuxer.bytes_copied == before


def test_mutable_input_is_copied() -> None:
    demuxer = MultipartDemuxer(CT)
    demuxer.receive_data(part(J1)[:-2])
    chunk = bytearray(b"\r\n" + part(J2)[:-2])
    events = demuxer.receive_data(chunk)
    chunk[:] = bytes(len(chunk))  # the caller reuses its buffer
    assert payloads(events) == [J2]
    assert demuxer.bytes_copied == len(J1) + len(J2)


def test_no_content_type_no_initial_boundary_with_length(feed: Feeder) -> None:
    body = part(J1)[len(b"--myboundary\r\n") :] + part(J2) + part(J3)
    events, error = feed(None, body + b"--myboundary--")
    assert error is None
    assert payloads(events) == [J1, J2, J3]


@pytest.mark.parametrize(
    ("data", "limits", "message"),
    [
        # A long delimiter-like line breaks the preamble budget before its end is seen.
        (
            b"--" + b"b" * 40 + b"\r\n",
            {"max_preamble": 30, "max_boundary_length": 20},
            "preamble exceeds max_preamble (30 bytes)",
        ),
        # The block overflows inside the line that would also be one header too many.
        (
            b"--myboundary\r\n" + b"X-A: 1234567890\r\n" * 3 + b"\r\n",
            {"max_headers": 1, "max_header_block": 30},
            "header block exceeds max_header_block (30 bytes)",
        ),
        (
            b"--myboundary\r\nX-A: 1\r\nX-B: " + b"a" * 80 + b"\r\n\r\n",
            {"max_line_size": 40, "max_header_block": 30},
            "header block exceeds max_header_block (30 bytes)",
        ),
    ],
)
def test_the_first_limit_broken_is_reported_however_fed(
    feed: Feeder, data: bytes, limits: dict[str, int], message: str
) -> None:
    assert _limit_error(feed, data + part(J1), **limits) == message
