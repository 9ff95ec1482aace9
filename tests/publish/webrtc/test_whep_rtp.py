"""RTP payloads of the shared encode (``webrtc.rtp``), read back by an RFC 6184 depacketizer.

The depacketizer here is the receiver's side written from the RFC: single NAL unit
packets (types 1-23), STAP-A (24) and FU-A (28) in packetization-mode 1; whatever
``h264_payloads`` makes must give back exactly the access unit's NAL units, in order,
in packets no larger than ``MAX_PAYLOAD``. ``PreparedFrames`` makes each frame's
payloads once however many sessions ask.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.media import CutPoint, Frame
from gateway.mux.h264 import split_annexb
from gateway.publish.webrtc.rtp import (
    FU_A,
    MAX_PAYLOAD,
    STAP_A,
    PreparedFrames,
    h264_payloads,
    opus_payloads,
)
from tests.mux.encoded import encode_video

START = b"\x00\x00\x00\x01"


def depacketize(payloads: list[bytes]) -> list[bytes]:
    """Return the NAL units of one access unit's RTP payloads (RFC 6184 §5.6-5.8)."""
    nals: list[bytes] = []
    fragment: bytearray | None = None
    for payload in payloads:
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            assert fragment is None, "a NAL unit inside an unfinished FU-A"
            nals.append(payload)
        elif kind == STAP_A:
            assert fragment is None
            pos = 1
            inner: list[bytes] = []
            while pos < len(payload):
                size = int.from_bytes(payload[pos : pos + 2], "big")
                assert size > 0
                inner.append(payload[pos + 2 : pos + 2 + size])
                assert len(inner[-1]) == size, "STAP-A unit cut short"
                pos += 2 + size
            assert len(inner) >= 2, "a STAP-A of one NAL unit (send it alone)"
            # §5.7.1: F is the OR of the units' F bits, NRI their maximum.
            assert payload[0] & 0x80 == max(n[0] & 0x80 for n in inner)
            assert payload[0] & 0x60 == max(n[0] & 0x60 for n in inner)
            nals += inner
        elif kind == FU_A:
            header = payload[1]
            start, end = bool(header & 0x80), bool(header & 0x40)
            assert not header & 0x20, "FU header R bit"
            assert not (start and end), "an FU-A of one fragment (send the NAL unit alone)"
            if start:
                assert fragment is None, "FU-A start inside another"
                fragment = bytearray([(payload[0] & 0xE0) | (header & 0x1F)])
            else:
                assert fragment is not None, "FU-A continuation without a start"
                assert fragment[0] & 0x1F == header & 0x1F, "FU-A type changed"
            fragment += payload[2:]
            if end:
                nals.append(bytes(fragment))
                fragment = None
        else:
            pytest.fail(f"NAL unit type {kind} in packetization-mode 1")
    assert fragment is None, "FU-A without an end"
    return nals


def annexb(nals: list[bytes]) -> bytes:
    """Return ``nals`` as an Annex B access unit."""
    return b"".join(START + nal for nal in nals)


def nal(kind: int, size: int, *, nri: int = 3, fill: int = 0xA5) -> bytes:
    """Return a NAL unit of ``size`` bytes (header included) of type ``kind``."""
    body = bytes((fill + i) % 255 + 1 for i in range(size - 1))  # never 00: no start code
    return bytes([nri << 5 | kind]) + body


