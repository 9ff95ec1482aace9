"""Bounded work before bounds: every limit is checked before the work it limits.

Each test measures work the way a loaded 2-core machine cannot disturb: by counting
what a transform is handed, or by comparing this thread's CPU time (not wall-clock)
for inputs of two sizes, taking the least of a few runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from gateway.demux import parts
from gateway.demux.http1 import ResponseHeadParser
from gateway.demux.mpeg2 import Mpeg2Indexer
from gateway.demux.multipart import MultipartDemuxer
from gateway.errors import RemoteProtocolError

pytestmark = pytest.mark.timeout(60)


def cpu(work: Callable[[], object], *, runs: int = 5, repeat: int = 1) -> float:
    """Return the least thread CPU time of ``runs`` runs of ``repeat`` calls (seconds)."""
    best = float("inf")
    for _ in range(runs):
        start = time.thread_time()
        for _ in range(repeat):
            try:
                work()
            except RemoteProtocolError:
                pass
        best = min(best, time.thread_time() - start)
    return best


def quoted_boundary(size: int) -> str:
    """Return a Content-Type whose quoted boundary is ``size`` escaped characters long."""
    return 'multipart/x-mixed-replace; boundary="' + "\\b" * size + '"'


# -- the declared boundary (RFC 2046 §5.1.1: at most 70 characters) ----------------------


@pytest.mark.parametrize("size", [71, 4096, 1 << 20])
def test_an_overlong_quoted_boundary_is_never_unescaped(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[int] = []
    real = parts.unquote

    def counting(text: str) -> str:
        handed.append(len(text))
        return real(text)

    monkeypatch.setattr(parts, "unquote", counting)
    with pytest.raises(RemoteProtocolError, match=r"boundary exceeds max_boundary_length \(70"):
        MultipartDemuxer(quoted_boundary(size))
    assert all(n <= 2 * 72 for n in handed)  # at most a 70-character boundary, all escaped
    if size > 72:
        assert handed == []


def test_a_quoted_boundary_at_the_limit_is_taken() -> None:
    assert MultipartDemuxer(quoted_boundary(70)).boundary == b"b" * 70
    dashes = 'multipart/x-mixed-replace; boundary="\\-\\-' + "\\b" * 70 + '"'
    assert MultipartDemuxer(dashes).boundary == b"b" * 70


@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "token"])
def test_rejecting_a_boundary_costs_the_same_however_long_it_is(quoted: bool) -> None:
    def content_type(size: int) -> str:
        return (
            quoted_boundary(size) if quoted else "multipart/x-mixed-replace;boundary=" + "b" * size
        )

    short, huge = content_type(100), content_type(1 << 20)  # built once, outside the timing
    small = cpu(lambda: parts.declared_boundary(short, max_length=70), repeat=200)
    large = cpu(lambda: parts.declared_boundary(huge, max_length=70), repeat=200)
    # Before: the 1 MB value was unescaped (or copied) first, thousands of times the work.
    assert large < 3 * small + 0.002


# -- the response head ---------------------------------------------------------------------


def test_a_head_that_never_ends_is_refused_after_max_head_size_however_much_came() -> None:
    line = b"X-A: b\r\n"
    small = b"HTTP/1.1 200 OK\r\n" + line * (1 << 14)  # 128 KB
    huge = b"HTTP/1.1 200 OK\r\n" + line * (1 << 21)  # 16 MB, in one chunk

    with pytest.raises(RemoteProtocolError, match=r"response head exceeds max_head_size"):
        ResponseHeadParser().receive_data(huge)
    # Only max_head_size bytes are taken from the chunk: the rest is never copied or
    # searched (before: all 16 MB were copied into the buffer, then searched twice).
    assert cpu(lambda: ResponseHeadParser().receive_data(huge)) < (
        3 * cpu(lambda: ResponseHeadParser().receive_data(small)) + 0.001
    )


def test_interim_responses_share_the_head_budget_and_are_read_in_linear_time() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"

    def feed(count: int) -> Callable[[], object]:
        data = interim * count + b"HTTP/1.1 200 OK\r\n\r\n"
        return lambda: ResponseHeadParser(max_head_size=1 << 22).receive_data(data)

    small, large = cpu(feed(4_000)), cpu(feed(32_000))
    assert large < 16 * small + 0.005  # 8 times the input: 8 times the work, not 64
    with pytest.raises(RemoteProtocolError, match="response head exceeds max_head_size"):
        ResponseHeadParser(max_head_size=1000).receive_data(
            interim * 40 + b"HTTP/1.1 200 OK\r\n\r\n"
        )


def test_a_folded_header_is_bounded_like_one_line() -> None:
    head = b"HTTP/1.1 200 OK\r\nX-A: a\r\n" + b" b\r\n" * 5000 + b"\r\n"
    with pytest.raises(RemoteProtocolError, match=r"folded response header exceeds max_line_size"):
        ResponseHeadParser().receive_data(head)
    parsed = ResponseHeadParser().receive_data(b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\tc\r\n\r\n")
    assert parsed is not None
    assert parsed.get("x-a") == "a b c"


# -- multipart: lines that arrive a byte at a time ---------------------------------------


def bytewise(data: bytes, **limits: int) -> Callable[[], object]:
    def feed() -> None:
        demuxer = MultipartDemuxer("multipart/x-mixed-replace; boundary=b", **limits)  # type: ignore[arg-type]
        for i in range(len(data)):
            demuxer.receive_data(data[i : i + 1])

    return feed


def test_a_header_line_fed_byte_by_byte_is_searched_once() -> None:
    limits = {"max_line_size": 1 << 16, "max_header_block": 1 << 17}
    small = cpu(bytewise(b"--b\r\nX-Long: " + b"y" * 4096, **limits), runs=3)
    large = cpu(bytewise(b"--b\r\nX-Long: " + b"y" * 32768, **limits), runs=3)
    assert large < 16 * small + 0.005  # 8 times the bytes (quadratic was about 30 times)


def test_a_preamble_fed_byte_by_byte_is_searched_once() -> None:
    limits = {"max_preamble": 1 << 20}
    small = cpu(bytewise(b"x" * 16384, **limits), runs=3)
    large = cpu(bytewise(b"x" * 131072, **limits), runs=3)
    assert large < 16 * small + 0.005


# -- MPEG-2: junk before the stream ------------------------------------------------------


def test_junk_before_an_mpeg2_stream_is_searched_in_linear_time() -> None:
    # 0x47 every 3 bytes: a TS sync candidate each time, never confirmed 188 bytes on.
    def feed(size: int) -> Callable[[], object]:
        data = b"\x47\x00\x00" * (size // 3)
        return lambda: Mpeg2Indexer(max_junk=1 << 20).receive_data(data)

    small, large = cpu(feed(16_384), runs=3), cpu(feed(131_072), runs=3)
    assert large < 16 * small + 0.005  # 8 times the junk (quadratic was about 60 times)
