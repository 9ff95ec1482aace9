"""What CameraStream logs through hours of outage, on a fake clock, lines counted.

The connections are real (loopback), the supervision time is not: every backoff wait
jumps the clock, so three hours of a camera refusing us take a fraction of a second.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re

import pytest

from gateway.config import Secret
from gateway.ingest import CameraStream
from gateway.ingest.backoff import ReconnectPolicy
from gateway.media import StreamKind, StreamState

from .fake_camera import (
    PASSWORD,
    PICTURE,
    SEQ,
    FakeCamera,
    FakeClock,
    Request,
    camera_for,
    digest_guard,
    mpeg,
    running,
    send,
    status,
    streaming,
    until,
)

pytestmark = pytest.mark.timeout(60)

MINUTE, HOUR = 60.0, 3600.0
PREFIX = "camera cam1 mpeg2: "


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return the ingest log lines, without the camera prefix (which each must have)."""
    records = [r for r in caplog.records if r.name.startswith("gateway.ingest")]
    assert all(r.getMessage().startswith(PREFIX) for r in records)
    return [r.getMessage().removeprefix(PREFIX) for r in records]


async def test_a_camera_down_for_hours_logs_a_handful_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    fake = FakeCamera([mpeg()])
    await fake.start()
    await fake.stop()  # nothing listens on that port now
    clock = FakeClock(stop_at=3 * HOUR + 1)
    policy = ReconnectPolicy(rng=random.Random(7))
    stream = CameraStream(camera_for(fake), StreamKind.MPEG2, policy=policy, clock=clock)
    async with streaming(stream):
        await until(lambda: clock.parked, limit=30.0)
    error = f"cannot connect to 127.0.0.1:{fake.port}: Connect call failed"
    assert stream.reconnects > 300  # an attempt every 30 s at most
    found = lines(caplog)
    assert [re.sub(r"\d+ failures", "N failures", line) for line in found] == [
        found[0],
        f"still down after 1 min (N failures): {found[0].split(';')[0]}",
        f"still down after 5 min (N failures): {found[0].split(';')[0]}",
        f"still down after 15 min (N failures): {found[0].split(';')[0]}",
        f"still down after 1 h (N failures): {found[0].split(';')[0]}",
        f"still down after 2 h (N failures): {found[0].split(';')[0]}",
        f"still down after 3 h (N failures): {found[0].split(';')[0]}",
    ]
    assert found[0].startswith(error)
    assert re.fullmatch(r".*; retrying in 0\.\d s", found[0])
    assert [r.levelname for r in caplog.records if r.name.startswith("gateway")] == ["WARNING"] * 7


async def test_a_wrong_password_is_one_line_then_reminders(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    fake = FakeCamera([digest_guard(mpeg())])
    clock = FakeClock(stop_at=2 * HOUR + 1)
    async with running(fake):
        cam = camera_for(fake, username="root", password=Secret("wrong-" + PASSWORD))
        policy = ReconnectPolicy(rng=random.Random(7))
        stream = CameraStream(cam, StreamKind.MPEG2, policy=policy, clock=clock)
        async with streaming(stream):
            await until(lambda: clock.parked, limit=30.0)
    assert stream.last_error == "401 Unauthorized: check credentials"
    attempts = stream.reconnects + 1
    assert 120 <= attempts <= 161  # one every 45 to 60 s: never a tight loop
    found = lines(caplog)
    first = re.fullmatch(r"401 Unauthorized: check credentials; retrying in (\d+\.\d) s", found[0])
    assert first is not None
    assert 45.0 <= float(first[1]) <= 60.0
    reminders = [re.sub(r" \(\d+ failures\)", "", line) for line in found[1:]]
    assert reminders == [
        f"still down after {after}: 401 Unauthorized: check credentials"
        for after in ("1 min", "5 min", "15 min", "1 h", "2 h")
    ]
    assert "wrong-" + PASSWORD not in caplog.text


async def test_a_live_camera_that_drops_says_why_and_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    clock = FakeClock()
    back_at = 2 * HOUR + 6 * MINUTE
    fake: FakeCamera

    async def live_for_two_hours(request: Request) -> None:
        await send(request, b"HTTP/1.0 200 OK\r\nContent-Type: video/mpeg\r\n\r\n")
        await send(request, SEQ)
        for _ in range(20):
            await send(request, PICTURE)
            await asyncio.sleep(0.01)
        clock.now += 2 * HOUR  # ... and then it closes

    async def camera(request: Request) -> None:
        if len(fake.requests) == 1:
            await live_for_two_hours(request)
        elif clock.now < back_at:
            await status("503 Service Unavailable")(request)
        else:
            await mpeg()(request)

    fake = FakeCamera([camera])
    async with running(fake):
        policy = ReconnectPolicy(jitter=0.0)
        stream = CameraStream(camera_for(fake), StreamKind.MPEG2, policy=policy, clock=clock)
        async with streaming(stream):
            await until(lambda: any("live again" in line for line in lines(caplog)), limit=30.0)
            assert stream.state is StreamState.LIVE
    found = lines(caplog)
    assert found[:3] == [
        "live (video/mpeg)",
        "dropped after 2 h live: connection closed by the camera; retrying in 0.5 s",
        "HTTP 503 Service Unavailable; retrying in 1.0 s",
    ]
    assert [re.sub(r" \(\d+ failures\)", "", line) for line in found[3:5]] == [
        "still down after 1 min: HTTP 503 Service Unavailable",
        "still down after 5 min: HTTP 503 Service Unavailable",
    ]
    assert re.fullmatch(r"live again after 6 min( \d+ s)? \(video/mpeg\)", found[5])
    assert len(found) == 6
