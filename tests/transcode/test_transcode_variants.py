"""JPEG variants as camera renditions: shared, refcounted, linger, bounds; snapshot jobs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.config import CameraConfig
from gateway.demux.codec import jpeg_size
from gateway.errors import CapacityError, LocalProtocolError, RemoteProtocolError
from gateway.hub import (
    CameraMedia,
    RenditionHandle,
    RenditionKey,
    Renditions,
    RenditionSpec,
    Subscription,
)
from gateway.media import Frame, StreamKind
from gateway.transcode import (
    JPEG_KIND,
    ImageParams,
    JpegTranscoder,
    JpegVariant,
    SnapshotJobs,
    jpeg_key,
)
from tests.transcode.images import detailed, encode_jpeg, frame

CAMERA = CameraConfig(name="cam", index=1, source="sim")
SMALL = ImageParams(resolution=(80, 60))
GRAY = ImageParams(colorlevel=0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A camera's media making JPEG variants, with a fake clock, recording starts and stops."""

    def __init__(
        self,
        *,
        linger: float = 2.0,
        max_variants: int = 8,
        max_jobs: int = 8,
        real_clock: bool = False,
    ) -> None:
        self.clock = FakeClock()
        self.stopped_any = asyncio.Event()
        self.created: list[JpegTranscoder] = []
        self.stopped: list[ImageParams] = []
        self.outputs: dict[ImageParams, list[Frame]] = {}
        self.subs: list[Subscription] = []
        loop = asyncio.get_running_loop()

        def transcoder(params: ImageParams, out: Callable[[Frame], None]) -> JpegTranscoder:
            def record(frame: Frame) -> None:
                self.outputs.setdefault(params, []).append(frame)
                out(frame)

            made = JpegTranscoder(params, record, loop=loop)
            self.created.append(made)
            return made

        def variant(key: RenditionKey[Any]) -> JpegVariant:
            assert isinstance(key.params, ImageParams)
            made = JpegVariant(self.media, key.params, transcoder_factory=transcoder)
            stop = made.stop

            def recorded_stop() -> None:
                self.stopped.append(made.params)
                self.stopped_any.set()
                stop()

            made.stop = recorded_stop  # type: ignore[method-assign]
            return made

        def specs(media: CameraMedia) -> dict[str, RenditionSpec]:
            spec = RenditionSpec(
                variant, linger=linger, max_live=max_variants, noun="image variants"
            )
            return {JPEG_KIND: spec}

        clock = None if real_clock else self.clock
        self.media = CameraMedia(CAMERA, loop=loop, specs=specs, clock=clock)
        self.pool = self.media.renditions
        self.snapshots = SnapshotJobs(loop=loop, max_jobs=max_jobs)
        self.feed = self.media.on_frame(StreamKind.MJPEG)

    def acquire(self, params: ImageParams) -> RenditionHandle[JpegVariant]:
        """Claim the variant and read its stream, as an MJPEG client does."""
        handle = self.pool.acquire(jpeg_key(params))
        self.subs.append(handle.rendition.stream.subscribe())
        return handle

    async def settle(self) -> None:
        async with asyncio.timeout(5):
            for transcoder in self.created:
                await transcoder.wait_idle()

    async def aclose(self) -> None:
        await self.media.aclose()
        await self.snapshots.aclose()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness(linger=2.0)
    yield h
    await h.aclose()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return encode_jpeg(detailed())


async def test_twenty_clients_share_one_transcoder(harness: Harness, jpeg: bytes) -> None:
    pool = harness.pool
    handles = [harness.acquire(ImageParams(resolution=(80, 60))) for _ in range(20)]
    assert len(harness.created) == 1
    assert len(pool) == 1
    assert {h.rendition.transcoder for h in handles} == {harness.created[0]}
    for seq in range(3):
        harness.feed(frame(jpeg, seq))
        await harness.settle()
    transcoder = harness.created[0]
    assert transcoder.counters.frames_in == 3  # each frame transcoded once, not 20 times
    assert [f.seq for f in harness.outputs[SMALL]] == [0, 1, 2]
    assert all(h.rendition.latest is harness.outputs[SMALL][-1] for h in handles)
    variants = pool.stats("jpeg")
    assert variants[0]["params"] == "80x60"
    assert variants[0]["claims"] == 20
    assert variants[0]["clients"] == 20
    assert variants[0]["state"] == "active"
    assert variants[0]["frames_out"] == 3

    for sub in harness.subs:
        sub.close()
    for handle in handles[:19]:
        handle.release()
    assert pool.get_timer() is None
    with handles[19]:
        pass
    assert handles[19].released
    assert pool.get_timer() == harness.clock.now + 2.0
    lingering = {**variants[0], "claims": 0, "clients": 0, "consumers": 0, "state": "lingering"}
    assert pool.stats("jpeg") == [lingering]
    pool.handle_timer(harness.clock.now + 1.999)
    assert len(pool) == 1
    pool.handle_timer(harness.clock.now + 2.0)
    assert len(pool) == 0
    assert transcoder.closed
    assert harness.stopped == [SMALL]
    assert (pool.started["jpeg"], pool.stopped["jpeg"]) == (1, 1)


