"""PictureReader: indexed MPEG-2 units (ES, PS, TS) in, whole elementary-stream pictures out."""

from __future__ import annotations

import functools
import io
import itertools
import random
import time
from collections.abc import Callable

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.demux.mpeg2 import ContainerFormat, PictureType, UnitIndexed
from gateway.demux.mpeg2_es import Picture, PictureReader
from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.sim.mpeg2 import PMT_PID, VIDEO_PID, TsPacketizer, psi_tables
from tests.demux.mpeg2_helpers import (
    DEMUXER,
    feed,
    ffmpeg_stream,
    program_stream,
    sim_stream,
    units_of,
)

PICTURE_START = b"\x00\x00\x01\x00"
TS = 188
#: (name, stream, FFmpeg demuxer): FFmpeg's muxers (2 KiB packs that split pictures, and
#: at 160x120 several pictures per PES packet), and the simulator's one PES per picture.
STREAMS: dict[str, tuple[Callable[[], bytes], str]] = {
    "mpeg": (lambda: ffmpeg_stream("mpeg", False), "mpeg"),
    "vob-open": (lambda: ffmpeg_stream("vob", True), "mpeg"),
    "mpeg-small": (lambda: ffmpeg_stream("mpeg", False, 40, (160, 120)), "mpeg"),
    "vob-small-open": (lambda: ffmpeg_stream("vob", True, 40, (160, 120)), "mpeg"),
    "mpegts": (lambda: ffmpeg_stream("mpegts", False), "mpegts"),
    "mpegts-small-open": (lambda: ffmpeg_stream("mpegts", True, 40, (160, 120)), "mpegts"),
    "mpeg2video": (lambda: ffmpeg_stream("mpeg2video", False), "mpegvideo"),
    "sim-es": (lambda: sim_stream("es", True), "mpegvideo"),
    "sim-ps": (lambda: sim_stream("ps", False), "mpeg"),
    "sim-ts": (lambda: sim_stream("ts", True), "mpegts"),
}


@functools.cache
def with_audio(muxer: str, pictures: int = 20) -> bytes:
    """Return MPEG-2 video and MP2 audio muxed by FFmpeg (PS: with padding, system headers)."""
    out = io.BytesIO()
    with av.open(out, "w", format=muxer) as container:
        video = container.add_stream("mpeg2video", rate=25)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        video.codec_context.gop_size, video.codec_context.max_b_frames = 12, 2
        video.codec_context.bit_rate = 400_000
        audio = container.add_stream("mp2", rate=48000)
        audio.layout = "mono"
        rng = np.random.default_rng(3)
        for i in range(pictures):
            image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
            samples = rng.integers(-3000, 3000, (1, 1920)).astype(np.int16)
            sound = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            sound.sample_rate, sound.pts = 48000, i * 1920
            container.mux(audio.encode(sound))
        container.mux(video.encode())
        container.mux(audio.encode())
    return out.getvalue()


def ffmpeg_pictures(data: bytes, demuxer: str) -> list[bytes]:
    """Return the pictures FFmpeg's demuxer and parser cut from data (the reference)."""
    with av.open(io.BytesIO(data), "r", format=demuxer) as container:
        return [bytes(packet) for packet in container.demux(video=0) if packet.size]


def indexed(data: bytes) -> list[UnitIndexed]:
    """Return the indexer's units of data."""
    events, error = feed(data, "all")
    assert error is None
    return units_of(events)


def read(units: list[UnitIndexed], reader: PictureReader | None = None) -> list[Picture]:
    """Feed units as the encode does; return every picture, the held one flushed."""
    reader = reader or PictureReader(units[0].format)
    pictures: list[Picture] = []
    for unit in units:
        pictures += reader.feed(unit.payload, continued=unit.continued)
    return pictures + reader.flush()


