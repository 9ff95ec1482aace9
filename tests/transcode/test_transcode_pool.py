"""VariantPool: one transcoder per distinct variant, refcounted, linger, bounds, snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.demux.codec import jpeg_size
from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.media import Frame
from gateway.transcode import (
    ImageParams,
    JpegTranscoder,
    VariantLimitError,
    VariantPool,
)
from tests.transcode.images import detailed, encode_jpeg, frame

SMALL = ImageParams(resolution=(80, 60))
GRAY = ImageParams(colorlevel=0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A pool with a fake clock, recording sinks, starts and stops."""

    def __init__(self, **kwargs: object) -> None:
        self.clock = FakeClock()
        self.outputs: dict[ImageParams, list[Frame]] = {}
        self.created: list[JpegTranscoder] = []
        self.stopped: list[ImageParams] = []
        loop = asyncio.get_running_loop()

        def factory(params: ImageParams, sink: object) -> JpegTranscoder:
            assert callable(sink)
            transcoder = JpegTranscoder(params, sink, loop=loop)
            self.created.append(transcoder)
            return transcoder

        def sink_factory(params: ImageParams) -> object:
            return self.outputs.setdefault(params, []).append

        self.pool = VariantPool(
            sink_factory,  # type: ignore[arg-type]
            loop=loop,
            clock=self.clock,
            on_stopped=self.stopped.append,
            transcoder_factory=factory,
            **kwargs,  # type: ignore[arg-type]
        )

    async def settle(self) -> None:
        async with asyncio.timeout(5):
            for transcoder in self.created:
                await transcoder.wait_idle()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(linger=2.0)
    yield h
    await h.pool.aclose()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return encode_jpeg(detailed())


async def test_twenty_clients_share_one_transcoder(harness: Harness, jpeg: bytes) -> None:
    pool = harness.pool
    handles = [pool.acquire(ImageParams(resolution=(80, 60))) for _ in range(20)]
    assert len(harness.created) == 1
    assert len(pool) == 1
    assert {h.transcoder for h in handles} == {harness.created[0]}
    for seq in range(3):
        pool.submit(frame(jpeg, seq))
        await harness.settle()
    transcoder = harness.created[0]
    assert transcoder.counters.frames_in == 3  # each frame transcoded once, not 20 times
    assert [f.seq for f in harness.outputs[SMALL]] == [0, 1, 2]
    assert all(h.latest is harness.outputs[SMALL][-1] for h in handles)
    stats = pool.stats()
    variants = stats["variants"]
    assert isinstance(variants, list)
    assert variants[0]["params"] == "80x60"
    assert variants[0]["clients"] == 20
    assert variants[0]["state"] == "active"
    assert variants[0]["frames_out"] == 3

    for handle in handles[:19]:
        handle.release()
    assert pool.get_timer() is None
    with handles[19]:
        pass
    assert handles[19].released
    assert pool.get_timer() == harness.clock.now + 2.0
    assert pool.stats()["variants"] == [{**variants[0], "clients": 0, "state": "lingering"}]
    pool.handle_timer(harness.clock.now + 1.999)
    assert len(pool) == 1
    pool.handle_timer(harness.clock.now + 2.0)
    assert len(pool) == 0
    assert transcoder.closed
    assert harness.stopped == [SMALL]
    assert (pool.started, pool.stopped) == (1, 1)


async def test_release_is_idempotent(harness: Harness) -> None:
    a = harness.pool.acquire(SMALL)
    b = harness.pool.acquire(SMALL)
    a.release()
    a.release()
    assert harness.pool.get_timer() is None  # b still holds it
    b.release()
    assert harness.pool.get_timer() is not None


async def test_reacquire_while_lingering_keeps_the_variant(harness: Harness) -> None:
    harness.pool.acquire(SMALL).release()
    harness.clock.now += 1.0
    again = harness.pool.acquire(SMALL)
    assert len(harness.created) == 1
    assert harness.pool.get_timer() is None
    harness.pool.handle_timer(harness.clock.now + 100)
    assert len(harness.pool) == 1
    again.release()


async def test_unused_variants_are_not_fed(harness: Harness, jpeg: bytes) -> None:
    harness.pool.acquire(SMALL).release()
    harness.pool.submit(frame(jpeg, 0))
    assert harness.created[0].counters.frames_in == 0


