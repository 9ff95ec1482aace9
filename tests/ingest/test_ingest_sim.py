"""Ingest end to end over loopback against the Axis camera simulator: every quirk and fault."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.config import CameraConfig, Secret
from gateway.hub.rate import pts_ns
from gateway.ingest import CameraStream, probe
from gateway.ingest.backoff import ReconnectPolicy
from gateway.ingest.kinds import PtsStamper, SmoothedStamper
from gateway.media import Frame, StreamKind, StreamState
from gateway.sim import SimOptions, SimServer

pytestmark = pytest.mark.timeout(30)

PASSWORD = "Sim-Pa55word!"
SIZE = (160, 120)
FAST = ReconnectPolicy(initial=0.05, maximum=0.2, auth_delay=60.0, jitter=0.0)


@contextlib.asynccontextmanager
async def sim(
    *quirks: str, fps: float = 50.0, size: tuple[int, int] = SIZE, **options: object
) -> AsyncIterator[SimServer]:
    server = SimServer(SimOptions(fps=fps, size=size, quirks=frozenset(quirks), **options))  # type: ignore[arg-type]
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        # Let the server finish accepting connections our client just gave up on:
        # asyncio loses (and warns about) a socket accepted while the server stops.
        await asyncio.sleep(0.05)
        await server.stop()


@contextlib.asynccontextmanager
async def ingest(
    server: SimServer,
    kind: StreamKind = StreamKind.MJPEG,
    *,
    password: str | None = None,
    frames: list[Frame] | None = None,
    stall_timeout: float = 2.0,
) -> AsyncIterator[CameraStream]:
    camera = CameraConfig(
        name="sim1",
        index=1,
        source=server.url,
        username="root" if password is not None else None,
        password=Secret(password) if password is not None else None,
    )
    stream = CameraStream(
        camera,
        kind,
        policy=FAST,
        stall_timeout=stall_timeout,
        on_frame=frames.append if frames is not None else None,
    )
    await stream.start()
    try:
        yield stream
    finally:
        await stream.stop()


async def until(predicate: Callable[[], bool], limit: float = 8.0) -> None:
    """Poll ``predicate`` for up to ``limit`` seconds."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def is_jpeg(frame: Frame) -> bool:
    data = bytes(frame.payload)
    return data[:2] == b"\xff\xd8" and data.rstrip(b"\r\n")[-2:] == b"\xff\xd9"


DIALECTS = [
    (),
    ("no-content-length",),
    ("lf-only",),
    ("boundary-dashes",),
    ("boundary-quoted",),
    ("boundary-mismatch",),
    ("no-initial-boundary",),
    ("preamble",),
    ("extra-blank-lines",),
    ("chunked",),
    ("chunked", "no-content-length"),
    ("lf-only", "no-content-length", "extra-blank-lines", "preamble"),
]


@pytest.mark.parametrize("quirks", DIALECTS, ids=lambda q: "+".join(q) or "plain")
async def test_every_dialect_streams_whole_frames(quirks: tuple[str, ...]) -> None:
    frames: list[Frame] = []
    async with sim(*quirks) as server, ingest(server, frames=frames) as stream:
        await until(lambda: stream.frames_in >= 12)
        snap = stream.snapshot()
    assert snap["state"] == "live"
    assert snap["frames_dropped"] == 0
    assert snap["reconnects"] == 0
    assert snap["resolution"] == "160x120"
    assert snap["boundary"]
    assert str(snap["content_type"]).startswith("multipart/x-mixed-replace")
    assert all(is_jpeg(f) for f in frames)
    assert [f.seq for f in frames[:12]] == list(range(12))
    assert frames[0].content_type.startswith("image/jpeg")


@pytest.mark.parametrize("quirks", [(), ("chunked",)], ids=["identity", "chunked"])
async def test_ingest_copies_little(quirks: tuple[str, ...]) -> None:
    """Chunk data and Content-Length parts land in frame buffers; few bytes are copied."""
    async with sim(*quirks, size=(640, 480)) as server, ingest(server) as stream:
        await until(lambda: stream.frames_in >= 25)
        copied, received = stream.bytes_copied, stream.bytes_in
    assert copied < received / 10


async def test_fps_in_tracks_the_camera_rate() -> None:
    async with sim(fps=25.0) as server, ingest(server) as stream:
        await until(lambda: stream.frames_in >= 45)
        fps = stream.fps_in()
    assert 20.0 <= fps <= 30.0


