"""MPEG-2 indexer: containers, units, cut points and joins, checked by decoding with PyAV."""

from __future__ import annotations

import pytest

from gateway.demux.mpeg2 import (
    ContainerFormat,
    FormatDetected,
    Mpeg2Indexer,
    PictureType,
    UnitIndexed,
)
from tests.demux.mpeg2_helpers import (
    DEMUXER,
    GOP,
    MODES,
    SEQ,
    Modes,
    decode,
    expected_pictures,
    feed_every_way,
    ffmpeg_stream,
    joined,
    sim_stream,
    strip_repeats,
    units_of,
)


def check_cuts(
    data: bytes, container: str, open_gop: bool, *, repeats: bool = False, modes: Modes = MODES
) -> list[UnitIndexed]:
    """Index data every way and decode from every cut point; return the units.

    repeats: the stream repeats every header at every GOP, so closed-GOP joins are the
    payload itself.
    """
    events, error = feed_every_way(data, modes)
    assert error is None
    assert events[0] == FormatDetected(ContainerFormat(container), 0)
    units = units_of(events)
    assert b"".join(bytes(u.payload) for u in units) == data  # byte identity
    cuts = [k for k, u in enumerate(units) if u.cut is not None]
    assert len(cuts) >= 3
    assert cuts[0] == 0
    for k in cuts:
        cut = units[k].cut
        assert cut is not None
        assert units[k].picture_type is PictureType.I
        if k:  # the encoder closes the first GOP of a stream either way
            assert cut.closed_gop is not open_gop
            if open_gop or repeats:
                assert (bytes(cut.join) != bytes(units[k].payload)) is open_gop
        pictures, errors = decode(joined(units, k), DEMUXER[container])
        assert (pictures, errors) == (expected_pictures(units, k), 0), k
    leading = [u for u in units if u.leading]
    assert bool(leading) is open_gop
    assert all(u.picture_type is PictureType.B for u in leading)
    return units


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed", "open"])
@pytest.mark.parametrize("container", ["es", "ps", "ts"])
def test_simulator_streams(container: str, open_gop: bool) -> None:
    units = check_cuts(sim_stream(container, open_gop), container, open_gop, repeats=True)
    # One unit per picture; every GOP of the simulator starts with a sequence header.
    assert [u.picture_type for u in units].count(PictureType.I) == 3
    for unit in units:
        if unit.cut is not None and not open_gop:
            assert unit.cut.join is unit.payload  # nothing to change: no copy


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed", "open"])
@pytest.mark.parametrize(
    ("muxer", "container"),
    [("mpeg2video", "es"), ("mpeg", "ps"), ("vob", "ps"), ("mpegts", "ts")],
)
def test_ffmpeg_muxers(muxer: str, container: str, open_gop: bool) -> None:
    # Large streams: one byte at a time is left to the simulator's smaller ones.
    modes = tuple(m for m in MODES if m not in ("bytewise", "buffer-small"))
    check_cuts(ffmpeg_stream(muxer, open_gop), container, open_gop, modes=modes)


@pytest.mark.parametrize("muxer", ["mpeg", "vob"])
def test_small_pictures_share_packs(muxer: str) -> None:
    """Several pictures per 2 KiB pack: merged units; the cut points there are join-safe."""
    data = ffmpeg_stream(muxer, False, pictures=60, size=(160, 120))
    events, error = feed_every_way(data, ("all", "random", "buffer-large"))
    assert error is None
    units = units_of(events)
    assert b"".join(bytes(u.payload) for u in units) == data
    assert len(units) < 60  # pictures that start in one PES packet share a unit
    cuts = [k for k, u in enumerate(units) if u.cut is not None]
    assert len(cuts) >= 2
    assert decode(joined(units, 0), "mpeg") == (60, 0)
    for k in cuts[1:]:
        pictures, errors = decode(joined(units, k), "mpeg")
        assert errors == 0, k
        assert pictures >= len(units) - k  # at least one picture per unit (closed GOPs)


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed", "open"])
def test_sequence_header_not_repeated(open_gop: bool) -> None:
    data = strip_repeats(sim_stream("es", open_gop))
    assert data.count(SEQ) == 1
    units = check_cuts(data, "es", open_gop)
    later = [u for u in units[1:] if u.cut is not None]
    header = bytes(units[0].payload[: bytes(units[0].payload).index(GOP)])
    for unit in later:
        assert unit.cut is not None
        assert bytes(unit.cut.join).startswith(header)
        assert len(unit.cut.join) == len(header) + len(unit.payload)