async def test_release_is_idempotent(harness: Harness) -> None:
    a = harness.acquire(SMALL)
    b = harness.acquire(SMALL)
    a.release()
    a.release()
    assert harness.pool.get_timer() is None  # b still holds it
    b.release()
    assert harness.pool.get_timer() is not None


async def test_reacquire_while_lingering_keeps_the_variant(harness: Harness) -> None:
    harness.acquire(SMALL).release()
    harness.clock.now += 1.0
    again = harness.acquire(SMALL)
    assert len(harness.created) == 1
    assert harness.pool.get_timer() is None
    harness.pool.handle_timer(harness.clock.now + 100)
    assert len(harness.pool) == 1
    again.release()


async def test_unused_variants_are_not_fed(harness: Harness, jpeg: bytes) -> None:
    harness.pool.acquire(jpeg_key(SMALL)).release()
    harness.feed(frame(jpeg, 0))
    assert harness.created[0].counters.frames_in == 0


async def test_linger_timer_stops_the_variant_on_the_loop() -> None:
    h = Harness(linger=0.01, real_clock=True)
    h.acquire(SMALL).release()
    assert len(h.pool) == 1
    async with asyncio.timeout(2):
        await h.stopped_any.wait()
    assert len(h.pool) == 0
    assert h.stopped == [SMALL]
    await h.aclose()


async def test_zero_linger_stops_at_once() -> None:
    h = Harness(linger=0)
    h.acquire(GRAY).release()
    pool = h.pool
    assert (len(pool), pool.started["jpeg"], pool.stopped["jpeg"]) == (0, 1, 1)
    await h.aclose()


async def test_variant_bound_refuses_with_a_reason() -> None:
    h = Harness(max_variants=2)
    a = h.acquire(SMALL)
    b = h.acquire(GRAY)
    with pytest.raises(CapacityError, match=r"too many image variants .* \(limit 2\)"):
        h.acquire(ImageParams(rotation=90))
    # An unused (lingering) variant makes room for a new one.
    b.release()
    h.acquire(ImageParams(rotation=90))
    assert h.stopped == [GRAY]
    assert len(h.pool) == 2
    a.release()
    await h.aclose()


async def test_passthrough_and_closed_pool_are_caller_errors(harness: Harness) -> None:
    with pytest.raises(LocalProtocolError, match="pass-through"):
        harness.acquire(ImageParams())
    await harness.pool.aclose()
    with pytest.raises(LocalProtocolError, match="closed"):
        harness.acquire(SMALL)


async def test_bad_pool_bounds_are_refused() -> None:
    spec = RenditionSpec(lambda _: None, max_live=0)  # type: ignore[arg-type,return-value]
    with pytest.raises(LocalProtocolError):
        Renditions({"jpeg": spec}, clock=FakeClock())
    with pytest.raises(LocalProtocolError):
        SnapshotJobs(loop=asyncio.get_running_loop(), max_jobs=0)


async def test_aclose_stops_everything_and_waits(harness: Harness, jpeg: bytes) -> None:
    handle = harness.acquire(SMALL)
    harness.acquire(GRAY)
    harness.feed(frame(jpeg, 0))
    await harness.pool.aclose()
    assert len(harness.pool) == 0
    assert all(t.closed and t.frames_held == 0 for t in harness.created)
    assert sorted(map(str, harness.stopped)) == sorted(map(str, [SMALL, GRAY]))
    handle.release()  # after close: harmless


async def test_snapshot_with_params_is_shared_per_frame(harness: Harness, jpeg: bytes) -> None:
    source = frame(jpeg, 5)
    jobs = harness.snapshots
    results = await asyncio.gather(*(jobs.snapshot(SMALL, source) for _ in range(5)))
    assert all(jpeg_size(r.payload) == (80, 60) for r in results)
    assert all(
        (r.seq, r.received_ns, r.content_type) == (5, source.received_ns, "image/jpeg")
        for r in results
    )
    assert (jobs.transcoded, jobs.shared) == (1, 4)
    assert harness.created == []  # a snapshot starts no variant


async def test_snapshot_served_from_a_running_variant(harness: Harness, jpeg: bytes) -> None:
    handle = harness.acquire(SMALL)
    source = frame(jpeg, 3)
    harness.feed(source)
    await harness.settle()
    out = await harness.snapshots.snapshot(SMALL, source, handle.rendition)
    assert out is handle.rendition.latest
    assert harness.snapshots.from_variant == 1
    handle.release()


async def test_snapshot_passthrough_and_errors(harness: Harness, jpeg: bytes) -> None:
    source = frame(jpeg, 1)
    assert await harness.snapshots.snapshot(ImageParams(), source) is source
    with pytest.raises(RemoteProtocolError, match="not a JPEG"):
        await harness.snapshots.snapshot(SMALL, frame(b"junk", 2))


async def test_snapshot_job_bound(jpeg: bytes) -> None:
    h = Harness(max_jobs=1)
    first = asyncio.ensure_future(h.snapshots.snapshot(SMALL, frame(jpeg, 1)))
    await asyncio.sleep(0)
    with pytest.raises(CapacityError, match=r"limit 1"):
        await h.snapshots.snapshot(SMALL, frame(jpeg, 2))
    assert jpeg_size((await first).payload) == (80, 60)
    await h.aclose()
