"""MPEG-2 indexer: lost PS/TS sync drops the damaged unit, not the stream."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from gateway.demux.mpeg2 import Mpeg2Indexer, UnitDropped, UnitIndexed
from tests.demux.mpeg2_helpers import (
    DEMUXER,
    decode,
    expected_pictures,
    feed,
    feed_every_way,
    joined,
    sim_stream,
    units_of,
)

LOST_SYNC = "lost container sync"
MODES = ("all", "bytewise", "random", "buffer-small", "bytearray")
JUNK = b"\x11" * 777


def middle_pack(data: bytes) -> int:
    """Return the offset of a pack start code near the middle of a program stream."""
    return data.index(b"\x00\x00\x01\xba", len(data) // 2)


def middle_video_pes(data: bytes, container: str) -> int:
    """Return the offset of a video PES start code near the middle of the stream."""
    if container == "ps":
        return data.index(b"\x00\x00\x01\xe0", len(data) // 2)
    at = len(data) // 2 // 188 * 188
    while data[at + 1 : at + 3] != b"\x41\x00":  # payload_unit_start, the video PID 0x100
        at += 188
    control = data[at + 3] >> 4 & 3
    return at + 4 + (1 + data[at + 4] if control & 2 else 0)


def damage_sync(data: bytes, container: str) -> tuple[bytes, int]:
    """Break a sync byte (TS) or pack start code (PS) in the middle."""
    at = len(data) // 2 // 188 * 188 if container == "ts" else middle_pack(data) + 2
    return data[:at] + b"\x48" + data[at + 1 :], at


def damage_pes(data: bytes, container: str) -> tuple[bytes, int]:
    """Break the start code prefix of a video PES header in the middle."""
    at = middle_video_pes(data, container) + 1
    return data[:at] + b"\xff" + data[at + 1 :], at


def insert_junk(data: bytes, container: str) -> tuple[bytes, int]:
    """Insert junk in the middle of a packet."""
    at = len(data) // 2 + 5
    return data[:at] + JUNK + data[at:], at


def cut_bytes(data: bytes, container: str) -> tuple[bytes, int]:
    """Remove 100 bytes from the middle of the stream."""
    at = len(data) // 2 + 50
    return data[:at] + data[at + 100 :], at


DAMAGE: dict[str, Callable[[bytes, str], tuple[bytes, int]]] = {
    "sync": damage_sync,
    "pes": damage_pes,
    "junk": insert_junk,
    "cut": cut_bytes,
}


def starts(units: list[UnitIndexed]) -> list[int]:
    """Return each unit's input offset."""
    out, at = [], 0
    for unit in units:
        out.append(at)
        at += len(unit.payload)
    return out


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("open_gop", [False, True], ids=["closed", "open"])
@pytest.mark.parametrize("container", ["ps", "ts"])
def test_lost_sync_drops_only_the_damaged_unit(container: str, open_gop: bool, damage: str) -> None:
    clean = sim_stream(container, open_gop)
    ref = units_of(feed(clean, "all")[0])
    data, at = DAMAGE[damage](clean, container)
    events, error = feed_every_way(data, MODES)
    assert error is None
    dropped = [e for e in events if isinstance(e, UnitDropped)]
    assert [d.reason for d in dropped] == [LOST_SYNC]
    units = units_of(events)
    # Byte accounting: everything is delivered or dropped.
    assert sum(len(u.payload) for u in units) + dropped[0].size == len(data)
    # The output is the clean units minus one or two in a row (the one being read, and
    # the next when its first start code was in the damaged packet); the unit after them
    # loses the damaged packet header in front of it, if there was one.
    payloads, clean_payloads = [bytes(u.payload) for u in units], [bytes(u.payload) for u in ref]
    a = next(k for k, (x, y) in enumerate(zip(payloads, clean_payloads, strict=False)) if x != y)
    b = a + len(ref) - len(units)
    assert 1 <= b - a <= 2
    trim = len(clean_payloads[b]) - len(payloads[a])
    assert 0 <= trim <= 32
    assert clean_payloads[b].endswith(payloads[a])
    assert payloads[a + 1 :] == clean_payloads[b + 1 :]
    assert events.index(dropped[0]) == 1 + a  # FormatDetected, the units before, the drop
    offsets = starts(ref)
    assert offsets[a] <= at < offsets[b] + trim  # the damage is inside what was dropped
    # Every later cut point still joins cleanly.
    later = [k for k in range(a, len(units)) if units[k].cut is not None]
    assert later
    for k in later:
        pictures, errors = decode(joined(units, k), DEMUXER[container])
        assert (pictures, errors) == (expected_pictures(units, k), 0), k


