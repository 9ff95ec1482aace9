"""Property tests: any input parses or raises RemoteProtocolError, identically however fed,
in time linear in its size (STYLE §14)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.demux.multipart import Event, MultipartDemuxer, PartReceived
from gateway.errors import RemoteProtocolError

Feeder = Callable[..., tuple[list[Event], str | None]]
CT = "multipart/x-mixed-replace;boundary=myboundary"
LIMITS = {
    "max_line_size": 64,
    "max_headers": 4,
    "max_header_block": 200,
    "max_part_size": 400,
    "max_preamble": 300,
    "max_boundary_length": 20,
}
# Pieces real streams are made of, so random concatenations hit the interesting states.
PIECES = [
    b"--myboundary",
    b"--myboundary--",
    b"--other",
    b"\r\n",
    b"\n",
    b"\r",
    b"Content-Type: image/jpeg",
    b"Content-Type: audio/32KADPCM",
    b"Content-Length: 4",
    b"Content-Length: 10",
    b"Content-Length: 0",
    b"Content-Length: 999999",
    b"content-length:x",
    b"\xff\xd8",
    b"\xff\xd9",
    b"ab",
    b" \t",
    b"-",
    b"X-A:",
]
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _stream(picks: list[int]) -> bytes:
    return b"".join(PIECES[i % len(PIECES)] for i in picks)


@SETTINGS
@given(data=st.binary(max_size=600), content_type=st.sampled_from([CT, None, "text/html"]))
def test_any_bytes_parse_or_raise_remote_error(
    feed: Feeder, data: bytes, content_type: str | None
) -> None:
    feed(content_type, data, **LIMITS)  # asserts identical outcomes in every way of feeding


@SETTINGS
@given(picks=st.lists(st.integers(0, 100), max_size=80), content_type=st.sampled_from([CT, None]))
def test_stream_like_input_parses_or_raises(
    feed: Feeder, picks: list[int], content_type: str | None
) -> None:
    feed(content_type, _stream(picks), **LIMITS)


def _valid_stream(frames: list[bytes], lengths: list[bool]) -> bytes:
    out = b""
    for frame, with_length in zip(frames, lengths, strict=False):
        out += b"--myboundary\r\nContent-Type: image/jpeg\r\n"
        if with_length:
            out += b"Content-Length: %d\r\n" % len(frame)
        out += b"\r\n" + frame + b"\r\n"
    return out + b"--myboundary--\r\n"


frames_strategy = st.lists(
    st.binary(max_size=40).map(lambda body: b"\xff\xd8" + body.replace(b"--my", b"") + b"\xff\xd9"),
    min_size=1,
    max_size=6,
)


@SETTINGS
@given(frames=frames_strategy, lengths=st.lists(st.booleans(), min_size=6, max_size=6))
def test_valid_streams_round_trip(feed: Feeder, frames: list[bytes], lengths: list[bool]) -> None:
    events, error = feed(CT, _valid_stream(frames, lengths))
    assert error is None
    assert [bytes(e.payload) for e in events if isinstance(e, PartReceived)] == frames


@SETTINGS
@given(
    frames=frames_strategy,
    lengths=st.lists(st.booleans(), min_size=6, max_size=6),
    edits=st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.binary(max_size=4)), max_size=4
    ),
)
def test_mutated_streams_parse_or_raise(
    feed: Feeder, frames: list[bytes], lengths: list[bool], edits: list[tuple[int, int, bytes]]
) -> None:
    data = bytearray(_valid_stream(frames, lengths))
    for where, cut, insert in edits:
        at = where % (len(data) + 1)
        data[at : at + cut] = insert
    feed(CT, bytes(data), **LIMITS)


def _time(data: bytes, *, max_part_size: int = 2**24, max_header_block: int = 16384) -> float:
    demuxer = MultipartDemuxer(CT, max_part_size=max_part_size, max_header_block=max_header_block)
    start = time.process_time()
    try:
        for pos in range(0, len(data), 65536):
            demuxer.receive_data(data[pos : pos + 65536])
        demuxer.receive_eof()
    except RemoteProtocolError:
        pass
    return time.process_time() - start


@pytest.mark.parametrize(
    "unit",
    [
        b"\r\n--myboundar",  # partial delimiters: a naive rescan is quadratic
        b"--myboundaryX",  # delimiters that are not
        b"\r\n",  # blank lines where headers or a delimiter are due
        b"\xff\xd9\r\n-",
    ],
)
def test_adversarial_input_is_linear(unit: bytes) -> None:
    head = b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\n"
    small = head + unit * (400_000 // len(unit))
    large = head + unit * (4_000_000 // len(unit))
    limits = {"max_part_size": 8 * 2**20, "max_header_block": 8 * 2**20}
    t_small, t_large = _time(small, **limits), _time(large, **limits)
    # Ten times the input may cost ten times the time (plus slack), never a hundred times.
    assert t_large < 30 * max(t_small, 0.005)
    assert t_large < 5.0


def test_wrong_content_lengths_everywhere_are_linear() -> None:
    # Every part claims the maximum length: each byte is re-read at most once, not per part.
    rng = random.Random(7)
    frame = (
        b"\xff\xd8"
        + bytes(rng.randrange(256) for _ in range(200)).replace(b"--", b"")
        + b"\xff\xd9"
    )
    bad = (
        b"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: 60000\r\n\r\n"
        + frame
        + b"\r\n"
    )
    t_small, t_large = _time(bad * 200), _time(bad * 2000)
    assert t_large < 30 * max(t_small, 0.005)
    assert t_large < 5.0