async def test_stall_reconnects_and_recovers() -> None:
    async with sim("stall-after=5") as server, ingest(server, stall_timeout=0.3) as stream:
        await until(lambda: stream.reconnects >= 2 and stream.state is StreamState.LIVE)
        assert stream.last_error == "stalled: no data for 0.3 s"
    assert stream.frames_in >= 10


async def test_close_mid_frame_drops_only_the_torn_frame() -> None:
    frames: list[Frame] = []
    async with sim("close-mid-frame=4") as server, ingest(server, frames=frames) as stream:
        await until(lambda: stream.reconnects >= 2 and stream.frames_in >= 8)
        assert stream.last_error is not None
    assert all(is_jpeg(f) for f in frames)
    assert [f.seq for f in frames[:4]] == [0, 1, 2, 3]


async def test_wrong_content_length_drops_only_the_damaged_frames() -> None:
    frames: list[Frame] = []
    async with sim("wrong-content-length") as server, ingest(server, frames=frames) as stream:
        await until(lambda: stream.frames_in + stream.frames_dropped >= 20)
        snap = stream.snapshot()
    assert snap["reconnects"] == 0
    dropped = int(snap["frames_dropped"])  # type: ignore[call-overload]
    assert 1 <= dropped <= (int(snap["frames_in"]) + dropped) // 5 + 1  # type: ignore[call-overload]
    assert all(is_jpeg(f) for f in frames)


async def test_new_boundary_after_reconnect() -> None:
    boundaries: set[str] = set()
    async with sim("new-boundary", "close-mid-frame=3") as server, ingest(server) as stream:

        def seen() -> bool:
            if stream.state is StreamState.LIVE and stream.boundary:
                boundaries.add(stream.boundary)
            return len(boundaries) >= 2 and stream.frames_in >= 6

        await until(seen)
    assert stream.frames_dropped <= stream.reconnects + 1


@pytest.mark.parametrize(
    ("quirk", "error"),
    [
        ("status-503", "HTTP 503 Service Unavailable"),
        ("html-error", "unexpected content type text/html"),
    ],
)
async def test_error_answers_are_classified(quirk: str, error: str) -> None:
    async with sim(quirk) as server, ingest(server) as stream:
        await until(lambda: stream.reconnects >= 2)
        assert stream.state in (StreamState.BACKOFF, StreamState.CONNECTING)
        assert stream.last_error == error


async def test_status_401_fails_with_a_clear_error() -> None:
    async with sim("status-401") as server, ingest(server, password=PASSWORD) as stream:
        await until(lambda: stream.state is StreamState.FAILED)
        await asyncio.sleep(0.3)
        assert server.requests_total == 2  # challenge answered once, then a minute's wait
    assert stream.last_error == "401 Unauthorized: check credentials"


@pytest.mark.parametrize("scheme", ["basic", "digest"])
async def test_right_password_after_the_challenge(scheme: str) -> None:
    async with (
        sim(auth=scheme, user=("root", PASSWORD)) as server,
        ingest(server, password=PASSWORD) as stream,
    ):
        await until(lambda: stream.frames_in >= 5)
        assert server.requests_total == 2  # 401 with the challenge, then the answer
    assert stream.last_error is None


async def test_digest_reconnects_reuse_the_nonce_and_survive_expiry() -> None:
    async with (
        sim("close-mid-frame=3", auth="digest", user=("root", PASSWORD), nonce_ttl=0.5) as server,
        ingest(server, password=PASSWORD) as stream,
    ):
        await until(lambda: stream.reconnects >= 6, limit=10.0)
        assert stream.state is not StreamState.FAILED
        assert stream.last_error is not None
        assert not stream.last_error.startswith("401")


