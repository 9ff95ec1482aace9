"""MPEG-2 indexer on hostile input: parses or raises RemoteProtocolError, bounded, linear."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.demux.mpeg2 import Mpeg2Indexer, UnitDropped
from gateway.errors import LocalProtocolError, RemoteProtocolError
from tests.demux.mpeg2_helpers import feed, feed_every_way, sim_stream, units_of

PIECES = [
    b"\x00\x00\x01\xb3",
    b"\x00\x00\x01\xb8\x00\x08\x00\x40",
    b"\x00\x00\x01\x00\x00\x0f",
    b"\x00\x00\x01\xba",
    b"\x00\x00\x01\xe0\x00\x10\x80\x00\x00",
    b"\x47\x40\x00\x10",
    b"\x00",
    b"\xff",
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=40)), max_size=60).map(b"".join)
)
def test_any_input_parses_or_raises_remote_protocol_error(data: bytes) -> None:
    feed_every_way(data, ("all", "bytewise", "random", "buffer-small"), max_junk=256)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 10_000), st.binary(min_size=1, max_size=64), st.sampled_from(["es", "ps", "ts"])
)
def test_corrupted_streams_parse_or_raise(at: int, garbage: bytes, container: str) -> None:
    data = bytearray(sim_stream(container, True, pictures=20))
    at %= len(data)
    data[at : at + len(garbage)] = garbage
    feed_every_way(bytes(data), ("all", "random", "buffer-small"), max_unit_size=20_000)


@pytest.mark.parametrize(
    "pattern",
    [b"\x00", b"\x00\x00\x01", b"\x00\x00\x01\x00", b"\x00\x00\x01\xb8", b"\x00\x00\x01\xb3"],
)
def test_adversarial_es_is_linear_and_bounded(pattern: bytes) -> None:
    head = sim_stream("es", False, pictures=3)
    times = []
    for size in (1 << 20, 4 << 20):
        data = head + pattern * (size // len(pattern))
        indexer = Mpeg2Indexer(max_unit_size=1 << 20, block_size=1 << 16)
        # This thread's CPU time: the work done, not how busy the machine is.
        start = time.thread_time()
        events: list[object] = []
        i = 0
        while i < len(data):
            buf = indexer.get_buffer(-1)
            n = min(len(buf), len(data) - i)
            buf[:n] = data[i : i + n]
            events += indexer.buffer_updated(n)
            i += n
            assert indexer._input.kept() <= (1 << 20) + 3 * (1 << 16)
            events.clear()  # the caller lets payloads go
        indexer.receive_eof()
        times.append(time.thread_time() - start)
    assert times[1] < 8 * times[0] + 0.5  # 4x the input: about 4x the time


@pytest.mark.parametrize("container", ["es", "ps", "ts"])
def test_overlong_units_dropped_and_counted(container: str) -> None:
    data = sim_stream(container, False, pictures=40)
    sizes = sorted(len(u.payload) for u in units_of(feed(data, "all")[0]))
    events, error = feed_every_way(data, max_unit_size=sizes[-3])
    assert error is None
    dropped = [e for e in events if isinstance(e, UnitDropped)]
    assert dropped
    assert dropped[0].reason == "unit longer than max_unit_size"
    # Everything is accounted for: delivered or dropped.
    delivered = sum(len(u.payload) for u in units_of(events))
    assert delivered + sum(d.size for d in dropped) == len(data)


def test_overlong_unit_then_recovery_at_sequence_header() -> None:
    data = sim_stream("es", False, pictures=40)
    at = data.index(b"\x00\x00\x01\xb8")  # user data after the first sequence header
    data = data[:at] + b"\x00\x00\x01\xb2" + b"\xff" * 20_000 + data[at:]
    events, error = feed_every_way(data, max_unit_size=10_000)
    assert error is None
    assert isinstance(events[1], UnitDropped)
    units = units_of(events)
    assert events[1].size + sum(len(u.payload) for u in units) == len(data)
    assert units[0].cut is not None  # delivery resumes at the next GOP's sequence header
    assert bytes(units[0].payload).startswith(b"\x00\x00\x01\xb3")
    assert len(units) == 40 - 16 - 2  # the first GOP is gone (two pictures still in the encoder)


def test_junk_bound_and_messages() -> None:
    events, error = feed(b"x" * 2000, "all", max_junk=1000)
    assert error == "no MPEG-2 sequence header, pack header or TS sync in 1000 bytes"
    assert events == []
    _, error = feed(b"hello", "all")
    assert error == "the body is not an MPEG-2 ES, PS or TS stream"
    assert feed(b"", "all") == ([], None)
    # Lost PS/TS sync drops a unit (tests/demux/test_mpeg2_resync.py) unless no sync
    # comes back within max_resync bytes.
    ps = bytearray(sim_stream("ps", False, pictures=5))
    ps[len(ps) // 2 : len(ps) // 2 + 70_000] = b"\x11" * 70_000
    events, error = feed_every_way(bytes(ps))
    assert error is None
    assert [e.reason for e in events if isinstance(e, UnitDropped)] == ["lost container sync"]
    _, error = feed_every_way(bytes(ps), max_resync=65536)
    assert error is not None
    assert error.startswith("program stream: no start code in 65536 bytes after lost sync at byte")
    ts = bytearray(sim_stream("ts", False, pictures=5))
    ts[188 * 7 : 188 * 7 + 1000] = b"\x48" * 1000
    _, error = feed_every_way(bytes(ts), max_resync=900)
    assert error == f"transport stream: no sync in 900 bytes after lost sync at byte {188 * 7}"


def test_api_misuse_is_a_local_error() -> None:
    indexer = Mpeg2Indexer()
    buf = indexer.get_buffer(10)
    with pytest.raises(LocalProtocolError):
        indexer.buffer_updated(len(buf) + 1)
    indexer.receive_eof()
    with pytest.raises(LocalProtocolError):
        indexer.receive_data(b"\x00")
    with pytest.raises(LocalProtocolError):
        Mpeg2Indexer(block_size=10)


def test_error_is_sticky() -> None:
    indexer = Mpeg2Indexer(max_junk=10)
    with pytest.raises(RemoteProtocolError):
        indexer.receive_data(b"z" * 100)
    with pytest.raises(RemoteProtocolError):
        indexer.receive_data(sim_stream("es", False, pictures=5))
