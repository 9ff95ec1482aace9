"""On-demand cameras in the hub: the open/close policy, who counts as a consumer, the media."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest

from gateway.config import CameraConfig
from gateway.errors import LocalProtocolError
from gateway.hub import CameraMedia, RenditionHandle, RenditionKey, Renditions, RenditionSpec
from gateway.hub.demand import SourceDemand
from gateway.media import CutPoint, Frame, StreamKind

MJPEG, MPEG2, AUDIO = StreamKind.MJPEG, StreamKind.MPEG2, StreamKind.AUDIO
CAMERA = CameraConfig(name="cam", index=1, source="http://camera", mjpeg=True, audio=True)
ON_DEMAND = replace(CAMERA, on_demand=True, idle_seconds=10.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeUpstream:
    """Records what the media asks of one stream's ingest."""

    def __init__(self) -> None:
        self.resolution: tuple[int, int] | None = None
        self.calls: list[str] = []
        self.running = False
        self.paused = asyncio.Event()

    def set_fps(self, fps: int | None) -> None:
        self.calls.append(f"fps {fps}")

    def resume(self) -> None:
        self.calls.append("resume")
        self.running = True

    def pause(self) -> None:
        self.calls.append("pause")
        self.running = False
        self.paused.set()


class FakeRendition:
    """A producer that does nothing; an ``inner`` kind is claimed while it runs."""

    def __init__(self, registry: Callable[[], Renditions], inner: str | None = None) -> None:
        self.stopped = False
        self._inner: RenditionHandle[Any] | None = None
        if inner is not None:
            self._inner = registry().acquire(RenditionKey(inner))

    def stop(self) -> None:
        self.stopped = True
        if self._inner is not None:
            self._inner.release()

    async def wait_stopped(self) -> None:
        pass

    def busy(self) -> bool:
        return False

    def stats(self) -> dict[str, object]:
        return {}

    def consumers(self) -> int:
        return 0

    def upstream_fps(self) -> tuple[StreamKind, float | None] | None:
        return None


H264: RenditionKey[FakeRendition] = RenditionKey("h264")
PCM: RenditionKey[FakeRendition] = RenditionKey("pcm")
AAC: RenditionKey[FakeRendition] = RenditionKey("aac")


def specs(registry: Callable[[], Renditions], linger: float = 5.0) -> dict[str, RenditionSpec]:
    """Return an encode of MJPEG, a PCM decode of audio, and an AAC encode of the PCM."""
    return {
        "h264": RenditionSpec(lambda _: FakeRendition(registry), linger=linger, source=MJPEG),
        "pcm": RenditionSpec(lambda _: FakeRendition(registry), linger=0, source=AUDIO),
        "aac": RenditionSpec(lambda _: FakeRendition(registry, "pcm"), linger=linger),
    }


def frame(seq: int = 0) -> Frame:
    return Frame(
        payload=b"x" * 10,
        content_type="image/jpeg",
        seq=seq,
        pts=seq * 3600,
        time_base=Fraction(1, 90_000),
        received_ns=seq * 40_000_000,
        cut=CutPoint(),
    )


class Camera:
    """A camera's media with fake upstreams and a fake clock."""

    def __init__(self, config: CameraConfig = ON_DEMAND, linger: float = 5.0) -> None:
        self.clock = FakeClock()
        self.media = CameraMedia(
            config,
            loop=asyncio.get_running_loop(),
            specs=lambda media: specs(lambda: media.renditions, linger),
            clock=self.clock,
        )
        self.upstreams = {kind: FakeUpstream() for kind in self.media.kinds}
        for kind, upstream in self.upstreams.items():
            self.media.attach(kind, upstream)

    def running(self) -> dict[StreamKind, bool]:
        return {kind: upstream.running for kind, upstream in self.upstreams.items()}

    def later(self, seconds: float) -> None:
        self.clock.now += seconds
        self.media.check_idle(self.clock.now)


# -- the policy ------------------------------------------------------------------------


