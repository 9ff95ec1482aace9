"""Cursor frame view: Deliveries with joins, frame-count lag, cuts, keyframe requests."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import LocalProtocolError
from gateway.hub import Delivery, Ring
from gateway.media import CutPoint, Frame, StreamKind
from tests.hub.test_hub_ring import PERIOD_NS, T0, Source

MS = 1_000_000
AVCC = b"\x01avcC"


class Encoder:
    """An H.264-like producer on a fake clock: an IDR every ``gop`` frames, or on request."""

    def __init__(self, *, gop: int = 25, size: int = 1000) -> None:
        self.gop, self.size = gop, size
        self.n = 0
        self.since_idr = 0
        self.idr_requested = 0

    @property
    def now_ns(self) -> int:
        """Return the fake clock: the received_ns of the next frame."""
        return T0 + self.n * PERIOD_NS

    def request_idr(self) -> None:
        self.idr_requested += 1

    def next(self) -> Frame:
        n = self.n
        self.n += 1
        idr = self.since_idr % self.gop == 0 or self.idr_requested > 0
        self.since_idr = 1 if idr else self.since_idr + 1
        self.idr_requested = 0
        payload = f"{n}:".encode().ljust(self.size * (3 if idr else 1), b".")
        return Frame(
            payload,
            "video/h264",
            n,
            pts=n * 3600,
            received_ns=T0 + n * PERIOD_NS,
            cut=CutPoint(config=AVCC) if idr else None,
        )

    def publish(self, ring: Ring, count: int) -> list[Frame]:
        frames = [self.next() for _ in range(count)]
        for f in frames:
            ring.publish(f)
        return frames


def test_codec_neutral_cut_points_default_to_a_keyframe_needing_nothing_else() -> None:
    cut = CutPoint()
    assert (cut.closed_gop, cut.broken_link, cut.join, cut.config) == (True, False, b"", None)
    idr = Frame(b"idr", "video/h264", 0, 0, cut=CutPoint(config=AVCC))
    assert idr.keyframe
    assert idr.join_payload is idr.payload  # Annex-B with SPS/PPS in band: the payload
    p = Frame(b"p", "video/h264", 1, 0)
    assert not p.keyframe
    assert p.join_payload is p.payload
    # MPEG-2 builds them positionally, as the demuxer does; the join replaces the payload.
    mpeg2 = Frame(b"I", "video/mpeg", 0, 0, cut=CutPoint(False, True, b"SEQ+I"))
    assert mpeg2.join_payload == b"SEQ+I"
    assert mpeg2.cut is not None
    assert mpeg2.cut.config is None


def test_take_frames_marks_the_first_frame_after_the_start_as_joined() -> None:
    ring = Ring(StreamKind.MPEG2)
    enc = Encoder(gop=10)
    frames = enc.publish(ring, 15)
    with ring.subscribe() as cur:
        assert cur.position == 10
        out = cur.take_frames(100)
        assert [d.frame for d in out] == frames[10:]
        assert all(d.frame is f for d, f in zip(out, frames[10:], strict=True))
        assert [d.joined for d in out] == [True, False, False, False, False]
        assert out[0].frame.cut is not None
        assert out[0].frame.cut.config == AVCC  # what an fMP4 reader writes its init from
        assert out[0].data is frames[10].payload  # no join bytes: the payload itself
        assert cur.take_frames(100) == []
        assert (cur.delivered, cur.skipped, cur.cuts) == (5, 0, 0)
        assert cur.bytes == sum(f.size for f in frames[10:])


def test_take_frames_respects_max_frames_and_rejects_zero() -> None:
    ring = Ring()
    Encoder(gop=10).publish(ring, 10)
    with ring.subscribe() as cur:
        assert [d.joined for d in cur.take_frames(3)] == [True, False, False]
        assert [d.joined for d in cur.take_frames(3)] == [False, False, False]
        assert len(cur.take_frames(100)) == 4
        with pytest.raises(LocalProtocolError, match="max_frames must be >= 1"):
            cur.take_frames(0)


def test_both_views_share_the_position_and_the_join() -> None:
    ring = Ring()
    frames = Source(gop=12).publish(ring, 20)
    with ring.subscribe(0) as cur:
        (first,) = cur.take_frames(1)
        assert first == Delivery(frames[0], True)
        assert frames[0].cut is not None
        assert first.data is frames[0].cut.join  # what ``take`` would have handed out
        assert cur.take(1500) == [frames[1].payload, frames[2].payload, frames[3].payload]
        assert [d.frame for d in cur.take_frames(2)] == frames[4:6]
        assert cur.position == 6


def test_an_open_gop_join_skips_leading_frames_in_the_frame_view_too() -> None:
    ring = Ring()
    frames = Source(gop=12, open_gop=True, leading=2).publish(ring, 20)
    with ring.subscribe(12) as cur:
        out = cur.take_frames(100)
        assert [d.frame for d in out] == [frames[12], *frames[15:]]
        assert out[0].joined
        assert cur.skipped == 2


def test_a_frame_reader_over_maxlag_is_cut_to_the_newest_keyframe() -> None:
    ring = Ring()
    enc = Encoder(gop=10)
    enc.publish(ring, 1)
    with ring.subscribe(maxlag_ns=600 * MS) as cur:
        cur.take_frames(100)
        assert cur.check_frames(0, enc.now_ns) is False
        frames = enc.publish(ring, 30)  # 1.2 s pending, keyframes at 10, 20, 30
        assert cur.check_frames(0, enc.now_ns) is True
        assert cur.position == ring.newest_cut == 30
        assert (cur.cuts, cur.skipped) == (1, 29)
        assert cur.dropped_bytes == sum(f.size for f in frames[:29])
        out = cur.take_frames(100)
        assert out == [Delivery(frames[29], True)]  # joined again: send the config first
        assert cur.check_frames(0, enc.now_ns) is False
        assert cur.lag_ns == 0


def test_unacked_frames_count_from_the_oldest_and_no_cut_inside_the_newest_gop() -> None:
    ring = Ring()
    enc = Encoder(gop=25)  # 1 s GOPs
    enc.publish(ring, 20)
    with ring.subscribe(maxlag_ns=500 * MS) as cur:
        assert len(cur.take_frames(100)) == 20
        # The peer received nothing: 0.76 s behind, but the newest keyframe is the one
        # this GOP started at, so a cut would not bring it closer to live.
        assert cur.check_frames(20, enc.now_ns) is False
        assert cur.lag_ns == 19 * PERIOD_NS
        # The peer received all but the newest 8: lag is measured from frame 12.
        assert cur.check_frames(8, enc.now_ns) is False
        assert cur.lag_ns == 7 * PERIOD_NS
        # More unacknowledged frames than are remembered do not bring the lag back.
        assert cur.check_frames(100, enc.now_ns) is False
        assert cur.lag_ns == 7 * PERIOD_NS
        enc.publish(ring, 10)  # a newer keyframe at 25; those 8 still not sent
        assert cur.check_frames(8, enc.now_ns) is True
        assert cur.position == 25
        assert cur.take_frames(1)[0].joined


def test_without_maxlag_unacked_frame_bytes_count_against_the_buffer_bound() -> None:
    ring = Ring()
    enc = Encoder(gop=10, size=1000)  # 3 kB keyframes, 1 kB frames
    enc.publish(ring, 5)
    with ring.subscribe(max_buffer_bytes=12_000) as cur:
        cur.take_frames(100)  # 7 kB handed out
        enc.publish(ring, 6)  # 5..9 and a keyframe at 10: 8 kB pending
        assert cur.check_frames(4, enc.now_ns) is False  # 1..4 unacked: 4 + 8 = 12 kB
        enc.publish(ring, 1)
        assert cur.check_frames(4, enc.now_ns) is True  # 4 + 9 kB: over the bound
        assert cur.position == 10


def test_an_evicted_frame_reader_resumes_joined_at_the_newest_keyframe() -> None:
    ring = Ring(seconds=1.0)
    enc = Encoder(gop=10)
    enc.publish(ring, 3)
    with ring.subscribe() as cur:
        cur.take_frames(1)
        enc.publish(ring, 60)  # frames 1.. evicted
        out = cur.take_frames(100)
        assert out[0].joined
        assert out[0].frame is ring.get(ring.newest_cut or 0)
        assert not any(d.joined for d in out[1:])
        assert cur.cuts == 1


def test_a_new_upstream_connection_makes_a_frame_reader_join_again() -> None:
    ring = Ring()
    old = Encoder(gop=10)
    old.publish(ring, 12)
    with ring.subscribe() as cur:
        cur.take_frames(100)
        new = Encoder(gop=10)  # Frame.seq restarts at 0
        frames = new.publish(ring, 3)
        out = cur.take_frames(100)
        assert [d.joined for d in out] == [True, False, False]
        assert out[0].frame is frames[0]
        assert ring.connection_start == 12


def test_audio_frames_are_all_joinable_and_the_first_is_joined() -> None:
    ring = Ring(StreamKind.AUDIO)
    parts = Source(audio=True, i_size=400, p_size=400).publish(ring, 3)
    with ring.subscribe() as cur:
        out = cur.take_frames(10)
        assert out == [Delivery(parts[2], True)]
        assert out[0].frame.cut is None
        assert out[0].data is parts[2].payload


def test_keyframe_requests_reach_the_producer() -> None:
    enc = Encoder(gop=250)
    ring = Ring(on_keyframe_request=enc.request_idr)
    enc.publish(ring, 30)  # one keyframe, long ago
    with ring.subscribe(maxlag_ns=500 * MS) as cur:
        assert cur.position == 0
        cur.request_keyframe()  # e.g. a WebRTC PLI, or a viewer that wants to start now
        assert (enc.idr_requested, ring.keyframe_requests) == (1, 1)
        (frame,) = enc.publish(ring, 1)
        assert frame.keyframe
        # A reader that fell behind can now be cut to the fresh keyframe.
        assert cur.check_frames(0, enc.now_ns) is True
        assert cur.take_frames(10) == [Delivery(frame, True)]
        cur.close()
        cur.request_keyframe()  # closed: nobody asks
    assert ring.keyframe_requests == 1


def test_keyframe_source_can_be_set_later_and_removed() -> None:
    ring = Ring()
    calls: list[str] = []
    with ring.subscribe() as cur:
        cur.request_keyframe()  # a camera stream: nobody can make a keyframe
        ring.set_keyframe_source(lambda: calls.append("idr"))
        cur.request_keyframe()
        ring.request_keyframe()
        ring.set_keyframe_source(None)
        cur.request_keyframe()
    assert calls == ["idr", "idr"]
    assert ring.keyframe_requests == 2
    ring.set_keyframe_source(lambda: calls.append("late"))
    ring.close()
    ring.request_keyframe()  # the producer is gone with the ring
    assert calls == ["idr", "idr"]


async def test_a_parked_frame_reader_gets_frames_from_publish() -> None:
    ring = Ring()
    enc = Encoder(gop=10)
    enc.publish(ring, 1)
    got: list[Delivery] = []
    with ring.subscribe() as cur:

        def deliver() -> bool:
            got.extend(cur.take_frames(8))
            return True

        cur.set_deliver(deliver)
        got.extend(cur.take_frames(8))  # the join: the coroutine path
        task = asyncio.create_task(cur.wait())
        await asyncio.sleep(0)
        frames = enc.publish(ring, 3)
        assert [d.frame for d in got[1:]] == frames
        assert not task.done()
        ring.close()
        assert await asyncio.wait_for(task, 1) is False


def _simulate_sender(*, maxlag_ms: int, per_tick: float, steps: int) -> tuple[int, int, int]:
    """Drive a WebRTC-like sender that sends ``per_tick`` frames per frame interval.

    Like a byte-stream endpoint, it takes only what it can send soon (two frames): what
    it took cannot be recalled, what it leaves in the ring can be cut. Returns (cuts,
    largest lag seen, frames delivered).
    """
    enc = Encoder(gop=12)
    ring = Ring()
    cur = ring.subscribe(maxlag_ns=maxlag_ms * MS)
    queue: list[Delivery] = []  # handed out, not sent yet
    budget = 0.0
    max_lag = 0
    for _ in range(steps):
        ring.publish(enc.next())
        budget += per_tick
        sent = min(int(budget), len(queue))
        budget -= sent
        del queue[:sent]
        cut = cur.check_frames(len(queue), enc.now_ns)
        if cut:
            queue.clear()  # what was not sent is dropped
        taken = cur.take_frames(2 - len(queue)) if len(queue) < 2 else []
        if cut:
            assert taken[0].joined  # ... and the next frame sent joins at a keyframe
        assert all(d.frame.keyframe for d in taken if d.joined)
        queue += taken
        max_lag = max(max_lag, cur.lag_ns)
    return cur.cuts, max_lag, cur.delivered


def test_a_slow_frame_reader_stays_within_maxlag_plus_one_gop() -> None:
    cuts, max_lag, delivered = _simulate_sender(maxlag_ms=1000, per_tick=0.5, steps=25 * 60)
    assert cuts > 20
    assert max_lag <= 1000 * MS + 12 * PERIOD_NS
    assert delivered < 25 * 60


def test_a_fast_frame_reader_is_never_cut() -> None:
    cuts, max_lag, delivered = _simulate_sender(maxlag_ms=500, per_tick=1.5, steps=25 * 60)
    assert cuts == 0
    assert max_lag < 500 * MS
    assert delivered == 25 * 60
