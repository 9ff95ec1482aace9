"""Cursor: joins, leading frames, maxlag and byte-bound cuts, eviction, audio, waiting."""

from __future__ import annotations

import asyncio

import pytest

from gateway.hub import MIN_MAXLAG_NS, Cursor, Ring
from gateway.media import NS_PER_SECOND, CutPoint, Frame, StreamKind
from tests.hub.test_hub_ring import PERIOD_NS, T0, Source

MS = 1_000_000


def test_start_at_newest_cut_sends_the_join_then_payloads_zero_copy() -> None:
    ring = Ring()
    frames = Source(gop=12).publish(ring, 30)
    with ring.subscribe() as cur:
        assert cur.position == 24
        assert cur.provided_ns == 5 * PERIOD_NS
        assert cur.start_ns == frames[24].received_ns
        out = cur.take(1 << 20)
        assert frames[24].cut is not None
        assert out[0] is frames[24].cut.join
        assert all(a is f.payload for a, f in zip(out[1:], frames[25:], strict=True))
        assert cur.take(1 << 20) == []
        assert (cur.delivered, cur.skipped, cur.cuts) == (6, 0, 0)
        assert cur.bytes == sum(len(b) for b in out)


def test_take_respects_max_bytes_but_always_gives_a_whole_frame() -> None:
    ring = Ring()
    src = Source(gop=12, i_size=2000, p_size=500)
    src.publish(ring, 12)
    with ring.subscribe(0) as cur:
        first = cur.take(10)  # smaller than any frame: one frame all the same
        assert len(first) == 1
        assert len(first[0]) == 2001
        assert len(cur.take(1000)) == 2
        assert len(cur.take(1499)) == 2


def test_start_position_that_is_not_a_cut_waits_for_the_next_cut() -> None:
    ring = Ring()
    frames = Source(gop=12).publish(ring, 20)
    with ring.subscribe(3) as cur:
        assert cur.position == 12
        assert cur.take(1 << 20)[0] is frames[12].cut.join  # type: ignore[union-attr]
        assert cur.skipped == 0  # frames before the first join were never due


async def test_a_cursor_before_the_first_cut_point_waits_for_one() -> None:
    ring = Ring()
    src = Source(gop=12)
    src.n = 7  # joined mid-GOP: no cut point yet
    with ring.subscribe() as cur:
        task = asyncio.create_task(cur.wait())
        src.publish(ring, 2)
        await asyncio.sleep(0)
        assert not task.done()  # P-frames do not wake a cursor looking for a cut point
        assert cur.take(1 << 20) == []
        frames = src.publish(ring, 4)  # frame 12 is a cut point
        assert await task
        out = cur.take(1 << 20)
        assert out[0] is frames[3].cut.join  # type: ignore[union-attr]
        assert cur.provided_ns == 0
        assert (cur.skipped, cur.cuts) == (0, 0)


def test_leading_frames_are_skipped_after_an_open_gop_join_only() -> None:
    ring = Ring()
    src = Source(gop=12, open_gop=True, leading=2)
    frames = src.publish(ring, 30)  # GOPs at 0, 12, 24; 13, 14, 25, 26 leading
    with ring.subscribe(12) as cur:
        out = cur.take(1 << 20)
        seqs = [int(bytes(b[1:] if b[:1] == b"J" else b).split(b":")[0]) for b in out]
        # Joined at 12: 13 and 14 skipped; at the next GOP (no join) 25, 26 are sent.
        assert seqs == [12, *range(15, 30)]
        assert out[0] is frames[12].cut.join  # type: ignore[union-attr]
        assert cur.skipped == 2


def test_leading_flags_after_a_closed_gop_join_are_not_skipped() -> None:
    ring = Ring()
    join = b"J0"
    ring.publish(Frame(b"I0", "video/mpeg", 0, 0, cut=CutPoint(True, False, join)))
    ring.publish(b1 := Frame(b"B1", "video/mpeg", 1, 0, leading=True))
    with ring.subscribe() as cur:
        assert cur.take(100) == [join, b1.payload]
        assert cur.skipped == 0


