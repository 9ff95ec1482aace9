"""CameraStream.set_fps: the upstream rate switch, against a scripted loopback camera.

A switch reconnects at once with the new query (``stream_path``), is not a failure
(no backoff, no ``last_error``, not counted in ``reconnects``), and one made while no
connection is streaming goes into the next request instead of costing another one.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.config import CameraConfig
from gateway.ingest import CameraStream, stream_path
from gateway.ingest.backoff import ReconnectPolicy
from gateway.media import Frame, StreamKind, StreamState

from .fake_camera import (
    FakeCamera,
    camera_for,
    mjpeg,
    mpeg,
    running,
    states,
    status,
    streaming,
    until,
)

pytestmark = pytest.mark.timeout(20)

MJPEG = StreamKind.MJPEG


def slow() -> ReconnectPolicy:
    """Return a fresh policy (it counts attempts) with a backoff long enough to act in."""
    return ReconnectPolicy(initial=0.3, maximum=0.3, jitter=0.0)


def paths(fake: FakeCamera) -> list[str]:
    return [r.path for r in fake.requests]


def not_failed(stream: CameraStream) -> None:
    snap = stream.snapshot()
    assert (snap["reconnects"], snap["last_error"]) == (0, None)
    assert stream.policy.attempts == 0  # no backoff was scheduled


async def live_with_frames(stream: CameraStream, frames: list[Frame], requests: int) -> None:
    """Wait until connection number ``requests`` is live and has delivered 3 frames."""
    await until(lambda: stream.state is StreamState.LIVE and len(frames) >= 3)
    await until(lambda: frames[-1].seq >= 3 and stream.frames_in >= 3 * requests)


async def test_a_rate_change_reconnects_once_with_the_new_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "gateway.ingest")
    fake = FakeCamera([mjpeg()])
    frames: list[Frame] = []
    async with running(fake):
        cam = camera_for(fake, fps=25)
        stream = CameraStream(cam, MJPEG, on_frame=frames.append)
        async with streaming(stream):
            await live_with_frames(stream, frames, 1)
            before = stream.snapshot()
            frames.clear()
            stream.set_fps(5)
            assert stream.fps == 5
            assert stream.url == fake.url + stream_path(cam, MJPEG, 5)
            await live_with_frames(stream, frames, 2)
            snap = stream.snapshot()
            assert paths(fake) == [stream_path(cam, MJPEG, 25), stream_path(cam, MJPEG, 5)]
    assert paths(fake)[1] == "/axis-cgi/mjpg/video.cgi?fps=5"
    assert states(stream) == ["connecting", "live", "connecting", "live", "idle"]
    assert frames[0].seq == 0  # a new connection numbers its frames from 0
    assert snap["state"] == "live"
    assert (snap["reconnects"], snap["last_error"], snap["frames_dropped"]) == (0, None, 0)
    assert snap["url"] == f"{fake.url}/axis-cgi/mjpg/video.cgi?fps=5"
    assert int(snap["bytes_in"]) > int(before["bytes_in"])  # type: ignore[call-overload]
    assert int(snap["frames_in"]) > int(before["frames_in"])  # type: ignore[call-overload]
    assert stream.policy.attempts == 0
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "camera cam1 mjpeg: live (multipart/x-mixed-replace; boundary=myboundary)",
        "camera cam1 mjpeg: asking the camera for 5 fps",
    ]


async def test_the_same_rate_again_does_nothing() -> None:
    fake = FakeCamera([mjpeg()])
    frames: list[Frame] = []
    async with running(fake):
        cam = camera_for(fake, fps=25)
        stream = CameraStream(cam, MJPEG, on_frame=frames.append)
        stream.set_fps(25)  # the configured rate, before start
        stream.set_fps(None)  # also the configured rate
        async with streaming(stream):
            await live_with_frames(stream, frames, 1)
            stream.set_fps(25)
            stream.set_fps(None)
            frames.clear()
            stream.set_fps(5)
            stream.set_fps(5)
            await live_with_frames(stream, frames, 2)
            stream.set_fps(5)
            await until(lambda: frames[-1].seq >= 6)
    assert paths(fake) == [stream_path(cam, MJPEG, 25), stream_path(cam, MJPEG, 5)]
    not_failed(stream)


async def test_a_change_during_backoff_goes_into_the_next_request() -> None:
    fake = FakeCamera([status("503 Service Unavailable"), mjpeg()])
    frames: list[Frame] = []
    async with running(fake):
        cam = camera_for(fake)  # no configured rate: the camera's default
        stream = CameraStream(cam, MJPEG, on_frame=frames.append, policy=slow())
        async with streaming(stream):
            await until(lambda: stream.state is StreamState.BACKOFF)
            stream.set_fps(5)
            await live_with_frames(stream, frames, 1)
            snap = stream.snapshot()
    assert paths(fake) == ["/axis-cgi/mjpg/video.cgi", "/axis-cgi/mjpg/video.cgi?fps=5"]
    assert states(stream) == ["connecting", "backoff", "connecting", "live", "idle"]
    # The 503 was a failure; the switch added nothing to it.
    assert (snap["reconnects"], snap["last_error"]) == (1, "HTTP 503 Service Unavailable")


async def test_a_change_while_connecting_replaces_the_pending_request() -> None:
    gate = asyncio.Event()
    fake = FakeCamera([mjpeg(gate=gate), mjpeg()])
    frames: list[Frame] = []
    async with running(fake):
        cam = camera_for(fake, fps=25)
        stream = CameraStream(cam, MJPEG, on_frame=frames.append, policy=slow())
        async with streaming(stream):
            await until(lambda: len(fake.requests) == 1)
            assert stream.state is StreamState.CONNECTING
            stream.set_fps(5)
            gate.set()  # the camera answers the request that asked 25 fps
            await live_with_frames(stream, frames, 1)
    # The answer to the old request was closed before going live (frames that came in
    # its first read were delivered: they are valid); the next request asked the new
    # rate, at once (the 0.3 s backoff would show as a "backoff" state).
    assert paths(fake) == [stream_path(cam, MJPEG, 25), stream_path(cam, MJPEG, 5)]
    assert states(stream) == ["connecting", "live", "idle"]
    not_failed(stream)


async def test_a_change_and_back_while_connecting_costs_nothing() -> None:
    gate = asyncio.Event()
    fake = FakeCamera([mjpeg(gate=gate)])
    frames: list[Frame] = []
    async with running(fake):
        cam = camera_for(fake, fps=25)
        stream = CameraStream(cam, MJPEG, on_frame=frames.append)
        async with streaming(stream):
            await until(lambda: len(fake.requests) == 1)
            stream.set_fps(5)
            stream.set_fps(None)  # back to the configured 25 before the camera answered
            gate.set()
            await live_with_frames(stream, frames, 1)
    assert paths(fake) == [stream_path(cam, MJPEG, 25)]
    not_failed(stream)


@pytest.mark.parametrize(("configured", "query"), [(10, "?fps=10"), (None, "")])
async def test_none_goes_back_to_the_configured_rate(configured: int | None, query: str) -> None:
    fake = FakeCamera([mjpeg()])
    frames: list[Frame] = []
    async with running(fake):
        cam = camera_for(fake, fps=configured)
        stream = CameraStream(cam, MJPEG, on_frame=frames.append)
        assert stream.fps == configured
        async with streaming(stream):
            await live_with_frames(stream, frames, 1)
            frames.clear()
            stream.set_fps(5)
            await live_with_frames(stream, frames, 2)
            frames.clear()
            stream.set_fps(None)
            assert stream.fps == configured
            await live_with_frames(stream, frames, 3)
            assert stream.state is StreamState.LIVE
    base = "/axis-cgi/mjpg/video.cgi"
    assert paths(fake) == [base + query, base + "?fps=5", base + query]
    assert stream.url == fake.url + base + query
    not_failed(stream)


async def test_the_constructor_rate_is_the_configured_one() -> None:
    cam = CameraConfig(name="c", index=1, source="http://127.0.0.1:9", fps=25)
    stream = CameraStream(cam, MJPEG, fps=10)
    stream.set_fps(5)
    stream.set_fps(None)
    assert stream.fps == 10
    assert stream.url.endswith("/axis-cgi/mjpg/video.cgi?fps=10")


async def test_kinds_without_a_rate_parameter_do_not_reconnect() -> None:
    fake = FakeCamera([mpeg()])
    async with running(fake):
        stream = CameraStream(camera_for(fake), StreamKind.MPEG2)
        async with streaming(stream):
            await until(lambda: stream.frames_in >= 3)
            stream.set_fps(5)
            assert stream.fps == 5
            seen = stream.frames_in
            await until(lambda: stream.frames_in >= seen + 5)
    assert paths(fake) == ["/axis-cgi/mpeg2/video.cgi"]
    assert states(stream) == ["connecting", "live", "idle"]
    not_failed(stream)
