"""MPEG-2 indexer: a GOP that starts in a PES packet after whole pictures is a cut point.

FFmpeg's ``mpeg``/``vob`` muxers fill 2 KiB packs, so with small pictures a GOP's
sequence header, GOP header and I-picture start in a PES packet that also holds whole
pictures of the previous GOP. The unit keeps the camera's bytes; its join re-packs that
PES packet from the GOP's headers on.
"""

from __future__ import annotations

import time

import pytest

from gateway.demux.mpeg2 import UnitIndexed
from tests.demux.mpeg2_helpers import (
    GOP,
    SEQ,
    check_every_gop,
    feed_every_way,
    ffmpeg_stream,
    program_stream,
    strip_repeats,
    units_of,
)

PICTURE = b"\x00\x00\x01\x00"
PACK = b"\x00\x00\x01\xba"
VIDEO = b"\x00\x00\x01\xe0"
MODES = ("all", "random", "buffer-small", "buffer-large", "bytearray")


def index(data: bytes) -> list[UnitIndexed]:
    """Index data every way; check byte identity; return the units."""
    events, error = feed_every_way(data, MODES)
    assert error is None
    units = units_of(events)
    assert b"".join(bytes(u.payload) for u in units) == data
    return units


def repacked(unit: UnitIndexed) -> bool:
    """Say whether a cut unit holds a picture before its GOP's headers."""
    payload = bytes(unit.payload)
    return unit.cut is not None and 0 <= payload.find(PICTURE) < payload.find(GOP)


def check_repacked(unit: UnitIndexed, open_gop: bool) -> None:
    """Check a re-packed join: [pack] + what precedes the PES packet + new PES + rest."""
    assert unit.cut is not None
    payload, join = bytes(unit.payload), bytes(unit.cut.join)
    packet = payload.index(VIDEO)
    end = packet + 6 + int.from_bytes(payload[packet + 4 : packet + 6], "big")
    start = payload.find(SEQ, packet)
    start = start if 0 <= start < payload.index(GOP) else payload.index(GOP)
    tail = bytearray(payload[start:])
    if open_gop:
        tail[tail.index(GOP) + 7] |= 0x20  # broken_link
    assert join.endswith(tail)
    head = join[: len(join) - len(tail)]
    mpeg1 = payload[packet + 6] >> 6 != 0b10
    size = 7 if mpeg1 else 9  # start code, length and flags: no PTS/DTS
    pes = head[-size:]
    assert pes[:4] == VIDEO
    assert int.from_bytes(pes[4:6], "big") == size - 6 + end - start
    assert pes[6:] == (b"\x0f" if mpeg1 else b"\x80\x00\x00")
    before = head[:-size]
    assert before.startswith(PACK)
    assert before.endswith(payload[:packet])
    assert before == payload[:packet] or not payload.startswith(PACK)


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed", "open"])
@pytest.mark.parametrize("muxer", ["mpeg", "vob"])
def test_small_pictures_every_gop_is_a_cut_point(muxer: str, open_gop: bool) -> None:
    data = ffmpeg_stream(muxer, open_gop, pictures=60, size=(160, 120))
    units = index(data)
    assert len(units) < 60  # pictures that start in one PES packet share a unit
    cuts = check_every_gop(data, units, "mpeg")
    assert len(cuts) == data.count(GOP)
    merged = [k for k in cuts if repacked(units[k])]
    assert len(merged) >= 2
    for k in merged:
        unit = units[k]
        assert unit.pictures > 1
        check_repacked(unit, open_gop)
    if open_gop:  # leading B-pictures of the GOP inside the join: broken_link, dropped
        assert any(bytes(units[k].payload).count(PICTURE) > 2 for k in merged)


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed", "open"])
@pytest.mark.parametrize("repeated", [True, False], ids=["repeated", "once"])
def test_gop_after_pictures_without_repeated_sequence_header(
    repeated: bool, open_gop: bool
) -> None:
    """Re-packed joins carry the remembered sequence header when the camera sends it once."""
    es = ffmpeg_stream("mpeg2video", open_gop, pictures=60, size=(160, 120))
    es = es if repeated else strip_repeats(es)
    data = program_stream(es, list(range(0, len(es), 2000)))
    units = index(data)
    check_every_gop(data, units, "mpeg")
    merged = [u for u in units if repacked(u)]
    assert len(merged) >= 2
    for unit in merged:
        assert unit.cut is not None
        join = bytes(unit.cut.join)
        assert join.count(SEQ) == 1
        assert join.index(SEQ) < join.index(GOP) < join.index(PICTURE)


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed", "open"])
@pytest.mark.parametrize("repeated", [True, False], ids=["repeated", "once"])
def test_gop_header_ends_a_packet(repeated: bool, open_gop: bool) -> None:
    """An I-picture whose GOP header ended the previous unit: the join carries a copy."""
    es = ffmpeg_stream("mpeg2video", open_gop, pictures=60, size=(160, 120))
    es = es if repeated else strip_repeats(es)
    gops = [i for i in range(len(es)) if es.startswith(GOP, i)]
    data = program_stream(es, [*range(0, len(es), 2000), *(g + 8 for g in gops)])
    units = index(data)
    check_every_gop(data, units, "mpeg")
    copies = [u for u in units if u.cut is not None and GOP not in bytes(u.payload)]
    assert len(copies) >= 2
    for unit in copies:
        assert unit.cut is not None
        join = bytes(unit.cut.join)
        header = join[join.index(GOP) : join.index(GOP) + 8]
        assert header[7] & 0x20 == (0x20 if open_gop else 0)
        assert join.index(SEQ) < join.index(GOP) < join.index(PICTURE)
        assert join.endswith(bytes(unit.payload))


def test_repacking_is_linear() -> None:
    """Many GOPs of one tiny picture each, in 2 KiB packets: the time grows linearly."""
    es = ffmpeg_stream("mpeg2video", False, pictures=60, size=(160, 120))
    es = strip_repeats(es)
    times = []
    for copies in (20, 80):
        data = program_stream(es * copies, list(range(0, len(es) * copies, 2000)))
        # This thread's CPU time: the work done, not how busy the machine is.
        start = time.thread_time()
        units = units_of(feed_every_way(data, ("all",))[0])
        times.append(time.thread_time() - start)
        assert sum(u.cut is not None for u in units) == copies * es.count(GOP)
    assert times[1] < times[0] * 4 * 3