@pytest.mark.parametrize("name", STREAMS)
def test_pictures_are_ffmpegs_one_by_one(name: str) -> None:
    make, demuxer = STREAMS[name]
    data = make()
    units = indexed(data)
    pictures = read(units)
    assert [p.data for p in pictures] == ffmpeg_pictures(data, demuxer)
    assert all(p.data.count(PICTURE_START) == 1 for p in pictures)
    assert len(pictures) == sum(u.pictures for u in units)
    assert pictures[0].gop
    assert pictures[0].picture_type is PictureType.I


def test_the_streams_hold_what_the_reader_must_handle() -> None:
    """FFmpeg's packs split pictures and hold several; TS and the simulator do neither."""
    for name, continued, merged in [
        ("mpeg", True, False),
        ("mpeg-small", True, True),
        ("mpegts", False, False),
        ("sim-ps", False, False),
    ]:
        units = indexed(STREAMS[name][0]())
        assert any(u.continued for u in units) is continued, name
        assert any(u.pictures > 1 for u in units) is merged, name


@pytest.mark.parametrize("name", ["mpeg", "mpeg-small", "vob-small-open", "mpegts", "sim-ps"])
def test_each_unit_hands_out_what_it_completes_at_once(name: str) -> None:
    # Pictures wait for the next unit only when the indexer says they go on there.
    units = indexed(STREAMS[name][0]())
    reader = PictureReader(units[0].format)
    out = begun = 0
    for k, unit in enumerate(units):
        pictures = reader.feed(unit.payload, continued=unit.continued)
        assert all(p.unit in (k - 1, k) for p in pictures)
        out += len(pictures)
        begun += unit.pictures
        assert out == begun - unit.continued
    assert reader.units == len(units)
    assert reader.pictures == out
    assert reader.bytes_dropped == 0


def test_index_and_unit_number_the_pictures_of_merged_units() -> None:
    units = indexed(STREAMS["mpeg-small"][0]())
    pictures = read(units)
    expected = [(k, i) for k, unit in enumerate(units) for i in range(unit.pictures)]
    assert [(p.unit, p.index) for p in pictures] == expected
    firsts = {p.unit: p for p in pictures if p.index == 0}
    for k, unit in enumerate(units):
        if unit.pictures and unit.cut is None:  # a cut point describes its I-picture
            assert firsts[k].temporal_reference == unit.temporal_reference


@pytest.mark.parametrize("muxer", ["mpeg", "vob", "mpegts"])
def test_other_streams_padding_and_tables_are_left_out(muxer: str) -> None:
    data = with_audio(muxer)
    units = indexed(data)
    pictures = read(units)
    demuxer = DEMUXER["ts" if muxer == "mpegts" else "ps"]
    assert [p.data for p in pictures] == ffmpeg_pictures(data, demuxer)
    assert len(pictures) == 20


