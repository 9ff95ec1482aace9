"""Axis MJPEG/JPEG endpoints over real sockets: URL forms, every parameter, errors."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.app import CAMERAS
from gateway.demux.codec import jpeg_size
from gateway.media import NS_PER_SECOND, Frame
from gateway.publish.axis import AxisSettings

from .axis_client import (
    SPACING_SLACK_NS,
    Gateway,
    assert_evenly_spaced,
    camera_toml,
    gateway,
    log_source,
    mjpeg,
)

TWO_CAMERAS = camera_toml("cam") + camera_toml("second", fps=10)


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async with gateway(TWO_CAMERAS) as running:
        await running.live()
        await running.live("second")
        yield running


def record_frames(gw: Gateway, name: str = "cam") -> set[bytes]:
    """Collect the camera's newest payload and every one it sends from now on."""
    fanout = gw.fanout(name)
    ingest = gw.ingest(name)
    original = ingest.on_frame
    assert original is not None
    latest = fanout.source.latest
    seen = set() if latest is None else {bytes(latest.payload)}

    def spy(frame: Frame) -> None:
        seen.add(bytes(frame.payload))
        original(frame)

    ingest.on_frame = spy
    return seen


INVALID = [
    ("req_fps=5&des_fps=5", "req_fps and des_fps cannot be used at the same time"),
    ("req_fps=0", "req_fps must be an integer from 1 to 1000, got '0'"),
    ("des_fps=2.5", "des_fps must be an integer from 1 to 1000, got '2.5'"),
    ("fps=-1", "fps must be an integer from 1 to 1000, got '-1'"),
    ("showlength=2", "showlength must be an integer from 0 to 1, got '2'"),
    ("deltatime=x", "deltatime must be an integer from 0 to 1, got 'x'"),
    ("duration=-1", "duration must be an integer from 0 to 10000000, got '-1'"),
    ("nbrofframes=1e3", "nbrofframes must be an integer from 0 to 1000000000, got '1e3'"),
    ("maxlag=fast", "maxlag must be an integer from 0 to 10000000000, got 'fast'"),
    ("quad=1", "quad is not supported (only quad=0)"),
    ("rotation=45", "rotation must be 0, 90, 180 or 270, got 45"),
    ("resolution=0x0", "resolution must be at least 1x1, got 0x0"),
    ("resolution=1280x960", "resolution 1280x960 is larger than the source 640x480"),
    ("compression=101", "compression must be an integer from 0 to 100, got 101"),
    ("colorlevel=-5", "colorlevel must be an integer from 0 to 100, got -5"),
    ("clock=2", "clock must be 0 or 1, got 2"),
    ("date=yes", "date must be 0 or 1, got yes"),
    ("text=3", "text must be 0 or 1, got 3"),
]