def test_a_stream_opens_on_its_first_consumer_and_closes_idle_seconds_after_the_last() -> None:
    demand = SourceDemand([MJPEG, AUDIO], idle_seconds=10.0)
    assert demand.update({}, 0.0) == []
    assert demand.get_timer() is None
    assert demand.update({MJPEG: 1}, 1.0) == [MJPEG]
    assert demand.update({MJPEG: 3}, 2.0) == []  # opened once, whatever the count
    assert demand.get_timer() is None
    assert demand.update({MJPEG: 0}, 5.0) == []
    assert demand.get_timer() == 15.0
    assert demand.handle_timer(14.999) == []
    assert demand.is_open(MJPEG)
    assert demand.handle_timer(15.0) == [MJPEG]
    assert not demand.is_open(MJPEG)
    assert demand.get_timer() is None
    assert demand.stats(MJPEG)["on_demand"] == {
        "open": False,
        "closing": False,
        "opened": 1,
        "closed": 1,
        "idle_seconds": 10.0,
    }


def test_a_consumer_within_the_linger_keeps_the_stream_open() -> None:
    demand = SourceDemand([MJPEG], idle_seconds=10.0)
    demand.update({MJPEG: 1}, 0.0)
    demand.update({MJPEG: 0}, 1.0)
    assert demand.update({MJPEG: 1}, 8.0) == []  # no reopen: it never closed
    assert demand.get_timer() is None
    demand.update({MJPEG: 0}, 9.0)
    assert demand.get_timer() == 19.0  # the linger counts from the last one leaving
    assert demand.handle_timer(11.0) == []


def test_streams_are_independent() -> None:
    demand = SourceDemand([MJPEG, MPEG2, AUDIO], idle_seconds=1.0)
    assert demand.update({MJPEG: 1, AUDIO: 2}, 0.0) == [MJPEG, AUDIO]
    demand.update({MJPEG: 1}, 1.0)
    assert demand.handle_timer(2.0) == [AUDIO]
    assert demand.is_open(MJPEG)
    assert not demand.is_open(MPEG2)


def test_zero_idle_seconds_still_closes_through_the_timer() -> None:
    demand = SourceDemand([MJPEG], idle_seconds=0.0)
    demand.update({MJPEG: 1}, 0.0)
    assert demand.update({MJPEG: 0}, 3.0) == []
    assert demand.is_open(MJPEG)  # a consumer replaced in the same turn closes nothing
    assert demand.get_timer() == 3.0
    assert demand.handle_timer(3.0) == [MJPEG]


def test_negative_idle_seconds_is_a_caller_error() -> None:
    with pytest.raises(LocalProtocolError, match="idle_seconds"):
        SourceDemand([MJPEG], idle_seconds=-1.0)


# -- consumers of renditions -----------------------------------------------------------


async def test_claims_on_a_rendition_are_consumers_of_its_source() -> None:
    clock = FakeClock()
    registry = Renditions(specs(lambda: registry), clock=clock)
    assert registry.consumers() == {}
    a = registry.acquire(H264)
    b = registry.acquire(H264)
    assert registry.consumers() == {MJPEG: 2}
    a.release()
    b.release()
    assert registry.consumers() == {MJPEG: 0}  # lingering: running, consumed by nobody


async def test_a_rendition_holding_another_stands_for_its_own_readers() -> None:
    clock = FakeClock()
    registry = Renditions(specs(lambda: registry), clock=clock)
    aac = registry.acquire(AAC)
    assert registry.consumers() == {AUDIO: 1}
    meter = registry.acquire(PCM)  # a reader of the PCM itself
    assert registry.consumers() == {AUDIO: 2}
    aac.release()  # the AAC encode lingers, holding its PCM claim: it consumes nothing
    assert registry.get(AAC) is not None
    assert registry.consumers() == {AUDIO: 1}
    meter.release()
    assert registry.consumers() == {AUDIO: 0}
    registry.stop_unused()  # the lingering encode stops, its PCM claim goes, the PCM stops
    assert len(registry) == 0
    assert registry.stopped == {"h264": 0, "pcm": 1, "aac": 1}


async def test_claims_are_reported() -> None:
    calls: list[Mapping[StreamKind, int]] = []
    registry = Renditions(
        specs(lambda: registry),
        clock=FakeClock(),
        on_claims=lambda: calls.append(registry.consumers()),
    )
    with registry.acquire(AAC):
        pass
    # The PCM claim made while the encode started, the reader's, its release.
    assert calls == [{AUDIO: 0}, {AUDIO: 1}, {AUDIO: 0}]


# -- the camera media ------------------------------------------------------------------


