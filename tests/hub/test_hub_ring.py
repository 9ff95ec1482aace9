"""Ring: O(1) publish, GOP-wise eviction by seconds and bytes, cut_near, subscribe, close."""

from __future__ import annotations

import asyncio
import sys
from types import FrameType

import pytest

from gateway.errors import LocalProtocolError
from gateway.hub import Ring, StreamFullError
from gateway.media import NS_PER_SECOND, CutPoint, Frame

FPS = 25
PERIOD_NS = NS_PER_SECOND // FPS
T0 = 1_000 * NS_PER_SECOND


class Source:
    """An MPEG-2-like frame source on a fake clock: GOPs of ``gop`` frames.

    Every payload is unique (it starts with its position) so tests can tell frames apart;
    a cut frame's join is ``b"J" + payload``. In an open GOP the ``leading`` frames
    after the I-picture are B-pictures of the previous GOP.
    """

    def __init__(
        self,
        *,
        gop: int = 12,
        i_size: int = 2000,
        p_size: int = 500,
        open_gop: bool = False,
        leading: int = 2,
        audio: bool = False,
    ) -> None:
        self.gop, self.i_size, self.p_size = gop, i_size, p_size
        self.open_gop, self.leading, self.audio = open_gop, leading, audio
        self.n = 0

    @property
    def now_ns(self) -> int:
        """Return the fake clock: the received_ns of the next frame."""
        return T0 + self.n * PERIOD_NS

    def next(self) -> Frame:
        n = self.n
        self.n += 1
        k = n % self.gop
        size = self.i_size if k == 0 else self.p_size
        payload = f"{n}:".encode().ljust(size, b".")
        cut = None
        if k == 0 and not self.audio:
            cut = CutPoint(closed_gop=not self.open_gop, broken_link=False, join=b"J" + payload)
        return Frame(
            payload,
            "audio/32KADPCM" if self.audio else "video/mpeg",
            n,
            pts=n * 3600,
            received_ns=T0 + n * PERIOD_NS,
            cut=cut,
            leading=self.open_gop and 0 < k <= self.leading and n >= self.gop,
        )

    def publish(self, ring: Ring, count: int) -> list[Frame]:
        frames = [self.next() for _ in range(count)]
        for f in frames:
            ring.publish(f)
        return frames


def test_positions_and_lookup() -> None:
    ring = Ring()
    assert (ring.first_seq, ring.next_seq, ring.newest, ring.newest_cut) == (0, 0, None, None)
    frames = Source().publish(ring, 30)
    assert (ring.first_seq, ring.next_seq) == (0, 30)
    assert ring.get(5) is frames[5]
    assert ring.get(30) is None
    assert ring.get(-1) is None
    assert ring.newest is frames[-1]
    assert ring.newest_cut == 24
    assert ring.bytes == sum(f.size for f in frames)
    assert ring.held_ns == 29 * PERIOD_NS


def test_frames_before_the_first_cut_point_are_dropped() -> None:
    ring = Ring()
    src = Source(gop=12)
    src.n = 5  # joined the camera mid-GOP
    src.publish(ring, 10)
    assert (ring.first_seq, ring.next_seq, ring.newest_cut) == (7, 10, 7)
    assert ring.get(ring.first_seq) is not None
    assert ring.get(ring.first_seq).cut is not None  # type: ignore[union-attr]


def test_without_any_cut_point_memory_is_still_bounded() -> None:
    ring = Ring(seconds=1.0, max_bytes=10_000)
    src = Source(gop=10**9)
    src.n = 1  # never a cut point
    src.publish(ring, 200)
    assert ring.newest_cut is None
    assert ring.bytes <= 10_000
    assert ring.held_ns == 0
    assert ring.next_seq - ring.first_seq == 20  # 10_000 bytes of 500-byte frames


def _assert_whole_gops(ring: Ring) -> None:
    oldest = ring.get(ring.first_seq)
    assert oldest is not None
    assert oldest.cut is not None


def test_eviction_by_seconds_keeps_whole_gops() -> None:
    ring = Ring(seconds=2.0)
    src = Source(gop=12)  # 0.48 s GOPs
    for _ in range(500):
        ring.publish(src.next())
        _assert_whole_gops(ring)
        assert ring.held_ns <= 2 * NS_PER_SECOND
    # The span held is as much as fits in 2 s of whole GOPs (4 GOPs = 1.92 s + frames).
    assert ring.held_ns > 2 * NS_PER_SECOND - 12 * PERIOD_NS
    assert ring.evicted_frames == 500 - (ring.next_seq - ring.first_seq)


def test_eviction_by_bytes_keeps_whole_gops() -> None:
    gop_bytes = 2000 + 11 * 500
    ring = Ring(seconds=60.0, max_bytes=3 * gop_bytes + 100)
    src = Source(gop=12)
    for _ in range(300):
        ring.publish(src.next())
        _assert_whole_gops(ring)
        assert ring.bytes <= 3 * gop_bytes + 100
    assert ring.bytes > 2 * gop_bytes
    assert ring.oversize_gops == 0


def test_the_newest_gop_is_never_evicted_even_when_oversize() -> None:
    ring = Ring(seconds=0.1, max_bytes=3000, max_gop_bytes=1 << 20)
    src = Source(gop=50)
    frames = src.publish(ring, 40)
    assert ring.first_seq == 0
    assert ring.get(0) is frames[0]
    assert ring.bytes == sum(f.size for f in frames)
    assert ring.oversize_gops == 1  # counted once per GOP
    src.publish(ring, 11)  # the next GOP starts: the old one goes at once
    assert ring.first_seq == 50
    assert ring.oversize_gops == 1