async def test_every_invalid_value_is_400_with_a_reason(gw: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        for query, reason in INVALID:
            async with session.get(f"{gw.base}/axis-cgi/mjpg/video.cgi?{query}") as response:
                assert response.status == 400, query
                assert response.content_type == "text/plain"
                text = await response.text()
                assert text.startswith("Error: "), text
                assert reason in text, (query, text)
            if query.startswith(("rotation", "resolution", "compression", "colorlevel", "clock")):
                async with session.get(f"{gw.base}/jpg/image.jpg?{query}") as response:
                    assert response.status == 400
                    assert reason in await response.text()
        for path in ("/mjpg/9/video.mjpg", "/jpg/9/image.jpg", "/axis-cgi/mjpg/video.cgi?camera=x"):
            async with session.get(gw.base + path) as response:
                assert response.status == 404
                assert (await response.text()).startswith("Error: no camera")
    assert gw.fanout().client_count() == 0


async def test_url_forms_and_camera_selection(gw: Gateway) -> None:
    forms = {
        "/axis-cgi/mjpg/video.cgi?nbrofframes=2": "cam",
        "/mjpg/video.mjpg?nbrofframes=2": "cam",
        "/mjpg/1/video.mjpg?nbrofframes=2": "cam",
        "/mjpg/2/video.mjpg?nbrofframes=2": "second",
        "/axis-cgi/mjpg/video.cgi?camera=2&nbrofframes=2": "second",
        "/axis-cgi/mjpg/video.cgi?camera=second&nbrofframes=2": "second",
    }
    sent = {name: record_frames(gw, name) for name in ("cam", "second")}
    for target, name in forms.items():
        client = await mjpeg(gw.port, target)
        assert client.status == 200
        assert client.head["content-type"] == "multipart/x-mixed-replace;boundary=myboundary"
        assert "transfer-encoding" not in client.head
        assert len(client.parts) == 2
        assert client.ended == "close-delimiter"
        newest = gw.fanout(name).source.latest
        assert newest is not None
        assert client.parts[0].headers["content-type"] == "image/jpeg"
        # Each camera runs its own simulator: its frames are its own bytes.
        assert any(p.payload in sent[name] for p in client.parts), target


async def test_pass_through_bytes_are_the_cameras(gw: Gateway) -> None:
    seen: dict[int, bytes] = {}
    ingest = gw.ingest()
    original = ingest.on_frame
    assert original is not None

    def spy(frame: object) -> None:
        payload = frame.payload  # type: ignore[attr-defined]
        seen[frame.seq] = bytes(payload)  # type: ignore[attr-defined]
        original(frame)  # type: ignore[arg-type]

    ingest.on_frame = spy
    client = await mjpeg(gw.port, "/axis-cgi/mjpg/video.cgi?nbrofframes=30")
    ingest.on_frame = original
    received = [p.payload for p in client.parts]
    assert len(received) == 30
    camera_frames = set(seen.values())
    # All but the first (the newest frame at connect time, before the spy) are the
    # ingest's frames byte for byte, consecutive in the simulator's numbering.
    assert all(payload in camera_frames for payload in received[1:])
    numbers = [p.sim[0] for p in client.parts]
    assert numbers == list(range(numbers[0], numbers[0] + 30))
    for part in client.parts:
        assert int(part.headers["content-length"]) == len(part.payload)


async def test_showlength_deltatime_duration_nbrofframes(gw: Gateway) -> None:
    source = log_source(gw)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"GET /axis-cgi/mjpg/video.cgi?showlength=0&duration=1 HTTP/1.0\r\n\r\n")
    started = time.monotonic()
    body = await reader.read(-1)
    took = time.monotonic() - started
    writer.close()
    head, _, rest = body.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"Content-Length" not in rest[:200]
    assert b"content-length" not in rest.lower()[:200]
    assert 0.9 <= took <= 2.0
    assert 20 <= rest.count(b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8") <= 28
    assert rest.endswith(b"\r\n--myboundary--\r\n")

    client = await mjpeg(gw.port, "/mjpg/video.mjpg?deltatime=1&nbrofframes=12&req_fps=5")
    deltas = [int(p.headers["x-delta-time"]) for p in client.parts]
    assert len(deltas) == 12
    assert deltas[0] == 0
    numbers = [p.sim[0] for p in client.parts]
    # The time between the two images in source time (the gateway's timestamps of the
    # camera's frames, DESIGN §6), in µs: not when they were sent.
    for a, b, delta in zip(numbers, numbers[1:], deltas[1:], strict=False):
        assert delta == (source.received_ns(b) - source.received_ns(a)) // 1000
    # The first part is the newest frame at connect; from the second on, 5 fps.
    nominal = round(1e9 / 25)
    assert_evenly_spaced(numbers[1:], source, 5, nominal)
    # Whole periods: ten gaps are two seconds, within the intervals at either end.
    ends = (source.interval_ns(numbers[1], nominal), source.interval_ns(numbers[-1], nominal))
    room = max(ends) + SPACING_SLACK_NS
    assert abs(sum(deltas[2:]) * 1000 - 2 * NS_PER_SECOND) <= room


async def test_image_parameters_give_a_shared_variant(gw: Gateway) -> None:
    client = await mjpeg(
        gw.port, "/axis-cgi/mjpg/video.cgi?resolution=320x240&colorlevel=0&nbrofframes=3"
    )
    assert len(client.parts) == 3
    assert all(jpeg_size(p.payload) == (320, 240) for p in client.parts)
    rotated = await mjpeg(gw.port, "/mjpg/video.mjpg?rotation=90&nbrofframes=2&clock=1&text=1")
    assert all(jpeg_size(p.payload) == (480, 640) for p in rotated.parts)
    assert gw.media().renditions.started["jpeg"] == 2


async def test_snapshots(gw: Gateway) -> None:
    sent = record_frames(gw)
    async with aiohttp.ClientSession() as session:
        for path in ("/jpg/image.jpg", "/jpg/1/image.jpg", "/axis-cgi/jpg/image.cgi?camera=cam"):
            async with session.get(gw.base + path) as response:
                assert response.status == 200
                assert response.content_type == "image/jpeg"
                body = await response.read()
            assert jpeg_size(body) == (640, 480)
            assert body in sent
        async with session.get(gw.base + "/jpg/2/image.jpg?resolution=160x120") as response:
            assert response.status == 200
            assert jpeg_size(await response.read()) == (160, 120)
        path = "/axis-cgi/jpg/image.cgi?compression=90&rotation=270&resolution=120x160"
        async with session.get(gw.base + path) as response:
            assert jpeg_size(await response.read()) == (120, 160)
    # No upstream round trip: the camera got its one MJPEG request and no JPEG request.
    sim = gw.app[CAMERAS]["cam"].sim
    assert sim is not None
    assert gw.sim_requests() == 1
    assert [path for path in sim.requests if "/jpg/" in path] == []


async def test_snapshot_is_503_when_the_camera_has_produced_nothing() -> None:
    toml = camera_toml("dead", source="http://127.0.0.1:9")
    async with (
        gateway(toml, AxisSettings(snapshot_wait=0.5)) as gw,
        aiohttp.ClientSession() as session,
    ):
        started = time.monotonic()
        async with session.get(gw.base + "/jpg/image.jpg") as response:
            assert response.status == 503
            assert await response.text() == "Error: camera has produced no image yet\n"
        assert 0.4 <= time.monotonic() - started < 2.0


async def test_access_control_still_applies() -> None:
    toml = '[[users]]\nname = "op"\npassword = "pw"\nrole = "operator"\n' + camera_toml()
    async with gateway(toml) as gw:
        await gw.live()
        async with aiohttp.ClientSession() as session:
            async with session.get(gw.base + "/jpg/image.jpg") as response:
                assert response.status == 401
            async with session.get(gw.base + "/axis-cgi/mjpg/video.cgi") as response:
                assert response.status == 401
            auth = {"Authorization": "Basic " + base64.b64encode(b"op:pw").decode()}
            async with session.get(gw.base + "/jpg/image.jpg", headers=auth) as response:
                assert response.status == 200


def _outward_address() -> str | None:
    """Return this host's address toward the outside (no packet is sent), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = sock.getsockname()[0]
    return None if address.startswith("127.") else address


async def test_anonymous_access_only_from_loopback() -> None:
    async with gateway(camera_toml(), host="0.0.0.0") as gw:
        await gw.live()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{gw.port}/jpg/image.jpg") as response:
                assert response.status == 200
            address = _outward_address()
            if address is None:
                pytest.skip("no non-loopback address")
            async with session.get(f"http://{address}:{gw.port}/mjpg/video.mjpg") as response:
                assert response.status == 403
                assert "loopback" in await response.text()
