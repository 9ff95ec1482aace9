"""The sans-IO ingest pipeline (head parser -> body decoder -> demuxer) on hostile input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.demux.http1 import ResponseHeadParser, body_decoder
from gateway.demux.multipart import MultipartDemuxer, PartReceived
from gateway.errors import RemoteProtocolError

HEADS = [
    b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=myboundary\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Type: multipart/x-mixed-replace\nContent-Length: 40\n\n",
]
JPEG = b"\xff\xd8" + b"\x00" * 30 + b"\xff\xd9"


def run(wire: bytes, step: int, *, via_buffer: bool) -> list[object]:
    """Feed ``wire`` as the connection would; return the events."""
    parser = ResponseHeadParser(max_line_size=256, max_headers=16, max_head_size=1024)
    events: list[object] = []
    decoder = None
    i = 0
    while i < len(wire):
        if decoder is None:
            head = parser.receive_data(wire[i : i + step])
            i += step
            if head is not None:
                demuxer = MultipartDemuxer(head.get("content-type"), max_part_size=4096)
                decoder = body_decoder(head, demuxer)
                events += decoder.receive_data(parser.trailing_data)
        elif via_buffer:
            buf = decoder.get_buffer(step)
            n = min(len(buf), step, len(wire) - i)
            buf[:n] = wire[i : i + n]
            events += decoder.buffer_updated(n)
            i += n
        else:
            events += decoder.receive_data(wire[i : i + step])
            i += step
    if decoder is not None:
        events += decoder.receive_eof()
    return events


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(HEADS),
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from([b"--myboundary\r\n", b"--b\r\n", b"\r\n", JPEG, b"0\r\n\r\n"]),
            st.sampled_from(
                [b"Content-Type: image/jpeg\r\n\r\n", b"1f\r\n", b"Content-Length: 34\n"]
            ),
        ),
        max_size=12,
    ),
    st.integers(1, 64),
    st.booleans(),
)
def test_any_body_gives_events_or_remote_protocol_error(
    head: bytes, pieces: list[bytes], step: int, via_buffer: bool
) -> None:
    try:
        run(head + b"".join(pieces), step, via_buffer=via_buffer)
    except RemoteProtocolError:
        pass


def test_a_clean_chunked_stream_gives_the_same_frames_every_way() -> None:
    part = b"--b\r\nContent-Type: image/jpeg\r\n\r\n" + JPEG + b"\r\n"
    body = part * 5 + b"--b--\r\n"
    chunked = b"".join(
        f"{len(body[i : i + 23]):x}\r\n".encode() + body[i : i + 23] + b"\r\n"
        for i in range(0, len(body), 23)
    )
    wire = HEADS[1] + chunked + b"0\r\n\r\n"
    results = set()
    for step in (1, 7, 64, len(wire)):
        for via_buffer in (False, True):
            frames = [bytes(e.payload) for e in run(wire, step, via_buffer=via_buffer)
                      if isinstance(e, PartReceived)]  # fmt: skip
            results.add(tuple(frames))
    assert results == {(JPEG,) * 5}