def test_a_gop_that_never_ends_is_trimmed_at_max_gop_bytes() -> None:
    # A camera that sent one cut point and then only P-pictures: bounded all the same.
    ring = Ring(seconds=60.0, max_bytes=3000, max_gop_bytes=12_000)
    src = Source(gop=10_000)
    for _ in range(500):
        ring.publish(src.next())
        assert ring.bytes <= 12_000
    assert (ring.truncated_gops, ring.newest_cut) == (1, None)
    assert ring.bytes <= 3000  # trimmed back to max_bytes once the cut point was given up
    with ring.subscribe() as cur:
        assert cur.take(1 << 20) == []  # nothing to join: new clients wait for a cut point
        src.gop = src.n  # the camera finally sends a new GOP: the next frame is a cut
        frames = src.publish(ring, 3)
        assert ring.newest_cut is not None
        assert frames[0].cut is not None
        assert cur.take(1 << 20)[0] is frames[0].cut.join


def test_cut_near_for_prebuffer() -> None:
    ring = Ring(seconds=10.0)
    src = Source(gop=25)  # one GOP per second
    src.publish(ring, 25 * 20 + 7)  # 20 s published, 10 s held
    newest = ring.newest
    assert newest is not None
    # prebuffer=0: the newest cut point, 7 frames back.
    seq = ring.cut_near(newest.received_ns)
    assert seq == ring.newest_cut == 500
    # prebuffer=3: nearest is the GOP starting 3 s + 7 frames back (not 2 s + 7).
    seq = ring.cut_near(newest.received_ns - 3 * NS_PER_SECOND)
    assert seq == 425
    # Far beyond what is held: the oldest cut point; what is provided is what is held.
    seq = ring.cut_near(newest.received_ns - 60 * NS_PER_SECOND)
    assert seq == ring.first_seq
    with ring.subscribe(seq) as cur:
        assert cur.provided_ns == ring.held_ns <= 10 * NS_PER_SECOND
    assert ring.cut_near(newest.received_ns + NS_PER_SECOND) == 500
    assert Ring().cut_near(0) is None


def test_subscribe_bounds_and_errors() -> None:
    ring = Ring(max_subscribers=2)
    Source().publish(ring, 30)
    with ring.subscribe(), ring.subscribe():
        assert len(ring) == 2
        with pytest.raises(StreamFullError):
            ring.subscribe()
    assert len(ring) == 0
    with pytest.raises(LocalProtocolError):
        ring.subscribe(31)
    with pytest.raises(LocalProtocolError):
        ring.subscribe(-1)
    with pytest.raises(LocalProtocolError):
        Ring(seconds=-1)
    ring.close()
    with pytest.raises(LocalProtocolError):
        ring.subscribe()
    with pytest.raises(LocalProtocolError):
        ring.publish(Source().next())


def test_snapshot_has_the_api_keys() -> None:
    ring = Ring(name="demo")
    src = Source()
    src.publish(ring, 13)
    with ring.subscribe(remote="10.0.0.2:5000", maxlag_ns=0) as cur:
        cur.take(1 << 20)
        cur.check(0, src.now_ns)
        (snap,) = ring.snapshot()
    for key in ("kind", "remote", "target_fps", "priority", "delivered_fps", "skipped"):
        assert key in snap
    assert snap["kind"] == snap["stream"] == "mpeg2"
    assert (snap["priority"], snap["target_fps"], snap["maxlag_ms"]) == ("required", None, 500)
    assert (snap["delivered"], snap["bytes"], snap["cuts"]) == (1, 2001, 0)
    assert ring.snapshot() == []


class _CallCounter:
    """Count Python calls into gateway.hub while active (the hub's own work)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and "gateway/hub" in frame.f_code.co_filename:
            self.calls += 1

    def publish(self, ring: Ring, frame: Frame) -> int:
        self.calls = 0
        sys.setprofile(self)
        try:
            ring.publish(frame)
        finally:
            sys.setprofile(None)
        return self.calls


async def _publish_work(n_cursors: int, *, waiting: bool) -> list[int]:
    ring = Ring()
    src = Source(gop=4)
    src.publish(ring, 4)
    cursors = [ring.subscribe() for _ in range(n_cursors)]
    for cur in cursors:
        cur.take(1 << 20)  # caught up: nothing pending
    tasks = [asyncio.create_task(cur.wait()) for cur in cursors] if waiting else []
    await asyncio.sleep(0)
    counter = _CallCounter()
    work = [counter.publish(ring, src.next()) for _ in range(8)]  # P-frames and a cut
    assert all(await asyncio.gather(*tasks))
    for cur in cursors:
        cur.close()
    return work


@pytest.mark.parametrize("waiting", [False, True])
async def test_publish_work_is_independent_of_the_number_of_cursors(waiting: bool) -> None:
    assert await _publish_work(1, waiting=waiting) == await _publish_work(1000, waiting=waiting)


async def test_waiters_share_one_future_per_publish() -> None:
    ring = Ring()
    src = Source(gop=4)
    src.publish(ring, 4)
    cursors = [ring.subscribe() for _ in range(50)]
    for cur in cursors:
        cur.take(1 << 20)
    tasks = [asyncio.create_task(cur.wait()) for cur in cursors]
    await asyncio.sleep(0)
    fut = ring.wait_for(cut=False)  # the one the waiters share
    assert len(fut._callbacks) == 50
    ring.publish(src.next())
    assert fut.done()
    assert ring.wait_for(cut=False) is not fut  # the next publish resolves a new one
    assert all(await asyncio.gather(*tasks))
