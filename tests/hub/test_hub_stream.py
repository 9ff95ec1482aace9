"""Stream fan-out: latest-wins slots, context-managed removal, O(1) publish, wanted_fps."""

from __future__ import annotations

import asyncio
import sys
import tracemalloc

import pytest

from gateway.errors import LocalProtocolError
from gateway.hub import Priority, Stream, StreamFullError, Subscription, received_ns
from gateway.media import NS_PER_SECOND, Frame, StreamKind

PERIOD_25 = 90_000 // 25  # one 25 fps frame interval in 90 kHz ticks


def frame(seq: int, *, size: int = 100, ticks: int = PERIOD_25) -> Frame:
    """Return frame ``seq`` of a regular source (``ticks`` per frame)."""
    return Frame(bytes(size), "image/jpeg", seq, pts=seq * ticks)


def make_stream(**kwargs: object) -> Stream:
    return Stream(StreamKind.MJPEG, **kwargs)  # type: ignore[arg-type]


def test_slow_consumer_gets_the_newest_frame_never_a_backlog() -> None:
    stream = make_stream()
    with stream.subscribe() as sub:
        frames = [frame(i) for i in range(10)]
        for f in frames:
            stream.publish(f)
        assert sub.pending is frames[-1]
        assert sub.poll() is frames[-1]
        assert sub.poll() is None
        assert (sub.delivered, sub.skipped) == (1, 9)


def test_slow_rate_limited_consumer_is_freshened_with_newer_frames() -> None:
    stream = make_stream()
    with stream.subscribe(target_fps=1) as sub:
        frames = [frame(i) for i in range(60)]
        for f in frames:
            stream.publish(f)
        # Due at 0 s, 1 s, 2 s; taken late: the newest frame, and the missed dues count.
        assert sub.poll() is frames[-1]
        assert sub.skipped == 2


def test_new_subscriber_starts_with_the_newest_frame() -> None:
    stream = make_stream()
    stream.publish(frame(0))
    stream.publish(f1 := frame(1))
    with stream.subscribe() as sub, stream.subscribe(start_with_latest=False) as cold:
        assert sub.pending is f1
        assert cold.pending is None


async def test_next_waits_for_publish_and_none_after_close() -> None:
    stream = make_stream()
    async with stream.subscribe() as sub:
        task = asyncio.create_task(sub.next())
        await asyncio.sleep(0)
        assert not task.done()
        stream.publish(f := frame(0))
        assert await task is f
        stream.publish(g := frame(1))
        stream.close()
        assert await sub.next() is g  # the pending frame first
        assert await sub.next() is None
        assert sub.closed


async def test_next_returns_none_when_the_subscription_closes() -> None:
    stream = make_stream()
    sub = stream.subscribe()
    task = asyncio.create_task(sub.next())
    await asyncio.sleep(0)
    sub.close()
    assert await task is None
    sub.close()  # idempotent
    assert len(stream) == 0


async def test_second_concurrent_next_is_a_local_error() -> None:
    stream = make_stream()
    with stream.subscribe() as sub:
        task = asyncio.create_task(sub.next())
        await asyncio.sleep(0)
        with pytest.raises(LocalProtocolError, match="already"):
            await sub.next()
        task.cancel()


def test_removed_when_the_block_raises() -> None:
    stream = make_stream()

    def client() -> Subscription:
        with stream.subscribe() as sub:
            assert len(stream) == 1
            raise RuntimeError(sub)

    with pytest.raises(RuntimeError) as caught:
        client()
    sub = caught.value.args[0]
    assert len(stream) == 0
    assert sub.closed
    assert sub.pending is None


async def test_removed_when_the_client_task_is_cancelled() -> None:
    stream = make_stream()
    got: list[Frame | None] = []

    async def client() -> None:
        async with stream.subscribe() as sub:
            while True:
                got.append(await sub.next())

    task = asyncio.create_task(client())
    await asyncio.sleep(0)
    stream.publish(frame(0))
    await asyncio.sleep(0)
    assert len(stream) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(stream) == 0
    assert len(got) == 1
    stream.publish(frame(1))  # nobody left to offer it to


def test_publish_with_1000_stalled_subscribers_holds_one_slot_each() -> None:
    stream = make_stream()
    subs = [stream.subscribe(kind="mjpeg", remote=f"10.0.0.{i}") for i in range(1000)]
    stream.publish(frame(0))
    old = frame(1)
    base_refs = sys.getrefcount(old)
    stream.publish(old)
    assert sys.getrefcount(old) == base_refs + 1000 + 1  # slots, latest
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(2, 202):
            stream.publish(frame(i))
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # The replaced frame is referenced by nobody: no queue anywhere.
    assert sys.getrefcount(old) == base_refs
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    # 200 frames to 1000 subscribers grew nothing per subscriber or per frame.
    assert grown < 64 * 1024
    assert all(s.pending is stream.latest for s in subs)
    assert {s.skipped for s in subs} == {201}
    for s in subs:
        s.close()
    assert len(stream) == 0


def wanted(stream: Stream) -> float | None:
    """Read ``wanted_fps`` through a call, so mypy does not narrow it between asserts."""
    return stream.wanted_fps


def test_wanted_fps_follows_subscribers() -> None:
    seen: list[float | None] = []
    stream = make_stream(on_wanted_fps=seen.append)
    assert wanted(stream) is None
    a = stream.subscribe(target_fps=5)
    b = stream.subscribe(target_fps=10, priority=Priority.REQUIRED)
    c = stream.subscribe(target_fps=2)
    assert wanted(stream) == 10
    b.close()
    assert wanted(stream) == 5
    d = stream.subscribe()  # unspecified: the source rate
    assert wanted(stream) is None
    d.close()
    a.set_target(15)
    assert wanted(stream) == 15
    a.close()
    c.close()
    assert wanted(stream) is None
    assert seen == [5, 10, 5, None, 5, 15, 2, None]