def assert_round_trip(nals: list[bytes], *, max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """Packetize ``nals`` as one access unit; check the packets and what comes back."""
    payloads = h264_payloads(annexb(nals), max_payload=max_payload)
    assert all(0 < len(p) <= max_payload for p in payloads)
    assert depacketize(payloads) == nals
    return payloads


def test_real_encoder_access_units_round_trip() -> None:
    frames = encode_video([i * 3600 for i in range(30)])
    for frame in frames:
        units = [bytes(n) for n in split_annexb(frame.payload)]
        payloads = assert_round_trip(units)
        if frame.keyframe:
            # SPS, PPS (and SEI) are small: they travel together, aggregated.
            assert payloads[0][0] & 0x1F == STAP_A


@pytest.mark.parametrize(
    "size",
    [1, 2, MAX_PAYLOAD - 3, MAX_PAYLOAD - 2, MAX_PAYLOAD - 1, MAX_PAYLOAD, MAX_PAYLOAD + 1],
)
def test_sizes_around_the_packet_limit(size: int) -> None:
    payloads = assert_round_trip([nal(5, size)])
    if size < MAX_PAYLOAD:
        assert payloads == [nal(5, size)], "a NAL unit that fits goes alone, unchanged"


def test_a_large_nal_unit_is_cut_into_even_fu_a_fragments() -> None:
    unit = nal(5, 100_000, nri=3)
    payloads = assert_round_trip([unit])
    assert len(payloads) == -(-(len(unit) - 1) // (MAX_PAYLOAD - 2))
    headers = [p[1] for p in payloads]
    assert headers[0] == 0x80 | 5  # S
    assert headers[-1] == 0x40 | 5  # E
    assert set(headers[1:-1]) == {5}
    # The indicator keeps F and NRI; each fragment is about the same size (no runt).
    assert {p[0] for p in payloads} == {3 << 5 | FU_A}
    sizes = [len(p) for p in payloads]
    assert max(sizes) - min(sizes) <= 1


def test_small_nal_units_are_aggregated_up_to_the_limit() -> None:
    units = [nal(6, 100, nri=0), nal(7, 20, nri=2), nal(8, 5, nri=0)] + [nal(1, 300, nri=1)] * 10
    payloads = assert_round_trip(units)
    # 1 + (102 + 22 + 7 + 3 * 302) bytes, then 3 and 3 of the 302-byte units a packet (a
    # fourth would pass 1200), and the last alone; NRI the highest of each aggregate.
    assert [p[0] for p in payloads] == [
        2 << 5 | STAP_A,
        1 << 5 | STAP_A,
        1 << 5 | STAP_A,
        1 << 5 | 1,
    ]


def test_a_large_nal_unit_between_small_ones_keeps_the_order() -> None:
    units = [nal(7, 20), nal(8, 4), nal(5, 5000), nal(6, 30), nal(6, 31)]
    payloads = assert_round_trip(units)
    kinds = [p[0] & 0x1F for p in payloads]
    assert kinds[0] == STAP_A
    assert kinds[-1] == STAP_A
    assert set(kinds[1:-1]) == {FU_A}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 23), st.integers(0, 3), st.integers(1, 4000)),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from([MAX_PAYLOAD, 100, 16]),
)
def test_any_access_unit_round_trips(specs: list[tuple[int, int, int]], max_payload: int) -> None:
    units = [nal(kind, size, nri=nri, fill=i) for i, (kind, nri, size) in enumerate(specs)]
    assert_round_trip(units, max_payload=max_payload)


def test_opus_packets_are_their_own_payload() -> None:
    packet = bytes(range(1, 120))
    assert opus_payloads(memoryview(packet)) == [packet]


# -- PreparedFrames ---------------------------------------------------------------------


def video_frames(count: int) -> list[Frame]:
    """Return ``count`` real encoded frames as the shared encode publishes them."""
    return encode_video([1000 + i * 3600 for i in range(count)])


def test_each_frame_is_prepared_once_for_every_session() -> None:
    frames = video_frames(10)
    cache = PreparedFrames(clock_rate=90_000, video=True)
    # Ten sessions, each a little behind the one before, read every frame.
    seen: dict[int, list[object]] = {}
    for step in range(len(frames) + 10):
        for session in range(10):
            index = step - session
            if 0 <= index < len(frames):
                seen.setdefault(index, []).append(cache.get(frames[index]))
    assert cache.made == len(frames)
    for index, prepared in seen.items():
        assert len(prepared) == 10
        assert all(p is prepared[0] for p in prepared)
        frame = frames[index]
        first = cache.get(frame)
        assert first.timestamp == frame.pts
        assert first.keyframe is frame.keyframe
        assert first.size == sum(len(p) for p in first.payloads)
        assert depacketize(first.payloads) == [bytes(n) for n in split_annexb(frame.payload)]
    assert cache.made == len(frames)


def test_frames_evicted_from_the_cache_are_prepared_again() -> None:
    frames = video_frames(6)
    cache = PreparedFrames(clock_rate=90_000, video=True, held=4)
    for frame in frames:
        cache.get(frame)
    assert cache.made == 6
    cache.get(frames[-1])  # still held
    assert cache.made == 6
    again = cache.get(frames[0])  # evicted: made again, the same payloads
    assert cache.made == 7
    assert depacketize(again.payloads) == [bytes(n) for n in split_annexb(frames[0].payload)]


def test_audio_frames_keep_their_48_khz_timestamps() -> None:
    cache = PreparedFrames(clock_rate=48_000, video=False)
    packets = [
        Frame(
            payload=bytes([0xFC, i + 1]),
            content_type="audio/opus",
            seq=i,
            pts=960 * i + 2**32 - 960,  # wraps past 2**32 on the second packet
            time_base=Fraction(1, 48_000),
            cut=CutPoint(config=b"OpusHead"),
        )
        for i in range(3)
    ]
    prepared = [cache.get(p) for p in packets]
    assert [p.timestamp for p in prepared] == [2**32 - 960, 0, 960]
    assert [p.payloads for p in prepared] == [[bytes(p.payload)] for p in packets]
    assert cache.made == 3


def test_video_timestamps_follow_pts_in_any_time_base() -> None:
    frame = video_frames(1)[0]
    ns_frame = Frame(
        payload=frame.payload,
        content_type=frame.content_type,
        seq=0,
        pts=2_000_000_000,
        time_base=Fraction(1, 1_000_000_000),
        cut=frame.cut,
    )
    cache = PreparedFrames(clock_rate=90_000, video=True)
    assert cache.get(ns_frame).timestamp == 180_000
    assert cache.get(frame).timestamp == frame.pts
    assert cache.made == 2
