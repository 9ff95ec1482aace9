"""No camera freezes silently: the watchdog counts frames, not bytes, and a body that ends ends.

A camera that keeps its connection open and sends bytes that make no frame (an endless
part, torn JPEGs, an epilogue after its close delimiter, MPEG-2 without pictures) is
reconnected within ``stall_timeout``, with a ``last_error`` that says what happened.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from gateway.ingest import CameraStream
from gateway.media import Frame, StreamKind, StreamState
from tests.publish.axis_client import camera_toml, gateway

from .fake_camera import (
    FAST,
    JPEG,
    PICTURE,
    SEQ,
    FakeCamera,
    Request,
    camera_for,
    running,
    send,
    streaming,
    until,
)
from .test_ingest_sim import ingest, sim

pytestmark = pytest.mark.timeout(30)

MULTIPART = (
    b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=myboundary\r\n\r\n"
)
#: What the stream says when its body ended on a connection the camera kept open.
ENDED = "the camera ended the stream (close delimiter --myboundary--)"


@pytest.mark.parametrize(
    "quirks",
    [("close-delimiter-then-junk=5",), ("boundary-in-jpeg=5", "no-content-length")],
    ids=["close-delimiter-then-junk", "boundary-in-jpeg"],
)
async def test_a_close_delimiter_ends_the_connection_and_is_a_reconnect_cause(
    quirks: tuple[str, ...],
) -> None:
    frames: list[Frame] = []
    # A watchdog slower than the test: the close delimiter alone must end each connection.
    async with (
        sim(*quirks) as server,
        ingest(server, frames=frames, stall_timeout=60.0) as stream,
    ):
        await until(lambda: stream.reconnects >= 2 and stream.state is StreamState.LIVE)
        assert stream.last_error == ENDED
    assert [f.seq for f in frames].count(0) >= 3  # every connection delivered frames again
    assert max(f.seq for f in frames) <= 4  # and none after its close delimiter


def endless_part(request_chunks: int = 10_000) -> object:
    """A multipart stream whose second part never ends: bytes, but no more frames."""

    async def respond(request: Request) -> None:
        await send(request, MULTIPART)
        await send(request, b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\n" + JPEG)
        await send(request, b"\r\n--myboundary\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8")
        for _ in range(request_chunks):
            await send(request, b"\x00" * 4096)
            await asyncio.sleep(0.005)

    return respond


async def torn_jpegs(request: Request) -> None:
    """Whole parts, every one a JPEG without its EOI: parts arrive, frames do not."""
    await send(request, MULTIPART)
    torn = JPEG[:-2]
    while True:
        head = b"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(torn)
        await send(request, head + torn + b"\r\n")
        await asyncio.sleep(0.005)


async def mpeg2_without_pictures(request: Request) -> None:
    """One picture, then bytes without a start code: a unit that grows, no new picture."""
    await send(request, b"HTTP/1.0 200 OK\r\nContent-Type: video/mpeg\r\n\r\n" + SEQ + PICTURE)
    while True:
        await send(request, b"\x11" * 4096)
        await asyncio.sleep(0.005)


NO_FRAME = re.compile(r"stalled: no frame for 0\.3 s while [\d.]+ [kM]B arrived")


@pytest.mark.parametrize(
    ("kind", "responder", "pattern"),
    [
        (StreamKind.MJPEG, endless_part(), NO_FRAME),
        (StreamKind.MJPEG, torn_jpegs, re.compile(NO_FRAME.pattern + r" \(\d+ parts dropped\)")),
        (StreamKind.MPEG2, mpeg2_without_pictures, NO_FRAME),
    ],
    ids=["endless-part", "torn-jpegs", "mpeg2-without-pictures"],
)
async def test_bytes_without_frames_are_a_stall(
    kind: StreamKind, responder: object, pattern: re.Pattern[str]
) -> None:
    fake = FakeCamera([responder])  # type: ignore[list-item]
    async with running(fake):
        stream = CameraStream(camera_for(fake), kind, policy=FAST, stall_timeout=0.3)
        async with streaming(stream):
            await until(lambda: stream.reconnects >= 2)
            error = stream.last_error
    assert error is not None
    assert pattern.fullmatch(error), error


async def test_no_bytes_at_all_is_still_a_stall_without_data() -> None:
    async with sim("stall-after=0") as server, ingest(server, stall_timeout=0.3) as stream:
        await until(lambda: stream.reconnects >= 2)
        assert stream.last_error == "stalled: no data for 0.3 s"
        assert stream.frames_in == 0


async def test_api_never_says_live_at_zero_fps_for_a_camera_that_froze() -> None:
    """End to end: the app's /api for a camera that closes its body and keeps sending."""
    async with sim("close-delimiter-then-junk=3") as server:
        toml = camera_toml(source=server.url).replace("stall_timeout = 5.0", "stall_timeout = 60")
        async with gateway(toml) as gw, aiohttp.ClientSession() as http:
            url = f"{gw.base}/api/cameras/cam"
            seen: list[dict[str, object]] = []

            async def mjpeg() -> dict[str, object]:
                async with http.get(url) as response:
                    body = await response.json()
                stream: dict[str, object] = body["streams"]["mjpeg"]
                seen.append(stream)
                return stream

            async with asyncio.timeout(20):
                while int((await mjpeg())["reconnects"]) < 3:  # type: ignore[call-overload]  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
    assert seen[-1]["last_error"] == ENDED
    assert "backoff" in {s["state"] for s in seen}  # not "live" (at 0 fps) for good
