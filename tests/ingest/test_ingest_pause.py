"""CameraStream.pause/resume: what an on-demand camera's media asks of its ingest."""

from __future__ import annotations

import asyncio

import pytest

from gateway.ingest import CameraStream
from gateway.media import Frame, StreamKind

from .fake_camera import FakeCamera, camera_for, mpeg, running, states, streaming, until

pytestmark = pytest.mark.timeout(20)


async def test_pause_drops_the_connection_at_once_and_resume_connects_again() -> None:
    fake = FakeCamera([mpeg()])
    frames: list[Frame] = []
    async with running(fake):
        stream = CameraStream(camera_for(fake), StreamKind.MPEG2, on_frame=frames.append)
        stream.resume()
        await until(lambda: stream.frames_in >= 5)
        stream.pause()
        # Synchronously: idle, and no frame arrives after the call.
        assert stream.snapshot()["state"] == "idle"
        count = len(frames)
        reader = fake.requests[0].reader
        async with asyncio.timeout(5.0):
            try:  # the camera sees the connection go (aborted: a reset)
                assert await reader.read() == b""
            except ConnectionResetError:
                pass
        assert len(frames) == count
        stream.pause()  # idempotent
        stream.resume()
        await until(lambda: len(fake.requests) == 2 and stream.frames_in >= count + 5)
        assert stream.reconnects == 0  # not a failure
        assert stream.last_error is None
        await stream.stop()
        assert states(stream) == ["connecting", "live", "idle", "connecting", "live", "idle"]


async def test_stop_waits_for_a_paused_connection() -> None:
    fake = FakeCamera([mpeg()])
    async with running(fake):
        stream = CameraStream(camera_for(fake), StreamKind.MPEG2)
        async with streaming(stream):
            await until(lambda: stream.frames_in >= 1)
            stream.pause()
        assert stream.snapshot()["state"] == "idle"
        assert all(task.done() for task in asyncio.all_tasks() if "ingest" in task.get_name())


async def test_resume_while_running_changes_nothing() -> None:
    fake = FakeCamera([mpeg()])
    async with running(fake):
        stream = CameraStream(camera_for(fake), StreamKind.MPEG2)
        async with streaming(stream):
            await until(lambda: stream.frames_in >= 1)
            stream.resume()
            await until(lambda: stream.frames_in >= 10)
        assert len(fake.requests) == 1