def test_leading_frames_arriving_later_are_skipped_too() -> None:
    ring = Ring()
    src = Source(gop=12, open_gop=True)
    src.publish(ring, 12)
    with ring.subscribe(0) as cur:
        cur.take(1 << 20)
        src.publish(ring, 1)  # the new GOP's I-picture, no join: delivered plain
        frames = src.publish(ring, 3)  # 13, 14 leading but not after a join: delivered
        cur.take(1 << 20)
    with ring.subscribe() as cur:
        out = cur.take(1 << 20)
        assert out[1] is frames[2].payload  # 13, 14 skipped after the join at 12
        assert cur.skipped == 2


@pytest.mark.parametrize(
    ("maxlag_ms", "expected_ms"), [(0, 500), (1, 500), (499, 500), (500, 500), (1500, 1500)]
)
def test_maxlag_below_500_means_500(maxlag_ms: int, expected_ms: int) -> None:
    ring = Ring()
    with ring.subscribe(maxlag_ns=maxlag_ms * MS) as cur:
        assert cur.maxlag_ns == expected_ms * MS
    with ring.subscribe() as cur:
        assert cur.maxlag_ns is None
    assert MIN_MAXLAG_NS == 500 * MS


def test_maxlag_cut_drops_pending_data_and_resumes_with_a_join() -> None:
    ring = Ring()
    src = Source(gop=12)
    src.publish(ring, 13)
    with ring.subscribe(maxlag_ns=600 * MS) as cur:
        cur.take(1 << 20)  # frames 12 (joined) ... live
        assert cur.check(0, src.now_ns) is False
        frames = src.publish(ring, 30)  # 1.2 s behind now: frames 13..42 pending
        assert cur.check(0, src.now_ns) is True
        assert cur.position == ring.newest_cut == 36
        assert (cur.cuts, cur.skipped) == (1, 23)
        assert cur.dropped_bytes == sum(f.size for f in frames[:23])
        out = cur.take(1 << 20)
        assert out[0] is frames[23].cut.join  # type: ignore[union-attr]
        assert cur.check(0, src.now_ns) is False
        assert cur.lag_ns == 0


def test_lag_counts_the_kernel_queue_and_no_cut_inside_the_newest_gop() -> None:
    ring = Ring()
    src = Source(gop=25)  # 1 s GOPs
    src.publish(ring, 20)
    with ring.subscribe(maxlag_ns=500 * MS) as cur:
        out = cur.take(1 << 20)  # the whole first GOP so far, 0.76 s of it
        sent = sum(len(b) for b in out)
        # The peer took nothing: lag is 0.76 s > maxlag, but the newest cut point is the
        # one this GOP started at: cutting would not bring it closer to live.
        assert cur.check(sent, src.now_ns) is False
        assert cur.lag_ns == 19 * PERIOD_NS
        assert cur.cuts == 0
        # The peer took the I-frame and 10 more: lag is measured from frame 11.
        assert cur.check(sent - 2001 - 10 * 500, src.now_ns) is False
        assert cur.lag_ns == 8 * PERIOD_NS
        src.publish(ring, 10)  # a newer GOP at 25; still 1 s queued in the kernel
        assert cur.check(sent, src.now_ns) is True
        assert cur.position == 25


def test_without_maxlag_the_client_buffer_bytes_bound_cuts() -> None:
    ring = Ring()
    src = Source(gop=12, i_size=2000, p_size=500)  # 7.5 kB per GOP
    src.publish(ring, 1)
    with ring.subscribe(max_buffer_bytes=19_000) as cur:
        cur.take(1 << 20)  # 2001 bytes handed out
        src.publish(ring, 30)  # 18 kB pending
        assert cur.check(0, src.now_ns) is False
        assert cur.check(900, src.now_ns) is False  # 18.9 kB behind
        # Recorded (from frame 1: the first check acknowledged frame 0), not the bound.
        assert cur.lag_ns == 29 * PERIOD_NS
        assert cur.check(1100, src.now_ns) is True  # 19.1 kB behind
        assert cur.position == 24
        assert cur.take(1 << 20)[0][:1] == b"J"