async def test_nothing_runs_until_a_subscriber_comes_and_it_closes_after_idle() -> None:
    cam = Camera()
    media = cam.media
    assert cam.running() == {MJPEG: False, AUDIO: False}
    assert media.mjpeg is not None
    sub = media.mjpeg.subscribe()
    assert cam.running() == {MJPEG: True, AUDIO: False}
    media.on_frame(MJPEG)(frame())
    assert media.consumers() == {MJPEG: 1, AUDIO: 0}
    sub.close()
    cam.later(9.9)
    assert cam.running()[MJPEG]
    cam.later(0.1)
    assert cam.running() == {MJPEG: False, AUDIO: False}
    assert cam.upstreams[MJPEG].calls == ["resume", "pause"]
    # The next reader waits for a fresh frame, not one from before the close.
    assert media.mjpeg.latest is None
    assert media.stats()[MJPEG]["on_demand"] == {
        "open": False,
        "closing": False,
        "opened": 1,
        "closed": 1,
        "idle_seconds": 10.0,
    }
    await media.aclose()


async def test_a_reader_within_idle_seconds_keeps_the_connection() -> None:
    cam = Camera()
    assert cam.media.audio is not None
    cursor = cam.media.audio.subscribe()
    cursor.close()
    cam.later(5.0)
    with cam.media.audio.subscribe():
        cam.later(100.0)
        assert cam.running()[AUDIO]
    cam.later(10.0)
    assert cam.upstreams[AUDIO].calls == ["resume", "pause"]
    await cam.media.aclose()


async def test_a_closed_ring_holds_nothing_for_the_next_reader() -> None:
    cam = Camera()
    ring = cam.media.audio
    assert ring is not None
    with ring.subscribe():
        for seq in range(3):
            cam.media.on_frame(AUDIO)(frame(seq))
    cam.later(10.0)
    assert ring.newest is None
    assert ring.bytes == 0
    assert ring.first_seq == ring.next_seq == 3
    await cam.media.aclose()


async def test_a_hold_is_a_consumer_and_the_snapshot_lingers() -> None:
    cam = Camera()
    with cam.media.hold(MJPEG) as hold:
        assert cam.running()[MJPEG]
        assert cam.media.consumers()[MJPEG] == 1
    hold.close()  # idempotent
    assert cam.media.consumers()[MJPEG] == 0
    cam.later(9.0)
    assert cam.running()[MJPEG]
    cam.later(1.0)
    assert not cam.running()[MJPEG]
    await cam.media.aclose()


async def test_the_encode_and_the_audio_encodes_open_their_sources() -> None:
    cam = Camera()
    renditions = cam.media.renditions
    video = renditions.acquire(H264)
    sound = renditions.acquire(AAC)
    assert cam.running() == {MJPEG: True, AUDIO: True}
    video.release()
    sound.release()  # both linger (5 s), consuming nothing: the idle time starts now
    cam.later(10.0)
    assert cam.running() == {MJPEG: False, AUDIO: False}
    assert len(renditions) == 0  # what lingered is stopped with the streams
    await cam.media.aclose()


async def test_an_ingest_attached_after_the_first_consumer_is_started() -> None:
    media = CameraMedia(ON_DEMAND, loop=asyncio.get_running_loop(), clock=FakeClock())
    hold = media.hold(MJPEG)
    upstream = FakeUpstream()
    media.attach(MJPEG, upstream)
    assert upstream.calls == ["resume"]
    hold.close()
    await media.aclose()


async def test_a_camera_that_is_not_on_demand_is_never_switched() -> None:
    cam = Camera(CAMERA)
    assert cam.media.mjpeg is not None
    with cam.media.mjpeg.subscribe():
        pass
    cam.later(1000.0)
    assert all(upstream.calls == [] for upstream in cam.upstreams.values())
    assert cam.media.stats()[MJPEG] == {"consumers": 0}
    await cam.media.aclose()


async def test_the_idle_timer_runs_on_the_loop() -> None:
    media = CameraMedia(replace(ON_DEMAND, idle_seconds=0.01), loop=asyncio.get_running_loop())
    upstream = FakeUpstream()
    media.attach(MJPEG, upstream)
    media.hold(MJPEG).close()
    async with asyncio.timeout(5.0):
        await upstream.paused.wait()
    assert upstream.calls == ["resume", "pause"]
    await media.aclose()


async def test_a_closed_media_switches_nothing() -> None:
    cam = Camera()
    hold = cam.media.hold(MJPEG)
    await cam.media.aclose()
    hold.close()
    cam.later(100.0)
    assert cam.upstreams[MJPEG].calls == ["resume"]
