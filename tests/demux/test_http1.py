"""gateway.demux.http1: response head, identity and chunked bodies, fed every which way."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.demux.http1 import (
    ChunkedDecoder,
    IdentityDecoder,
    ResponseHead,
    ResponseHeadParser,
    body_decoder,
    build_request,
    content_length,
    is_chunked,
)
from gateway.errors import LocalProtocolError, RemoteProtocolError

AXIS_HEAD = (
    b"HTTP/1.0 200 OK\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Pragma: no-cache\r\n"
    b"Content-Type: multipart/x-mixed-replace;boundary=myboundary\r\n"
    b"\r\n"
)


def splits(data: bytes, how: str, seed: int = 0) -> Iterator[bytes]:
    """Yield ``data`` all at once, one byte at a time, or at random points."""
    if how == "whole":
        yield data
    elif how == "bytes":
        for i in range(len(data)):
            yield data[i : i + 1]
    else:
        rng = random.Random(seed)
        i = 0
        while i < len(data):
            n = rng.randint(1, 17)
            yield data[i : i + n]
            i += n


HOW = ["whole", "bytes", "random"]


class Recorder:
    """An inner consumer with a small buffer, recording what it was given."""

    def __init__(self, bufsize: int = 7) -> None:
        self.data = bytearray()
        self.eof = 0
        self.copied_in = 0
        self.hints: list[int] = []
        self._buf = bytearray(bufsize)

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[object]:
        self.data += data
        self.copied_in += len(data)
        return [("data", len(data))]

    def get_buffer(self, sizehint: int) -> memoryview:
        self.hints.append(sizehint)
        return memoryview(self._buf)

    def buffer_updated(self, nbytes: int) -> list[object]:
        self.data += self._buf[:nbytes]
        return [("data", nbytes)]

    def receive_eof(self) -> list[object]:
        self.eof += 1
        return [("eof",)]


def parse_head(wire: bytes, how: str, **limits: int) -> tuple[ResponseHead, bytes]:
    parser = ResponseHeadParser(**limits)
    pieces = list(splits(wire, how))
    for i, piece in enumerate(pieces):
        head = parser.receive_data(piece)
        if head is not None:
            return head, parser.trailing_data + b"".join(pieces[i + 1 :])
    raise AssertionError("head not complete")


def socket_feed(decoder: ChunkedDecoder | IdentityDecoder, wire: bytes, how: str) -> None:
    """Feed ``wire`` through get_buffer/buffer_updated, as a BufferedProtocol would."""
    for piece in splits(wire, how, seed=3):
        view = piece
        while view:
            buf = decoder.get_buffer(65536)
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            decoder.buffer_updated(n)
            view = view[n:]


# -- response head ------------------------------------------------------------------------


@pytest.mark.parametrize("how", HOW)
def test_axis_head_parses_identically_however_split(how: str) -> None:
    head, rest = parse_head(AXIS_HEAD + b"--myboundary\r\n", how)
    assert head.http_version == (1, 0)
    assert head.status == 200
    assert head.reason == "OK"
    assert head.get("content-type") == "multipart/x-mixed-replace;boundary=myboundary"
    assert head.get_all("pragma") == ["no-cache"]
    assert rest == b"--myboundary\r\n"


@pytest.mark.parametrize("how", HOW)
def test_lf_only_mixed_case_http11_head(how: str) -> None:
    wire = b"HTTP/1.1 503 Service Unavailable\nCONTENT-type: text/html\nX-Odd:  v  \n\nbody"
    head, rest = parse_head(wire, how)
    assert head.status_text == "HTTP 503 Service Unavailable"
    assert head.headers == (("content-type", "text/html"), ("x-odd", "v"))
    assert rest == b"body"


@pytest.mark.parametrize("how", HOW)
def test_interim_responses_and_leading_blank_lines_are_skipped(how: str) -> None:
    wire = b"\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200\r\nServer: x\r\n\r\n"
    head, rest = parse_head(wire, how)
    assert (head.status, head.reason, head.get("server")) == (200, "", "x")
    assert rest == b""


def test_obsolete_line_folding_is_joined() -> None:
    head, _ = parse_head(b"HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\n\r\n", "whole")
    assert head.get("x-a") == "one two"


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"ICY 200 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/2.0 200 OK\r\n\r\n", "unsupported HTTP version 2.0"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nbad name: v\r\n\r\n", "malformed header line"),
    ],
)
@pytest.mark.parametrize("how", HOW)
def test_malformed_heads_raise_remote_protocol_error(wire: bytes, message: str, how: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        parse_head(wire, how)


@pytest.mark.parametrize("how", HOW)
def test_limits_are_named(how: str) -> None:
    long_line = b"HTTP/1.1 200 OK\r\nX: " + b"a" * 200 + b"\r\n\r\n"
    with pytest.raises(RemoteProtocolError, match=r"max_line_size \(100 bytes\)"):
        parse_head(long_line, how, max_line_size=100)
    many = b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 5 + b"\r\n"
    with pytest.raises(RemoteProtocolError, match=r"max_headers \(4\)"):
        parse_head(many, how, max_headers=4)
    big = b"HTTP/1.1 200 OK\r\n" + b"X: yyyyyyyy\r\n" * 50 + b"\r\n"
    with pytest.raises(RemoteProtocolError, match=r"max_head_size \(300 bytes\)"):
        parse_head(big, how, max_head_size=300)


def test_unterminated_line_hits_the_limit_before_the_end_of_head() -> None:
    parser = ResponseHeadParser(max_line_size=64)
    parser.receive_data(b"HTTP/1.1 200 OK\r\nX: ")

    def feed() -> None:
        for _ in range(100):
            parser.receive_data(b"a")

    with pytest.raises(RemoteProtocolError, match="max_line_size"):
        feed()


def test_feeding_after_the_head_is_a_local_error() -> None:
    parser = ResponseHeadParser()
    assert parser.receive_data(b"HTTP/1.0 200 OK\r\n\r\n") is not None
    with pytest.raises(LocalProtocolError):
        parser.receive_data(b"x")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 50))
def test_any_input_gives_a_head_or_remote_protocol_error(data: bytes, step: int) -> None:
    parser = ResponseHeadParser(max_line_size=128, max_headers=8, max_head_size=256)
    try:
        for i in range(0, len(data), step):
            if parser.receive_data(data[i : i + step]) is not None:
                break
    except RemoteProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([b"HTTP/1.0 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 401"]),
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True),
            st.from_regex(r"[ -~]{0,20}", fullmatch=True),
        ),
        max_size=6,
    ),
    st.sampled_from([b"\r\n", b"\n"]),
    st.binary(max_size=30),
)
def test_generated_heads_round_trip(
    status: bytes, headers: list[tuple[str, str]], eol: bytes, body: bytes
) -> None:
    wire = status + eol
    for name, value in headers:
        wire += f"{name}: {value}".encode() + eol
    wire += eol + body
    results = {parse_head(wire, how) for how in HOW}
    assert len(results) == 1
    head, rest = results.pop()
    assert rest == body
    assert head.headers == tuple((n.lower(), v.strip()) for n, v in headers)


# -- framing helpers ----------------------------------------------------------------------


def head_with(*headers: tuple[str, str]) -> ResponseHead:
    return ResponseHead((1, 1), 200, "OK", headers)


def test_content_length_and_transfer_encoding_rules() -> None:
    assert content_length(head_with()) is None
    assert content_length(head_with(("content-length", "12"))) == 12
    assert content_length(head_with(("content-length", "12, 12"))) == 12
    for bad in ("-1", "1e3", "0x10", "12, 13", "٣"):
        with pytest.raises(RemoteProtocolError, match="Content-Length"):
            content_length(head_with(("content-length", bad)))
    assert not is_chunked(head_with(("transfer-encoding", "identity")))
    assert is_chunked(head_with(("transfer-encoding", "Chunked")))
    with pytest.raises(RemoteProtocolError, match="unsupported transfer coding 'gzip, chunked'"):
        is_chunked(head_with(("transfer-encoding", "gzip, chunked")))
    both = head_with(("content-length", "3"), ("transfer-encoding", "chunked"))
    assert isinstance(body_decoder(both, Recorder()), ChunkedDecoder)


def test_build_request() -> None:
    wire = build_request("/axis-cgi/mjpg/video.cgi?fps=5", "cam:8080", [("Accept", "*/*")])
    assert wire == (
        b"GET /axis-cgi/mjpg/video.cgi?fps=5 HTTP/1.1\r\nHost: cam:8080\r\n"
        b"Accept: */*\r\nConnection: close\r\n\r\n"
    )
    with pytest.raises(LocalProtocolError):
        build_request("/x", "h", [("X", "a\r\nInjected: 1")])
    with pytest.raises(LocalProtocolError):
        build_request("/x y", "h")


# -- identity bodies ----------------------------------------------------------------------


@pytest.mark.parametrize("how", HOW)
def test_identity_with_content_length_stops_at_the_length(how: str) -> None:
    for feed in ("data", "socket"):
        inner = Recorder()
        decoder = IdentityDecoder(inner, 10)
        if feed == "data":
            for piece in splits(b"0123456789extra", how):
                decoder.receive_data(piece)
        else:
            socket_feed(decoder, b"0123456789", how)
        assert bytes(inner.data) == b"0123456789"
        assert decoder.complete
        assert inner.eof == 1


def test_identity_buffer_is_cut_to_the_remaining_length() -> None:
    inner = Recorder(bufsize=64)
    decoder = IdentityDecoder(inner, 5)
    assert len(decoder.get_buffer(65536)) == 5


def test_close_delimited_identity_ends_at_eof() -> None:
    inner = Recorder()
    decoder = IdentityDecoder(inner, None)
    decoder.receive_data(b"abc")
    assert not decoder.complete
    assert decoder.receive_eof() == [("eof",)]
    assert decoder.receive_eof() == []
    assert decoder.copied == 0


# -- chunked bodies -----------------------------------------------------------------------


def chunked(pieces: list[bytes], *, eol: bytes = b"\r\n", ext: bytes = b"") -> bytes:
    out = b""
    for piece in pieces:
        out += f"{len(piece):X}".encode() + ext + eol + piece + eol
    return out + b"0" + eol + b"X-Trailer: 1" + eol + eol


BODY_PIECES = [b"--myboundary\r\n", b"Content-Type: image/jpeg\r\n\r\n", b"\xff\xd8" * 40, b"x"]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("feed", ["data", "socket"])
@pytest.mark.parametrize(("eol", "ext"), [(b"\r\n", b""), (b"\n", b""), (b"\r\n", b";a=b")])
def test_chunked_decodes_identically(how: str, feed: str, eol: bytes, ext: bytes) -> None:
    wire = chunked(BODY_PIECES, eol=eol, ext=ext)
    inner = Recorder()
    decoder = ChunkedDecoder(inner, scratch_size=8)
    if feed == "data":
        for piece in splits(wire, how):
            decoder.receive_data(piece)
    else:
        socket_feed(decoder, wire, how)
    assert bytes(inner.data) == b"".join(BODY_PIECES)
    assert decoder.complete
    assert inner.eof == 1


def test_chunk_data_goes_straight_to_the_consumer_buffer() -> None:
    body = bytes(range(256)) * 64
    wire = chunked([body[:8000], body[8000:]])
    inner = Recorder(bufsize=1 << 16)
    decoder = ChunkedDecoder(inner, scratch_size=8)
    socket_feed(decoder, wire, "whole")
    assert bytes(inner.data) == body
    # Only payload bytes that shared a scratch read with a size line were copied.
    assert decoder.copied == inner.copied_in
    assert decoder.copied <= 2 * 8
    # The consumer was never asked for more than what was left of the chunk.
    assert inner.hints[0] <= 8000
    assert max(inner.hints) <= 8384


def test_buffer_handed_out_never_crosses_the_chunk_end() -> None:
    inner = Recorder(bufsize=100)
    decoder = ChunkedDecoder(inner)
    decoder.receive_data(b"5\r\n")
    assert len(decoder.get_buffer(4096)) == 5


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"zz\r\n", "malformed chunk size"),
        (b"-5\r\n", "malformed chunk size"),
        (b"\r\n", "malformed chunk size"),
        (b"1" * 20 + b"\r\n", "malformed chunk size"),
        (b"3\r\nabcX\r\n", "chunk data not followed by CRLF"),
        (b"1" * 2000, r"max_chunk_line \(1024 bytes\)"),
        (b"0\r\n" + b"X: y\r\n" * 2000, r"max_trailer_size \(8192 bytes\)"),
    ],
)
@pytest.mark.parametrize("how", HOW)
def test_malformed_chunking_raises(wire: bytes, message: str, how: str) -> None:
    decoder = ChunkedDecoder(Recorder())

    def feed() -> None:
        for piece in splits(wire, how):
            decoder.receive_data(piece)

    with pytest.raises(RemoteProtocolError, match=message):
        feed()


def test_truncated_chunked_body_still_ends_the_consumer() -> None:
    inner = Recorder()
    decoder = ChunkedDecoder(inner)
    decoder.receive_data(b"10\r\nabc")
    assert decoder.receive_eof() == [("eof",)]
    assert not decoder.receive_data(b"more")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 40))
def test_any_chunked_input_decodes_or_raises_remote_protocol_error(data: bytes, step: int) -> None:
    decoder = ChunkedDecoder(Recorder(), max_chunk_line=32, max_trailer_size=64)
    try:
        for i in range(0, len(data), step):
            decoder.receive_data(data[i : i + step])
        decoder.receive_eof()
    except RemoteProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=50), max_size=8), st.integers(0, 2**16))
def test_chunked_round_trip_over_socket_reads(pieces: list[bytes], seed: int) -> None:
    wire = chunked(pieces)
    outputs = set()
    for how in HOW:
        inner = Recorder(bufsize=1 + seed % 13)
        decoder = ChunkedDecoder(inner, scratch_size=1 + seed % 7)
        socket_feed(decoder, wire, how)
        assert decoder.complete
        outputs.add(bytes(inner.data))
    assert outputs == {b"".join(pieces)}


def test_reads_past_a_content_length_body_never_reach_the_consumer() -> None:
    inner = Recorder()
    decoder = IdentityDecoder(inner, 3)
    socket_feed(decoder, b"abc", "whole")
    buf = decoder.get_buffer(100)
    buf[:1] = b"X"
    assert decoder.buffer_updated(1) == []
    assert bytes(inner.data) == b"abc"
    assert inner.eof == 1