def test_an_evicted_position_is_cut_to_the_newest_cut_point() -> None:
    ring = Ring(seconds=1.0)
    src = Source(gop=12)
    src.publish(ring, 5)
    with ring.subscribe() as cur:
        cur.take(2001)  # the join of frame 0 only
        src.publish(ring, 60)  # frames 1.. evicted
        assert ring.first_seq > cur.position
        out = cur.take(1 << 20)
        assert cur.cuts == 1
        newest_cut = ring.get(ring.newest_cut or 0)
        assert newest_cut is not None
        assert newest_cut.cut is not None
        assert out[0] is newest_cut.cut.join
        assert cur.skipped == 60 - 1  # 1..59 dropped (60..64 handed out)


def test_audio_every_part_is_a_cut_point_and_cuts_go_to_the_newest_part() -> None:
    ring = Ring(StreamKind.AUDIO)
    src = Source(audio=True, i_size=400, p_size=400)
    parts = src.publish(ring, 3)
    with ring.subscribe(maxlag_ns=500 * MS) as cur:
        assert cur.position == 2
        assert cur.take(1 << 20) == [parts[2].payload]  # no CutPoint: the part itself
        parts = src.publish(ring, 40)
        assert cur.check(0, src.now_ns) is True
        assert cur.position == ring.newest_cut == ring.next_seq - 1
        assert cur.take(1 << 20) == [parts[-1].payload]
        assert cur.snapshot()["stream"] == "audio"


def test_is_cut_can_be_given() -> None:
    ring = Ring(is_cut=lambda f: True)
    frames = Source(gop=12).publish(ring, 5)
    assert ring.newest_cut == 4
    with ring.subscribe(2) as cur:
        assert cur.take(1 << 20) == [f.payload for f in frames[2:]]


def _simulate(
    *, maxlag_ms: int, reader_bps: float, kernel_bytes: int, steps: int
) -> tuple[Cursor, int, int]:
    """Drive a slow peer; return the cursor, the largest lag seen, and one GOP in ns."""
    ring = Ring()
    src = Source(gop=12, i_size=20_000, p_size=5_000)  # 156 kB/s
    cur = ring.subscribe(maxlag_ns=maxlag_ms * MS)
    queued = 0.0  # bytes in the fake kernel send queue
    max_lag = 0
    for _ in range(steps):
        ring.publish(src.next())
        now = src.now_ns
        queued = max(0.0, queued - reader_bps * PERIOD_NS / NS_PER_SECOND)
        while queued < kernel_bytes:
            out = cur.take(int(kernel_bytes - queued))
            if not out:
                break
            queued += sum(len(b) for b in out)
            if cur.check(int(queued), now):
                # Every cut lands on a cut point: the next bytes are a join.
                nxt = ring.get(cur.position)
                assert nxt is not None
                assert nxt.cut is not None
        cur.check(int(queued), now)
        max_lag = max(max_lag, cur.lag_ns)
    return cur, max_lag, 12 * PERIOD_NS


def test_a_slow_reader_with_maxlag_stays_within_maxlag_plus_one_gop() -> None:
    cur, max_lag, gop_ns = _simulate(
        maxlag_ms=1000, reader_bps=100_000, kernel_bytes=16_000, steps=25 * 120
    )
    assert cur.cuts > 50
    assert max_lag <= 1000 * MS + gop_ns
    assert cur.delivered + cur.skipped <= 25 * 120


def test_a_fast_reader_is_never_cut() -> None:
    cur, max_lag, _ = _simulate(
        maxlag_ms=500, reader_bps=400_000, kernel_bytes=64_000, steps=25 * 60
    )
    assert cur.cuts == 0
    assert max_lag < 500 * MS


async def test_ring_close_drains_then_ends_waiters() -> None:
    ring = Ring()
    src = Source(gop=4)
    src.publish(ring, 4)
    with ring.subscribe() as cur:
        cur.take(1 << 20)
        task = asyncio.create_task(cur.wait())
        await asyncio.sleep(0)
        src.publish(ring, 1)
        ring.close()
        assert await task  # one frame still pending
        assert len(cur.take(1 << 20)) == 1
        assert await cur.wait() is False


async def test_ring_close_wakes_a_cursor_waiting_for_its_first_cut() -> None:
    ring = Ring()
    with ring.subscribe() as cur:
        task = asyncio.create_task(cur.wait())
        await asyncio.sleep(0)
        ring.close()
        assert await task is False


