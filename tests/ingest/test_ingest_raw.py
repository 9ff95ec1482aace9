"""RawConsumer (zero-copy unframed bodies) and the per-kind tables."""

from __future__ import annotations

import random

import pytest

from gateway.demux.codec import CODEC_NAMES, codec_name
from gateway.errors import LocalProtocolError
from gateway.ingest.kinds import ACCEPT_HEADERS, STREAM_PATHS
from gateway.ingest.raw import RawConsumer, RawReceived
from gateway.media import StreamKind

STREAM = (b"\x00\x00\x01\xb3" + b"\x10" * 8 + (b"\x00\x00\x01\x00" + b"\x22" * 37) * 50) * 3


def read_all(consumer: RawConsumer, data: bytes, seed: int) -> list[RawReceived]:
    rng = random.Random(seed)
    events: list[RawReceived] = []
    while data:
        buf = consumer.get_buffer(rng.randint(1, 300))
        n = min(len(buf), len(data))
        buf[:n] = data[:n]
        events += consumer.buffer_updated(n)
        data = data[n:]
    return events


@pytest.mark.parametrize("seed", range(5))
def test_reads_land_in_place(seed: int) -> None:
    consumer = RawConsumer("video/mpeg", block_size=1024)
    events = read_all(consumer, STREAM, seed)
    assert b"".join(bytes(e.payload) for e in events) == STREAM
    assert consumer.bytes_copied == 0
    assert all(isinstance(e.payload, memoryview) and e.payload.readonly for e in events)


def test_views_stay_valid_after_the_block_fills() -> None:
    consumer = RawConsumer("video/mpeg", block_size=512)
    events = read_all(consumer, STREAM, 1)
    assert bytes(events[0].payload) == STREAM[: len(events[0].payload)]


def test_receive_data_copies_once() -> None:
    consumer = RawConsumer("video/mpeg")
    events = consumer.receive_data(STREAM[:100]) + consumer.receive_data(STREAM[100:])
    assert b"".join(bytes(e.payload) for e in events) == STREAM
    assert consumer.bytes_copied == len(STREAM)
    assert consumer.receive_data(b"") == []
    assert consumer.receive_eof() == []


def test_buffer_updated_beyond_the_buffer_is_a_local_error() -> None:
    consumer = RawConsumer("audio/basic", block_size=1024)
    buf = consumer.get_buffer(10)
    with pytest.raises(LocalProtocolError):
        consumer.buffer_updated(len(buf) + 2000)


@pytest.mark.parametrize(("content_type", "name"), list(CODEC_NAMES.items()))
def test_every_codec_name(content_type: str, name: str) -> None:
    assert codec_name(content_type.upper() + "; x=1") == name


@pytest.mark.parametrize("kind", list(StreamKind))
def test_every_kind_has_a_path_and_accept_header(kind: StreamKind) -> None:
    assert STREAM_PATHS[kind].startswith("/axis-cgi/")
    assert ACCEPT_HEADERS[kind]