async def test_linger_timer_stops_the_variant_on_the_loop() -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    pool = VariantPool(
        lambda _: lambda _: None, loop=loop, linger=0.01, on_stopped=lambda _: stopped.set()
    )
    pool.acquire(SMALL).release()
    assert len(pool) == 1
    async with asyncio.timeout(2):
        await stopped.wait()
    assert len(pool) == 0
    await pool.aclose()


async def test_zero_linger_stops_at_once() -> None:
    pool = VariantPool(lambda _: lambda _: None, loop=asyncio.get_running_loop(), linger=0)
    pool.acquire(GRAY).release()
    assert (len(pool), pool.started, pool.stopped) == (0, 1, 1)
    await pool.aclose()


async def test_variant_bound_refuses_with_a_reason() -> None:
    h = Harness(max_variants=2)
    a = h.pool.acquire(SMALL)
    b = h.pool.acquire(GRAY)
    with pytest.raises(VariantLimitError, match=r"too many image variants .* \(limit 2\)"):
        h.pool.acquire(ImageParams(rotation=90))
    assert issubclass(VariantLimitError, RemoteProtocolError)
    # An unused (lingering) variant makes room for a new one.
    b.release()
    h.pool.acquire(ImageParams(rotation=90))
    assert h.stopped == [GRAY]
    assert len(h.pool) == 2
    a.release()
    await h.pool.aclose()


async def test_passthrough_and_closed_pool_are_caller_errors(harness: Harness) -> None:
    with pytest.raises(LocalProtocolError, match="pass-through"):
        harness.pool.acquire(ImageParams())
    await harness.pool.aclose()
    with pytest.raises(LocalProtocolError, match="closed"):
        harness.pool.acquire(SMALL)


async def test_bad_pool_bounds_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        VariantPool(lambda _: lambda _: None, loop=asyncio.get_running_loop(), max_variants=0)


async def test_aclose_stops_everything_and_waits(harness: Harness, jpeg: bytes) -> None:
    handle = harness.pool.acquire(SMALL)
    harness.pool.acquire(GRAY)
    harness.pool.submit(frame(jpeg, 0))
    await harness.pool.aclose()
    assert len(harness.pool) == 0
    assert all(t.closed and t.frames_held == 0 for t in harness.created)
    assert sorted(map(str, harness.stopped)) == sorted(map(str, [SMALL, GRAY]))
    handle.release()  # after close: harmless


async def test_snapshot_with_params_is_shared_per_frame(harness: Harness, jpeg: bytes) -> None:
    source = frame(jpeg, 5)
    results = await asyncio.gather(*(harness.pool.snapshot(SMALL, source) for _ in range(5)))
    assert all(jpeg_size(r.payload) == (80, 60) for r in results)
    assert all(
        (r.seq, r.received_ns, r.content_type) == (5, source.received_ns, "image/jpeg")
        for r in results
    )
    assert (harness.pool.snapshots_transcoded, harness.pool.snapshots_shared) == (1, 4)
    assert harness.created == []  # a snapshot starts no variant


async def test_snapshot_served_from_a_running_variant(harness: Harness, jpeg: bytes) -> None:
    handle = harness.pool.acquire(SMALL)
    source = frame(jpeg, 3)
    harness.pool.submit(source)
    await harness.settle()
    out = await harness.pool.snapshot(SMALL, source)
    assert out is handle.latest
    assert harness.pool.snapshots_from_variant == 1
    handle.release()


async def test_snapshot_passthrough_and_errors(harness: Harness, jpeg: bytes) -> None:
    source = frame(jpeg, 1)
    assert await harness.pool.snapshot(ImageParams(), source) is source
    with pytest.raises(RemoteProtocolError, match="not a JPEG"):
        await harness.pool.snapshot(SMALL, frame(b"junk", 2))


async def test_snapshot_job_bound(jpeg: bytes) -> None:
    h = Harness(max_snapshot_jobs=1)
    first = asyncio.ensure_future(h.pool.snapshot(SMALL, frame(jpeg, 1)))
    await asyncio.sleep(0)
    with pytest.raises(VariantLimitError, match=r"limit 1"):
        await h.pool.snapshot(SMALL, frame(jpeg, 2))
    assert jpeg_size((await first).payload) == (80, 60)
    await h.pool.aclose()