async def test_wrong_password_one_log_line_and_no_leak(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    async with (
        sim(auth="digest", user=("root", PASSWORD)) as server,
        ingest(server, password="not-" + PASSWORD) as stream,
    ):
        await until(lambda: stream.state is StreamState.FAILED)
        await asyncio.sleep(0.5)
        snap = stream.snapshot()
        assert stream.state is StreamState.FAILED
        assert server.requests_total == 2
    assert snap["last_error"] == "401 Unauthorized: check credentials"
    records = [r for r in caplog.records if r.name.startswith("gateway.ingest")]
    assert [r.getMessage() for r in records] == [
        "camera sim1 mjpeg: 401 Unauthorized: check credentials; retrying in 60.0 s"
    ]
    assert "not-" + PASSWORD not in caplog.text + json.dumps(snap) + repr(vars(stream))


async def test_mpeg2_and_audio_streams() -> None:
    async with sim() as server:
        async with ingest(server, StreamKind.MPEG2) as video:
            await until(lambda: video.resolution is not None and video.frames_in >= 3)
            assert video.codec is not None
            assert video.codec.startswith("MPEG-2 video")
            assert video.resolution == SIZE
        async with ingest(server, StreamKind.AUDIO) as audio:
            await until(lambda: audio.frames_in >= 5)
            assert audio.latest is not None
            assert audio.latest.content_type.lower().startswith("audio/32kadpcm")
            assert audio.frames_dropped == 0


@pytest.mark.parametrize(
    ("container", "open_gop", "codec", "gop"),
    [
        ("ps", False, "MPEG-2 video (program stream)", 16),
        # FFmpeg's open GOPs after the first: I, then 14 pictures in decode order.
        ("ts", True, "MPEG-2 video (transport stream)", 15),
    ],
)
async def test_probe_names_the_mpeg2_container_and_gop(
    container: str, open_gop: bool, codec: str, gop: int
) -> None:
    async with sim(fps=25.0, mpeg2_format=container, mpeg2_open_gop=open_gop) as server:
        report = await probe(server.url + "/axis-cgi/mpeg2/video.cgi", timeout=5.0, duration=1.5)
    (mpeg2,) = report.endpoints
    assert (mpeg2.codec, mpeg2.resolution) == (codec, SIZE)
    assert (mpeg2.gop, mpeg2.closed_gop) == (gop, not open_gop)


async def test_probe_against_the_simulator() -> None:
    async with sim(fps=25.0, auth="digest", user=("root", PASSWORD)) as server:
        url = server.url.replace("http://", f"http://root:{PASSWORD}@")
        report = await probe(url, timeout=5.0, duration=1.5)
    text = report.render()
    assert PASSWORD not in text
    assert report.ok
    mjpeg, mpeg2, audio = report.endpoints
    assert mjpeg.status == "HTTP 200 OK"
    assert mjpeg.boundary == "myboundary"
    assert mjpeg.resolution == SIZE
    assert mjpeg.codec == "JPEG"
    assert mjpeg.fps is not None
    assert 18.0 <= mjpeg.fps <= 32.0
    assert mpeg2.codec is not None
    assert mpeg2.codec == "MPEG-2 video (elementary stream)"
    assert mpeg2.resolution == SIZE
    assert mpeg2.fps is not None
    assert 18.0 <= mpeg2.fps <= 32.0  # pictures counted by the indexer
    assert (mpeg2.gop, mpeg2.closed_gop) == (16, True)  # the simulator's closed GOPs of 16
    assert "gop:          16 pictures, closed" in text
    assert audio.codec is not None
    assert audio.codec.startswith("G.726")
    assert "boundary:     myboundary" in text


async def test_mjpeg_times_are_arrival_smoothed() -> None:
    frames: list[Frame] = []
    async with sim(fps=25.0) as server, ingest(server, frames=frames) as stream:
        await until(lambda: stream.frames_in >= 30)
    assert isinstance(stream.stamper, SmoothedStamper)
    interval = stream.stamper.clock.interval_ns
    assert interval is not None
    assert 30e6 < interval < 50e6  # the simulator's 25 fps, give or take a busy machine
    ticks = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(ticks))
    # Never more than the clock's lead (2 ms) after arrival.
    assert all(pts_ns(f) <= f.received_ns + 2_000_000 + 11_112 for f in frames)


@pytest.mark.parametrize("container", ["es", "ps", "ts"])
async def test_mpeg2_times_are_the_camera_pts(container: str) -> None:
    frames: list[Frame] = []
    async with (
        sim(fps=25.0, mpeg2_format=container) as server,
        ingest(server, StreamKind.MPEG2, frames=frames) as stream,
    ):
        await until(lambda: stream.frames_in >= 40)
    assert isinstance(stream.stamper, PtsStamper)
    clock = stream.stamper.clock
    assert stream.reconnects == 0
    if container == "es":
        assert clock.from_pts == 0
    else:
        assert clock.derived == 0
        # In presentation order one 25 fps period apart, exactly: the camera's clock. (The
        # last few may still miss B-pictures shown before the last picture received.)
        shown = sorted(f.pts for f in frames)
        assert {b - a for a, b in itertools.pairwise(shown[:-3])} == {3600}