def packet_splits(data: bytes, container: ContainerFormat, seed: int) -> list[bytes]:
    """Return data cut at random packet boundaries (anywhere in an elementary stream)."""
    rng = random.Random(seed)
    if container is ContainerFormat.TS:
        bounds = sorted(rng.sample(range(TS, len(data), TS), len(data) // TS // 3))
    elif container is ContainerFormat.PS:
        starts = [i for i in range(len(data)) if data.startswith(b"\x00\x00\x01\xba", i)]
        bounds = sorted(rng.sample(starts[1:], len(starts) // 2))
    else:
        bounds = sorted(rng.sample(range(1, len(data)), len(data) // 500))
    edges = [0, *bounds, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def read_pieces(container: ContainerFormat, pieces: list[bytes]) -> list[bytes]:
    """Feed pieces as units that each go on in the next; return the pictures."""
    reader = PictureReader(container)
    pictures: list[Picture] = []
    for piece in pieces:
        pictures += reader.feed(memoryview(piece), continued=True)
    return [p.data for p in pictures + reader.flush()]


SPLIT = ["mpeg-small", "vob-open", "mpegts-small-open", "sim-es", "sim-ps", "sim-ts"]


@pytest.mark.parametrize("name", SPLIT)
@pytest.mark.parametrize("mode", ["all", "random"])
def test_any_split_on_packet_boundaries_gives_the_same_pictures(name: str, mode: str) -> None:
    # Held pictures carry over any number of units when every unit says "continued".
    make, demuxer = STREAMS[name]
    data = make()
    container = indexed(data)[0].format
    pieces = [data] if mode == "all" else packet_splits(data, container, seed=len(data))
    assert read_pieces(container, pieces) == ffmpeg_pictures(data, demuxer)


@pytest.mark.parametrize("name", ["sim-es", "mpeg2video"])
def test_elementary_stream_byte_by_byte(name: str) -> None:
    make, demuxer = STREAMS[name]
    data = make()
    pieces = [data[i : i + 1] for i in range(len(data))]
    assert read_pieces(ContainerFormat.ES, pieces) == ffmpeg_pictures(data, demuxer)


def test_program_stream_pictures_split_anywhere_in_pes_packets() -> None:
    es = ffmpeg_stream("mpeg2video", False, 12, (160, 120))
    starts = [i for i in range(len(es)) if es.startswith(PICTURE_START, i)]
    # PES packets that end in the middle of pictures, and hold two picture starts.
    bounds = [s + 7 for s in starts[1::2]] + [len(es) // 3]
    units = indexed(program_stream(es, bounds))
    assert any(u.continued for u in units)
    assert any(u.pictures > 1 for u in units)
    pictures = read(units)
    assert b"".join(p.data for p in pictures) == es
    assert len(pictures) == len(starts)


def test_continued_marks_units_whose_picture_ends_in_the_next_packet() -> None:
    es = ffmpeg_stream("mpeg2video", False, 6, (160, 120))
    sizes = [len(p) for p in ffmpeg_pictures(es, "mpegvideo")]
    starts = list(itertools.accumulate(sizes[:-1], initial=0))
    # PES packets from picture 1 on; those of pictures 2 and 4 begin a few bytes early.
    bounds = [starts[1], starts[2] - 5, starts[3], starts[4] - 1, starts[5]]
    units = indexed(program_stream(es, bounds))
    assert [u.continued for u in units] == [False, True, False, True, False, False]
    assert [u.format for u in units] == [ContainerFormat.PS] * 6
    assert not any(u.continued for u in indexed(es))
    assert b"".join(p.data for p in read(units)) == es


def test_tail_of_a_picture_never_read_is_dropped() -> None:
    units = indexed(STREAMS["mpeg"][0]())
    start = next(k for k, u in enumerate(units) if k and units[k - 1].continued and u.cut)
    reader = PictureReader(ContainerFormat.PS)
    pictures = read(units[start:], reader)
    assert pictures[0].gop
    assert pictures[0].picture_type is PictureType.I
    assert reader.bytes_dropped > 0


def test_transport_stream_waits_for_its_tables() -> None:
    units = indexed(STREAMS["sim-ts"][0]())
    second_gop = next(k for k, u in enumerate(units) if k and u.cut)
    reader = PictureReader(ContainerFormat.TS)
    assert [reader.feed(u.payload) for u in units[1:second_gop]] == [[]] * (second_gop - 1)
    assert len(read(units[second_gop:], reader)) == sum(u.pictures for u in units[second_gop:])


def test_frame_rate_from_the_sequence_header() -> None:
    reader = PictureReader(ContainerFormat.PS)
    assert reader.frame_rate is None
    reader.feed(indexed(STREAMS["sim-ps"][0]())[0].payload)
    assert reader.frame_rate == 25


# -- hostile input ---------------------------------------------------------------------


def test_lost_sync_is_an_error_and_the_reader_starts_over() -> None:
    units = indexed(STREAMS["sim-ts"][0]())
    reader = PictureReader(ContainerFormat.TS)
    reader.feed(units[0].payload)
    broken = b"\x00" + bytes(units[1].payload)[1:]
    with pytest.raises(RemoteProtocolError, match="transport stream unit: no packet at byte"):
        reader.feed(broken)
    assert len(read(units, reader)) == sum(u.pictures for u in units)
    with pytest.raises(RemoteProtocolError, match="program stream unit: no packet at byte 0"):
        PictureReader(ContainerFormat.PS).feed(b"\x00\x00\x02garbage")


def test_pictures_are_bounded() -> None:
    units = indexed(STREAMS["mpeg"][0]())
    reader = PictureReader(ContainerFormat.PS, max_picture_size=4096)
    with pytest.raises(RemoteProtocolError, match="MPEG-2 picture longer than 4096 bytes"):
        read(units, reader)
    with pytest.raises(LocalProtocolError):
        PictureReader(ContainerFormat.ES, max_picture_size=0)


PIECES = [
    b"\x00\x00\x01\xb3",
    b"\x00\x00\x01\xb8\x00\x08\x00\x40",
    b"\x00\x00\x01\x00\x00\x0f",
    b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01\x01\x89\xc3\xf8",
    b"\x00\x00\x01\xe0\x00\x10\x80\x00\x00",
    b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05\x21\x00\x01\x00\x01",
    b"\x47\x40\x00\x10\x00\x00\xb0\x0d\x00\x01\xc1\x00\x00\x00\x01\xf0\x00",
    b"\x47\x41\x00\x30\x07",
    b"\x00",
    b"\xff",
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(list(ContainerFormat)),
    st.lists(
        st.tuples(
            st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=40)), max_size=20).map(
                b"".join
            ),
            st.booleans(),
        ),
        max_size=8,
    ),
)
def test_any_units_read_or_raise_remote_protocol_error(
    container: ContainerFormat, units: list[tuple[bytes, bool]]
) -> None:
    reader = PictureReader(container, max_picture_size=2000)
    for data, continued in units:
        try:
            pictures = reader.feed(data, continued=continued)
        except RemoteProtocolError:
            continue
        assert all(p.data.count(PICTURE_START) >= 1 for p in pictures)
    reader.flush()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.binary(min_size=1, max_size=64), st.sampled_from(["ps", "ts"]))
def test_corrupted_units_read_or_raise(at: int, garbage: bytes, container: str) -> None:
    units = indexed(sim_stream(container, True, pictures=20))
    payloads = [bytearray(u.payload) for u in units]
    damaged = payloads[at % len(payloads)]
    pos = at % len(damaged)
    damaged[pos : pos + len(garbage)] = garbage
    reader = PictureReader(units[0].format)
    for payload, unit in zip(payloads, units, strict=True):
        try:
            reader.feed(payload, continued=unit.continued)
        except RemoteProtocolError:
            pass


@pytest.mark.parametrize("container", list(ContainerFormat))
@pytest.mark.parametrize("pattern", [b"\x00", b"\x00\x00\x01", b"\x00\x00\x01\x00\x00\x08"])
def test_adversarial_units_are_linear(container: ContainerFormat, pattern: bytes) -> None:
    times = []
    for size in (1 << 18, 1 << 20):
        body = pattern * (size // len(pattern))
        if container is ContainerFormat.PS:
            unit = program_stream(body, list(range(60_000, len(body), 60_000)))
        elif container is ContainerFormat.TS:
            ts, (pat, pmt) = TsPacketizer(), psi_tables()
            pes = b"\x00\x00\x01\xe0\x00\x00\x80\x00\x00" + body
            unit = ts.psi(0, pat) + ts.psi(PMT_PID, pmt) + ts.packets(VIDEO_PID, pes)
        else:
            unit = body
        best = float("inf")
        for _ in range(3):  # this thread's CPU time, the least of 3: load cannot inflate it
            reader = PictureReader(container, max_picture_size=4 << 20)
            start = time.thread_time()
            try:
                reader.feed(unit)
            except RemoteProtocolError:
                pass
            best = min(best, time.thread_time() - start)
        times.append(best)
    assert times[1] < 12 * times[0] + 0.05