@pytest.mark.parametrize("container", ["ps", "ts"])
def test_resync_is_counted_and_later_units_keep_their_flags(container: str) -> None:
    clean = sim_stream(container, True)
    data, _ = insert_junk(clean, container)
    indexer = Mpeg2Indexer()
    events = indexer.receive_data(data) + indexer.receive_eof()
    ref = units_of(feed(clean, "all")[0])
    units = units_of(events)
    assert indexer.units_dropped == 1
    assert indexer.units == len(units) == len(ref) - 1
    tail = [(u.picture_type, u.temporal_reference, u.leading, u.cut is None) for u in units[-15:]]
    assert tail == [
        (u.picture_type, u.temporal_reference, u.leading, u.cut is None) for u in ref[-15:]
    ]


@pytest.mark.parametrize("container", ["ps", "ts"])
def test_resync_bound(container: str) -> None:
    clean = sim_stream(container, False)
    at = middle_pack(clean) if container == "ps" else len(clean) // 2 // 188 * 188
    data = clean[:at] + b"\x11" * 5000 + clean[at:]
    events, error = feed_every_way(data, MODES, max_resync=6000)
    assert error is None
    assert [e.reason for e in events if isinstance(e, UnitDropped)] == [LOST_SYNC]
    _, error = feed_every_way(data, MODES, max_resync=4000)
    kind = "transport stream: no sync" if container == "ts" else "program stream: no start code"
    assert error == f"{kind} in 4000 bytes after lost sync at byte {at}"


@pytest.mark.parametrize("container", ["ps", "ts"])
def test_junk_to_the_end_is_dropped(container: str) -> None:
    clean = sim_stream(container, False, pictures=10)
    events, error = feed_every_way(clean + b"\x11" * 3000, MODES)
    assert error is None
    assert isinstance(events[-1], UnitDropped)
    assert events[-1].reason == LOST_SYNC
    assert sum(len(u.payload) for u in units_of(events)) + events[-1].size == len(clean) + 3000


@pytest.mark.parametrize(
    ("container", "pattern"),
    [
        ("ts", b"\x11"),
        ("ts", b"\x47" + b"\x11" * 188),  # a candidate every 189 bytes: never in line
        ("ts", (b"\x47" + b"\x00" * 187) * 3 + b"\x11"),  # resyncs, then loses sync again
        ("ps", b"\x00\x00\x01\xe1"),  # start codes of a stream never seen
        ("ps", b"\x00\x00\x01\xe0"),  # the video stream's, with PES length 0: lost again
        ("ps", b"\x00\x00\x01\xba"),  # pack start codes with a bad pack header
    ],
)
def test_adversarial_resync_is_linear_and_bounded(container: str, pattern: bytes) -> None:
    head = sim_stream(container, False, pictures=3)
    times = []
    for size in (1 << 19, 2 << 20):
        data = head + pattern * (size // len(pattern))
        indexer = Mpeg2Indexer(max_unit_size=1 << 20, max_resync=8 << 20, block_size=1 << 16)
        # This thread's CPU time: the work done, not how busy the machine is.
        start = time.thread_time()
        i = 0
        while i < len(data):
            buf = indexer.get_buffer(-1)
            n = min(len(buf), len(data) - i)
            buf[:n] = data[i : i + n]
            indexer.buffer_updated(n)
            i += n
            assert indexer._input.kept() <= (1 << 20) + 3 * (1 << 16)
        events = indexer.receive_eof()
        times.append(time.thread_time() - start)
        assert [e.reason for e in events if isinstance(e, UnitDropped)] == [LOST_SYNC]
    assert times[1] < 8 * times[0] + 0.5  # 4x the input: about 4x the time