async def test_closing_a_cursor_wakes_its_waiter_and_unregisters_it() -> None:
    ring = Ring()
    cur = ring.subscribe()
    task = asyncio.create_task(cur.wait())
    await asyncio.sleep(0)
    cur.close()
    cur.close()
    assert await task is False
    assert len(ring) == 0
    assert cur.take(100) == []


async def test_cancelling_one_waiter_does_not_disturb_the_others() -> None:
    ring = Ring()
    src = Source(gop=4)
    src.publish(ring, 4)
    a, b = ring.subscribe(), ring.subscribe()
    a.take(1 << 20)
    b.take(1 << 20)
    ta, tb = asyncio.create_task(a.wait()), asyncio.create_task(b.wait())
    await asyncio.sleep(0)
    ta.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert ta.cancelled()
    assert not tb.done()
    src.publish(ring, 1)
    assert await tb
    with a, b:
        pass
    assert len(ring) == 0


async def test_leaving_the_block_by_cancellation_unregisters() -> None:
    ring = Ring()

    async def client() -> None:
        async with ring.subscribe() as cur:
            await cur.wait()

    task = asyncio.create_task(client())
    await asyncio.sleep(0)
    assert len(ring) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(ring) == 0
    assert T0 > 0


@pytest.mark.parametrize("kernel_bytes", [64_000, 150_000])
@pytest.mark.parametrize("reader_bps", [50_000, 100_000])
def test_a_deep_kernel_queue_adds_its_drain_time_to_the_lag(
    kernel_bytes: int, reader_bps: int
) -> None:
    # Bytes already in the kernel cannot be dropped: they add the time the peer needs
    # to read them. Endpoints keep SO_SNDBUF small for maxlag clients.
    cur, max_lag, gop_ns = _simulate(
        maxlag_ms=1000, reader_bps=reader_bps, kernel_bytes=kernel_bytes, steps=25 * 120
    )
    drain_ns = kernel_bytes * NS_PER_SECOND // reader_bps
    assert max_lag <= 1000 * MS + gop_ns + drain_ns
    assert cur.cuts > 0


async def test_a_parked_cursor_gets_frames_from_publish_until_its_writer_hands_back() -> None:
    ring = Ring()
    src = Source(gop=12)
    src.publish(ring, 12)
    written: list[list[object]] = []
    keep = True

    with ring.subscribe() as cur:

        def deliver() -> bool:
            written.append(list(cur.take(1 << 20)))
            return keep

        cur.set_deliver(deliver)
        assert cur.take(1 << 20)  # the join: the coroutine path
        task = asyncio.create_task(cur.wait())
        await asyncio.sleep(0)
        frames = src.publish(ring, 3)
        await asyncio.sleep(0)
        # Written from publish, one frame each, without waking the waiter.
        assert [w[0] for w in written] == [f.payload for f in frames]
        assert not task.done()
        keep = False
        src.publish(ring, 1)
        assert await asyncio.wait_for(task, 1) is True  # handed back: the loop takes over
        assert cur.take(1 << 20) == []  # the writer took it already
        task = asyncio.create_task(cur.wait())
        await asyncio.sleep(0)
        ring.close()
        assert await asyncio.wait_for(task, 1) is False  # closed and drained


def test_a_new_upstream_connection_makes_every_reader_join_again() -> None:
    ring = Ring()
    old = Source(gop=12)
    old.publish(ring, 12)
    with ring.subscribe() as cur:
        cur.take(1 << 20)
        old.publish(ring, 5)  # the old connection's next GOP begins
        assert len(cur.take(1)) == 1  # four of its pictures not taken yet
        # The camera reconnects: Frame.seq restarts at 0 with an open GOP whose leading
        # B-pictures reference the old connection's pictures.
        new = Source(gop=12, open_gop=True)
        new.n = 0
        frames = new.publish(ring, 16)
        out = cur.take(1 << 20)
        assert frames[0].cut is not None
        assert out[0] is frames[0].cut.join  # joined again, at the new first cut point
        # The old connection's untaken pictures were dropped (skipped), nothing else was.
        assert len(out) == 16
        assert cur.skipped == 4
        assert cur.cuts == 0
