"""Helpers for the MPEG-2 indexer tests: streams, every-way feeding, decode checks."""

from __future__ import annotations

import functools
import io
import itertools
from typing import Any

import av
import numpy as np

from gateway.demux.mpeg2 import Event, Mpeg2Indexer, PictureType, UnitIndexed
from gateway.sim.mpeg2 import Mpeg2Producer
from tests.demux.feeding import feed_one

#: PyAV demuxer names per container.
DEMUXER = {"es": "mpegvideo", "ps": "mpeg", "ts": "mpegts"}
MODES = ("all", "bytewise", "random", "buffer-small", "buffer-large", "bytearray")
Modes = tuple[str, ...]

Outcome = tuple[list[Event], str | None]

SEQ = b"\x00\x00\x01\xb3"
GOP = b"\x00\x00\x01\xb8"


@functools.cache
def sim_stream(container: str, open_gop: bool, pictures: int = 40, size: int = 160) -> bytes:
    """Return the simulator's MPEG-2 output (size x size*3/4, 25 fps)."""
    producer = Mpeg2Producer(1, size, size * 3 // 4, 25, container=container, open_gop=open_gop)
    return b"".join(e.data for i in range(pictures) for e in producer.produce(i, i * 40_000_000))


@functools.cache
def ffmpeg_stream(
    muxer: str, open_gop: bool, pictures: int = 40, size: tuple[int, int] = (640, 480)
) -> bytes:
    """Return noisy MPEG-2 video muxed by FFmpeg (mpeg, vob, mpegts, mpeg2video).

    640x480 at 8 Mbit/s by default; smaller sizes get 200 kbit/s, so that several
    pictures share one 2 KiB pack.
    """
    width, height = size
    out = io.BytesIO()
    with av.open(out, "w", format=muxer) as container:
        stream = container.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        ctx = stream.codec_context
        ctx.gop_size, ctx.max_b_frames = 12, 2
        ctx.bit_rate = 8_000_000 if size == (640, 480) else 200_000
        ctx.options = {"sc_threshold": "1000000000"} | ({} if open_gop else {"flags": "+cgop"})
        rng = np.random.default_rng(7)
        for i in range(pictures):
            image = rng.integers(0, 64, (height, width, 3), dtype=np.uint8) + np.uint8(i * 3)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return out.getvalue()


def feed(data: bytes, mode: str, **limits: Any) -> Outcome:
    """Feed data to a fresh indexer in one way; return the events and any error message."""
    indexer = Mpeg2Indexer(**limits)
    events, error = feed_one(
        indexer, data, mode, max_piece=3000, small_hint=7, large_read=100_000, views=False
    )
    if error is None:
        assert indexer.bytes_received == len(data)
    return events, error


def normal(events: list[Event]) -> list[tuple[object, ...]]:
    """Return events with payloads as bytes, comparable across feeding modes."""
    out: list[tuple[object, ...]] = []
    for event in events:
        if isinstance(event, UnitIndexed):
            cut = event.cut
            join = (cut.closed_gop, cut.broken_link, bytes(cut.join)) if cut else None
            kind, tr = event.picture_type, event.temporal_reference
            timing = (event.pts, event.gop, event.frame_rate, event.format, event.continued)
            out.append(("unit", bytes(event.payload), kind, tr, join, event.leading, timing))
        else:
            out.append((event,))
    return out


def feed_every_way(data: bytes, modes: Modes = MODES, **limits: Any) -> Outcome:
    """Feed data every way; assert identical outcomes; return the all-at-once one."""
    reference = feed(data, "all", **limits)
    for mode in modes:
        events, error = feed(data, mode, **limits)
        assert error == reference[1], mode
        if error is None:
            assert normal(events) == normal(reference[0]), mode
    return reference


def units_of(events: list[Event]) -> list[UnitIndexed]:
    """Return the UnitIndexed events."""
    return [e for e in events if isinstance(e, UnitIndexed)]


def decode(data: bytes, demuxer: str) -> tuple[int, int]:
    """Return (pictures, decode errors) of data decoded by FFmpeg."""
    pictures = errors = 0
    try:
        with av.open(io.BytesIO(data), "r", format=demuxer) as container:
            for packet in container.demux(video=0):
                try:
                    pictures += len(packet.decode())
                except av.error.FFmpegError:
                    errors += 1
    except av.error.FFmpegError:
        errors += 1
    return pictures, errors


def joined(units: list[UnitIndexed], k: int, *, skip_leading: bool = True) -> bytes:
    """Return what a client starting at cut k receives: join, then later payloads."""
    cut = units[k].cut
    assert cut is not None
    rest = [bytes(u.payload) for u in units[k + 1 :] if not (skip_leading and u.leading)]
    return bytes(cut.join) + b"".join(rest)


def expected_pictures(units: list[UnitIndexed], k: int) -> int:
    """Return the pictures a client starting at cut k should see (leading ones skipped)."""
    return sum(u.pictures for u in units[k:] if not u.leading)


#: An MPEG-2 pack header (ISO/IEC 13818-1 §2.5.3.3): SCR 0, 10.08 Mbit/s, no stuffing.
PACK_HEADER = b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01\x01\x89\xc3\xf8"


def program_stream(es: bytes, bounds: list[int]) -> bytes:
    """Return es as a program stream: a pack and a PES packet without timestamps per piece.

    bounds are the elementary-stream offsets where a new PES packet begins.
    """
    edges = [0, *sorted(set(bounds) - {0, len(es)}), len(es)]
    out = bytearray()
    for a, b in itertools.pairwise(edges):
        out += PACK_HEADER + b"\x00\x00\x01\xe0" + (b - a + 3).to_bytes(2, "big") + b"\x80\x00\x00"
        out += es[a:b]
    return bytes(out + b"\x00\x00\x01\xb9")


def gop_pictures(data: bytes, demuxer: str) -> list[tuple[int, int, int]]:
    """Return (pictures, leading pictures, I-picture temporal_reference) per GOP.

    Read from the elementary stream FFmpeg's demuxer and parser hand out, independently
    of the indexer.
    """
    with av.open(io.BytesIO(data), "r", format=demuxer) as container:
        es = b"".join(bytes(p) for p in container.demux(video=0))
    gops: list[list[int]] = []  # [pictures, leading, I tr, open]
    at = es.find(b"\x00\x00\x01")
    while 0 <= at < len(es) - 6:
        code = es[at + 3]
        if code == 0xB8:
            gops.append([0, 0, -1, not es[at + 7] & 0x40])
        elif code == 0x00 and gops:
            gop = gops[-1]
            tr, kind = es[at + 4] << 2 | es[at + 5] >> 6, es[at + 5] >> 3 & 7
            if gop[2] < 0:
                gop[2] = tr
            gop[0] += 1
            gop[1] += bool(gop[3] and kind == 3 and tr < gop[2])
        at = es.find(b"\x00\x00\x01", at + 3)
    return [(n, lead, tr) for n, lead, tr, _ in gops]


def check_every_gop(data: bytes, units: list[UnitIndexed], demuxer: str) -> list[int]:
    """Check that every GOP is a cut point whose join decodes what it should; return the cuts.

    A client starting at GOP i gets every picture from there on except the leading
    B-pictures of GOP i (FFmpeg drops those it is sent) and the leading units after the
    next cut point (skipped: the client never gets them).
    """
    gops = gop_pictures(data, demuxer)
    cuts = [k for k, u in enumerate(units) if u.cut is not None]
    assert len(cuts) == len(gops)
    assert sum(u.pictures for u in units) == sum(n for n, _, _ in gops)
    for i, k in enumerate(cuts):
        assert units[k].picture_type is PictureType.I
        assert units[k].temporal_reference == gops[i][2]
        assert not units[k].leading
        later = cuts[i + 1] if i + 1 < len(cuts) else len(units)
        skipped = sum(u.pictures for u in units[later:] if u.leading)
        want = sum(n for n, _, _ in gops[i:]) - gops[i][1] - skipped
        assert decode(joined(units, k), demuxer) == (want, 0), (i, k)
    return cuts


def strip_repeats(es: bytes) -> bytes:
    """Remove every sequence header (and its extensions) after the first one."""
    first = es.index(SEQ)
    out, pos = bytearray(es[: first + 4]), first + 4
    while (at := es.find(SEQ, pos)) >= 0:
        gop = es.index(GOP, at)
        out += es[pos:at]
        pos = gop
    return bytes(out + es[pos:])