def test_open_gop_join_sets_broken_link() -> None:
    units = units_of(feed_every_way(sim_stream("ts", True))[0])
    unit = [u for u in units if u.cut is not None][1]
    assert unit.cut is not None
    payload, join = bytes(unit.payload), bytes(unit.cut.join)
    assert not unit.cut.broken_link
    at = payload.index(GOP) + 7
    assert payload[at] & 0x60 == 0x00
    assert join[at] & 0x60 == 0x20
    assert payload[:at] == join[:at]
    assert payload[at + 1 :] == join[at + 1 :]


@pytest.mark.parametrize("container", ["es", "ts"])
def test_control_leading_pictures_do_not_decode(container: str) -> None:
    """Without the leading flag a joining client is sent pictures FFmpeg cannot show."""
    units = units_of(feed_every_way(sim_stream(container, True))[0])
    k, end = [i for i, u in enumerate(units) if u.cut is not None][1:3]
    raw = bytes(units[k].payload) + b"".join(bytes(u.payload) for u in units[k + 1 :])
    pictures, errors = decode(raw, DEMUXER[container])
    # FFmpeg silently drops B-pictures whose forward reference it never had: exactly
    # the pictures the indexer marked leading.
    sent = sum(1 for u in units[k:] if u.picture_type is not None)
    assert errors == 0
    assert pictures == sent - sum(u.leading for u in units[k:end]) < sent


def test_ts_join_carries_pat_and_pmt_when_not_repeated() -> None:
    data = sim_stream("ts", False)
    # Drop the PAT/PMT the simulator repeats before later GOPs (keep the first pair).
    packets = [data[i : i + 188] for i in range(0, len(data), 188)]
    pids = [(p[1] & 0x1F) << 8 | p[2] for p in packets]
    keep = [p for i, p in enumerate(packets) if i < 2 or pids[i] not in (0, 0x1000)]
    units = check_cuts(b"".join(keep), "ts", False)
    later = [u for u in units[1:] if u.cut is not None]
    for unit in later:
        assert unit.cut is not None
        join = bytes(unit.cut.join)
        assert join[:188] == keep[0]
        assert join[188:376] == keep[1]
        assert join[376:] == bytes(unit.payload)


def test_junk_before_the_stream_is_skipped() -> None:
    data = sim_stream("ps", False)
    events, error = feed_every_way(b"\x47junk\x00\x00\x01" * 50 + data)
    assert error is None
    assert events[0] == FormatDetected(ContainerFormat.PS, 400)
    assert b"".join(bytes(u.payload) for u in units_of(events)) == data


def test_views_are_zero_copy_in_one_block() -> None:
    data = sim_stream("es", False)
    indexer = Mpeg2Indexer(block_size=1 << 20)
    buf = indexer.get_buffer(-1)
    buf[: len(data)] = data
    units = units_of(indexer.buffer_updated(len(data)) + indexer.receive_eof())
    assert indexer.bytes_copied == 0
    assert all(isinstance(u.payload, memoryview) and u.payload.readonly for u in units)
    with pytest.raises(TypeError):
        units[0].payload[0] = 1  # type: ignore[index]


def test_each_byte_copied_at_most_once_across_blocks() -> None:
    data = sim_stream("ts", False) * 3
    indexer = Mpeg2Indexer(block_size=8192)
    i, units = 0, []
    while i < len(data):
        buf = indexer.get_buffer(-1)
        n = min(len(buf), len(data) - i)
        buf[:n] = data[i : i + n]
        units += units_of(indexer.buffer_updated(n))
        i += n
    units += units_of(indexer.receive_eof())
    assert b"".join(bytes(u.payload) for u in units) == data
    spanning = sum(len(u.payload) for u in units if isinstance(u.payload, bytes))
    assert 0 < indexer.bytes_copied == spanning <= len(data)
    assert indexer.units == len(units)