async def test_first_frame_waits_for_the_first_publish() -> None:
    stream = make_stream()
    task = asyncio.create_task(stream.first_frame())
    await asyncio.sleep(0)
    assert not task.done()
    stream.publish(f := frame(0))
    assert await task is f
    assert await stream.first_frame() is f
    empty = make_stream()
    task = asyncio.create_task(empty.first_frame())
    await asyncio.sleep(0)
    empty.close()
    assert await task is None


async def test_cancelled_first_frame_leaves_no_waiter() -> None:
    stream = make_stream()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stream.first_frame(), 0.001)
    assert stream._frame_waiters == []


def test_max_subscribers_and_closed_stream_errors() -> None:
    stream = make_stream(max_subscribers=1)
    with stream.subscribe(), pytest.raises(StreamFullError, match="1 subscribers"):
        stream.subscribe()
    stream.close()
    with pytest.raises(LocalProtocolError, match="closed"):
        stream.subscribe()
    with pytest.raises(LocalProtocolError, match="closed"):
        stream.publish(frame(0))


def consume(stream: Stream, subs: list[Subscription], frames: list[Frame]) -> list[list[int]]:
    """Publish ``frames``, each subscriber taking its frame at once; return seqs taken."""
    taken: list[list[int]] = [[] for _ in subs]
    for f in frames:
        stream.publish(f)
        for got, sub in zip(taken, subs, strict=True):
            g = sub.poll()
            if g is not None:
                got.append(g.seq)
    return taken


@pytest.mark.parametrize(("source", "ticks"), [(25, 3600), (30, 3000)])
def test_each_subscriber_gets_its_own_rate_from_one_stream(source: int, ticks: int) -> None:
    stream = make_stream()
    targets = [1, 2, 5, 10, 15, 25, None]
    subs = [stream.subscribe(target_fps=t) for t in targets]
    taken = consume(stream, subs, [frame(i, ticks=ticks) for i in range(10 * source)])
    for target, got in zip(targets, taken, strict=True):
        want = 10 * (target or source)
        assert abs(len(got) - want) <= 0.05 * want
    snap = stream.snapshot()
    assert [c["delivered_fps"] for c in snap] == pytest.approx(
        [1, 2, 5, 10, 15, 25, source], rel=0.05
    )
    assert all(c["skipped"] == 0 for c in snap)


def test_received_ns_clock_and_snapshot_shape() -> None:
    stream = Stream(StreamKind.MJPEG, timestamp=received_ns)
    sub = stream.subscribe(target_fps=5, kind="jpeg", remote="192.0.2.1:5000")
    frames = [
        Frame(b"x" * 10, "image/jpeg", i, pts=0, received_ns=i * 40_000_000) for i in range(250)
    ]
    taken = consume(stream, [sub], frames)[0]
    assert len(taken) == 50
    sub.record_lag(1_500_000)
    sub.record_cut()
    snap = stream.snapshot()[0]
    assert snap == {
        "kind": "jpeg",
        "remote": "192.0.2.1:5000",
        "target_fps": 5,
        "priority": "desired",
        "delivered_fps": 5.0,
        "skipped": 0,
        "lag_ms": 1,
        "cuts": 1,
        "delivered": 50,
        "allowed_fps": None,
        "stream": "mjpeg",
    }
    # A client that stops taking frames shows 0 fps once two windows have passed.
    for i in range(250, 400):
        stream.publish(Frame(b"x", "image/jpeg", i, pts=0, received_ns=i * 40_000_000))
    assert stream.snapshot()[0]["delivered_fps"] == 0.0
    assert stream.source_fps == pytest.approx(25)
    assert stream._interval.interval_ns == NS_PER_SECOND // 25


def test_deliver_takes_due_frames_from_publish_and_declined_ones_go_to_the_slot() -> None:
    stream = make_stream()
    taken: list[Frame] = []
    accept = True

    def deliver(f: Frame) -> bool:
        if accept:
            taken.append(f)
        return accept

    with stream.subscribe(target_fps=12.5, start_with_latest=False) as sub:
        sub.set_deliver(deliver)
        frames = [frame(i) for i in range(4)]
        for f in frames:
            stream.publish(f)
        # Every other frame is due at 12.5 of 25 fps; taken ones count as delivered.
        assert taken == [frames[0], frames[2]]
        assert (sub.pending, sub.delivered, sub.skipped) == (None, 2, 0)
        accept = False
        for i in range(4, 8):
            stream.publish(frames_late := frame(i))
        # Declined: latest-wins in the slot as without a deliver callback.
        assert sub.pending is frames_late
        assert (sub.delivered, sub.skipped) == (2, 1)
        accept = True
        stream.publish(frame(8))
        assert len(taken) == 2  # the slot is full: publish does not call deliver
        sub.set_deliver(None)
        assert sub.poll() is not None
        stream.publish(frame(10))
        assert len(taken) == 2
        assert sub.pending is not None


async def test_wait_returns_on_a_frame_on_wake_and_on_close() -> None:
    stream = make_stream()
    with stream.subscribe() as sub:
        task = asyncio.create_task(sub.wait())
        await asyncio.sleep(0)
        assert not task.done()
        sub.wake()
        await asyncio.wait_for(task, 1)
        task = asyncio.create_task(sub.wait())
        await asyncio.sleep(0)
        stream.publish(frame(0))
        await asyncio.wait_for(task, 1)
        await sub.wait()  # a frame is pending: no wait
        assert sub.poll() is not None
        task = asyncio.create_task(sub.wait())
        await asyncio.sleep(0)
        stream.close()
        await asyncio.wait_for(task, 1)
