"""CameraStream and probe over loopback against a scripted fake camera (MPEG-2, no multipart).

These cover the supervisor itself: state changes, reconnects, stall, auth, redirects,
classification and redaction. The multipart dialects run against the real simulator
in test_ingest_sim.py.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import re

import pytest

from gateway.config import CameraConfig, Secret
from gateway.errors import AuthError, UpstreamError
from gateway.ingest import CameraStream, probe, stream_path
from gateway.ingest.backoff import ReconnectPolicy
from gateway.ingest.connection import Target, open_stream
from gateway.ingest.raw import RawConsumer
from gateway.media import Frame, StreamKind, StreamState

from .fake_camera import (
    FAST,
    PASSWORD,
    PICTURE,
    FakeCamera,
    Request,
    Responder,
    camera_for,
    close_after,
    digest_guard,
    mpeg,
    running,
    send,
    states,
    status,
    streaming,
    until,
)

pytestmark = pytest.mark.timeout(20)


async def test_live_mpeg2_stream_counts_frames_and_describes_itself() -> None:
    fake = FakeCamera([mpeg()])
    frames: list[Frame] = []
    async with running(fake):
        stream = CameraStream(camera_for(fake), StreamKind.MPEG2, on_frame=frames.append)
        assert stream.snapshot()["state"] == "idle"
        async with streaming(stream):
            await until(lambda: stream.frames_in >= 20)
            snap = stream.snapshot()
        assert states(stream) == ["connecting", "live", "idle"]
    assert snap["state"] == "live"
    assert snap["content_type"] == "video/mpeg"
    assert snap["resolution"] == "640x480"
    assert snap["codec"] == "MPEG-2 video (elementary stream)"
    assert snap["url"] == f"{fake.url}/axis-cgi/mpeg2/video.cgi"
    assert isinstance(snap["bytes_in"], int)
    assert snap["bytes_in"] >= 20 * len(PICTURE)
    assert frames[0].seq == 0
    assert [f.seq for f in frames[:5]] == [0, 1, 2, 3, 4]
    assert all(a.pts <= b.pts for a, b in itertools.pairwise(frames))
    assert frames[-1].received_ns > 0
    assert stream.latest is frames[-1]
    assert float(snap["fps_in"]) > 0  # type: ignore[arg-type]
    request = fake.requests[0]
    assert request.headers["host"] == f"127.0.0.1:{fake.port}"
    assert request.headers["connection"] == "close"
    assert request.headers["accept"] == "video/mpeg, video/mp2t;q=0.5"
    assert request.headers["user-agent"].startswith("gateway/")
    assert "authorization" not in request.headers
    # Socket reads landed in the consumer's blocks: only the bytes sharing the head's
    # read were copied, once.
    assert stream.bytes_copied <= 4096


async def test_a_failing_callback_is_logged_once_and_ingest_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(frame: Frame) -> None:
        raise ValueError(f"bad frame {frame.seq}")

    fake = FakeCamera([mpeg()])
    async with running(fake):
        stream = CameraStream(camera_for(fake), StreamKind.MPEG2, on_frame=broken)
        async with streaming(stream):
            await until(lambda: stream.frames_in >= 10)
    assert stream.callback_errors >= 10
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "camera cam1 mpeg2: on_frame callback failed: ValueError('bad frame 0')"
    ]


async def test_stall_reconnects() -> None:
    fake = FakeCamera([mpeg(frames=5)])
    async with running(fake):
        stream = CameraStream(camera_for(fake), StreamKind.MPEG2, policy=FAST, stall_timeout=0.3)
        async with streaming(stream):
            await until(lambda: stream.reconnects >= 2 and stream.state is StreamState.LIVE)
            assert stream.last_error == "stalled: no data for 0.3 s"
    assert states(stream)[:5] == ["connecting", "live", "backoff", "connecting", "live"]
    assert len(fake.requests) >= 3


async def test_close_mid_stream_reconnects_and_seq_restarts() -> None:
    fake = FakeCamera([close_after(3)])
    frames: list[Frame] = []
    async with running(fake):
        policy = ReconnectPolicy(initial=0.05, maximum=0.1, jitter=0.0)
        stream = CameraStream(
            camera_for(fake), StreamKind.MPEG2, policy=policy, on_frame=frames.append
        )
        async with streaming(stream):
            await until(lambda: stream.reconnects >= 2)
            assert stream.last_error == "connection closed by the camera"
    assert [f.seq for f in frames].count(0) >= 2


@pytest.mark.parametrize(
    ("responder", "error"),
    [
        (status("503 Service Unavailable"), "HTTP 503 Service Unavailable"),
        (status("200 OK", "text/html"), "unexpected content type text/html"),
        (status("404 Not Found"), "HTTP 404 Not Found"),
        (status("200 OK", "application/json"), "unexpected content type application/json"),
    ],
)
async def test_unusable_answers_are_classified_and_backed_off(
    responder: Responder, error: str
) -> None:
    fake = FakeCamera([responder, responder, mpeg()])
    async with running(fake):
        stream = CameraStream(camera_for(fake), StreamKind.MPEG2, policy=FAST)
        async with streaming(stream):
            await until(lambda: stream.state is StreamState.LIVE)
            assert stream.last_error == error
            assert stream.reconnects == 2
    expected = ["connecting", "backoff", "connecting", "backoff", "connecting", "live"]
    assert states(stream)[:6] == expected


async def test_malformed_response_is_a_protocol_failure() -> None:
    async def garbage(request: Request) -> None:
        await send(request, b"SPAM 200 OK\r\n\r\n")

    fake = FakeCamera([garbage, mpeg()])
    async with running(fake):
        stream = CameraStream(camera_for(fake), StreamKind.MPEG2, policy=FAST)
        async with streaming(stream):
            await until(lambda: stream.state is StreamState.LIVE)
    assert stream.last_error == "malformed status line b'SPAM 200 OK'"


async def test_digest_auth_reuses_the_nonce_across_reconnects() -> None:
    fake = FakeCamera([digest_guard(close_after(3))])
    async with running(fake):
        cam = camera_for(fake, username="root", password=Secret(PASSWORD))
        stream = CameraStream(cam, StreamKind.MPEG2, policy=FAST)
        async with streaming(stream):
            await until(lambda: len(fake.requests) >= 4)
    # First connection: challenge, then answer. Reconnects answer at once with nc+1.
    assert "authorization" not in fake.requests[0].headers
    answers = [r.headers["authorization"] for r in fake.requests[1:4]]
    assert [re.search(r"nc=(\w+)", a)[1] for a in answers] == [  # type: ignore[index]
        "00000001",
        "00000002",
        "00000003",
    ]
    assert stream.last_error == "connection closed by the camera"


async def test_stale_nonce_is_renewed_without_a_failure() -> None:
    fake = FakeCamera([digest_guard(mpeg(), stale_first=True)])
    async with running(fake):
        cam = camera_for(fake, username="root", password=Secret(PASSWORD))
        stream = CameraStream(cam, StreamKind.MPEG2, policy=FAST)
        async with streaming(stream):
            await until(lambda: stream.frames_in >= 3)
            assert stream.reconnects == 0
            assert stream.last_error is None
    # no auth -> 401; n1 answer -> stale; n2 answer -> 200
    assert len(fake.requests) == 3
    assert 'nonce="n2"' in fake.requests[2].headers["authorization"]


async def test_wrong_password_fails_once_quietly_and_never_leaks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeCamera([digest_guard(mpeg())])
    async with running(fake):
        cam = camera_for(fake, username="root", password=Secret("wrong-" + PASSWORD))
        stream = CameraStream(cam, StreamKind.MPEG2, policy=FAST)
        async with streaming(stream):
            await until(lambda: stream.state is StreamState.FAILED)
            await asyncio.sleep(0.5)
            snap = stream.snapshot()
            assert stream.state is StreamState.FAILED
    assert snap["last_error"] == "401 Unauthorized: check credentials"
    assert snap["state"] == "failed"
    # Two requests (challenge, one answer), then a minute's wait: no tight loop.
    assert len(fake.requests) == 2
    records = [r for r in caplog.records if r.name.startswith("gateway")]
    assert len(records) == 1
    assert records[0].getMessage() == (
        "camera cam1 mpeg2: 401 Unauthorized: check credentials; retrying in 60.0 s"
    )
    everything = caplog.text + json.dumps(snap) + repr(stream.__dict__)
    assert PASSWORD not in everything


async def test_basic_auth_and_no_credentials() -> None:
    async def guard(request: Request) -> None:
        token = base64.b64encode(f"root:{PASSWORD}".encode()).decode()
        if request.headers.get("authorization") == f"Basic {token}":
            await mpeg()(request)
        else:
            await status("401 Unauthorized", extra='WWW-Authenticate: Basic realm="cam"\r\n')(
                request
            )

    fake = FakeCamera([guard])
    async with running(fake):
        cam = camera_for(fake, username="root", password=Secret(PASSWORD))
        async with streaming(CameraStream(cam, StreamKind.MPEG2, policy=FAST)) as stream:
            await until(lambda: stream.frames_in >= 3)
        anonymous = CameraStream(camera_for(fake), StreamKind.MPEG2, policy=FAST)
        async with streaming(anonymous):
            await until(lambda: anonymous.state is StreamState.FAILED)
    assert anonymous.last_error == "401 Unauthorized: no credentials configured"


async def test_cross_origin_redirect_is_never_followed_and_gets_no_credentials() -> None:
    other = FakeCamera([mpeg()])
    async with running(other):
        redirect = status("302 Found", extra=f"Location: {other.url}/stream\r\n")
        fake = FakeCamera([digest_guard(redirect)])
        async with running(fake):
            cam = camera_for(fake, username="root", password=Secret(PASSWORD))
            stream = CameraStream(cam, StreamKind.MPEG2, policy=FAST)
            async with streaming(stream):
                await until(lambda: stream.last_error is not None)
    assert stream.last_error == (
        "HTTP 302 Found: redirect to another origin (127.0.0.1) not followed"
    )
    assert other.requests == []


async def test_same_origin_redirect_is_followed_with_credentials_and_bounded() -> None:
    hops = 0

    async def hop(request: Request) -> None:
        nonlocal hops
        if request.path.startswith("/moved"):
            await mpeg()(request)
            return
        hops += 1
        await status("301 Moved", extra="Location: /moved/video.cgi\r\n")(request)

    fake = FakeCamera([digest_guard(hop)])
    async with running(fake):
        cam = camera_for(fake, username="root", password=Secret(PASSWORD))
        async with streaming(CameraStream(cam, StreamKind.MPEG2, policy=FAST)) as stream:
            await until(lambda: stream.frames_in >= 3)
    assert fake.requests[-1].path == "/moved/video.cgi"
    assert "authorization" in fake.requests[-1].headers

    loop = FakeCamera([status("302 Found", extra="Location: /again\r\n")])
    async with running(loop):
        target = Target.parse(loop.url + "/start")
        with pytest.raises(UpstreamError, match="too many redirects"):
            await open_stream(target, lambda h: RawConsumer("video/mpeg"), lambda e: None)
    assert len(loop.requests) == 3


async def test_chunked_body_is_decoded_zero_copy() -> None:
    fake = FakeCamera([mpeg(chunked=True)])
    async with running(fake), streaming(CameraStream(camera_for(fake), StreamKind.MPEG2)) as stream:
        await until(lambda: stream.frames_in >= 20)
        received = stream.bytes_in
    assert stream.resolution == (640, 480)
    # Chunk data went into the consumer's blocks; only bytes sharing a read with a
    # chunk-size line (64-byte scratch) or the head were copied.
    assert stream.bytes_copied < received / 4


async def test_connect_refused_backs_off() -> None:
    fake = FakeCamera([mpeg()])
    await fake.start()
    await fake.stop()  # nothing listens on that port now
    stream = CameraStream(camera_for(fake), StreamKind.MPEG2, policy=FAST)
    async with streaming(stream):
        await until(lambda: stream.reconnects >= 1)
    assert stream.last_error is not None
    assert stream.last_error.startswith(f"cannot connect to 127.0.0.1:{fake.port}")


async def test_auth_error_from_open_stream() -> None:
    fake = FakeCamera([status("403 Forbidden")])
    async with running(fake):
        with pytest.raises(AuthError, match="403 Forbidden"):
            await open_stream(
                Target.parse(fake.url), lambda h: RawConsumer("video/mpeg"), lambda e: None
            )


def test_stream_path() -> None:
    cam = CameraConfig(name="c", index=1, source="http://cam")
    assert stream_path(cam, StreamKind.MJPEG, None) == "/axis-cgi/mjpg/video.cgi"
    assert stream_path(cam, StreamKind.MPEG2, 5) == "/axis-cgi/mpeg2/video.cgi"
    assert stream_path(cam, StreamKind.AUDIO, 5) == "/axis-cgi/audio/receive.cgi"
    from gateway.config import RateParam  # noqa: PLC0415

    cam = CameraConfig(
        name="c", index=1, source="http://cam", channel=2, resolution=(320, 240),
        rate_param=RateParam.DES_FPS,
    )  # fmt: skip
    assert stream_path(cam, StreamKind.MJPEG, 10) == (
        "/axis-cgi/mjpg/video.cgi?camera=2&resolution=320x240&des_fps=10"
    )
    assert stream_path(cam, StreamKind.MPEG2, 10) == "/axis-cgi/mpeg2/video.cgi?camera=2"
    assert stream_path(cam, StreamKind.AUDIO, None) == "/axis-cgi/audio/receive.cgi"


async def test_probe_reports_each_endpoint_without_the_password() -> None:
    async def router(request: Request) -> None:
        if request.path.startswith("/axis-cgi/mpeg2/"):
            await mpeg()(request)
        else:
            await status("404 Not Found")(request)

    fake = FakeCamera([digest_guard(router)])
    async with running(fake):
        url = f"http://root:{PASSWORD}@127.0.0.1:{fake.port}"
        report = await probe(url, timeout=5.0, duration=0.5)
    text = report.render()
    assert PASSWORD not in text
    assert report.ok
    assert text.splitlines()[0] == f"probe {fake.url}/"
    mpeg2 = report.endpoints[1]
    assert mpeg2.path == "/axis-cgi/mpeg2/video.cgi"
    assert mpeg2.status == "HTTP 200 OK"
    assert mpeg2.resolution == (640, 480)
    assert mpeg2.codec == "MPEG-2 video (elementary stream)"
    assert mpeg2.server == "fake"
    assert mpeg2.frames > 5
    assert mpeg2.fps is not None
    assert report.endpoints[0].error == "HTTP 404 Not Found"
    assert "/axis-cgi/mjpg/video.cgi: HTTP 404 Not Found" in text
    assert "  resolution:   640x480" in text


async def test_probe_with_a_wrong_password_says_so() -> None:
    fake = FakeCamera([digest_guard(mpeg())])
    async with running(fake):
        url = f"http://root:wrong{PASSWORD}@127.0.0.1:{fake.port}/axis-cgi/mpeg2/video.cgi"
        report = await probe(url, timeout=5.0, duration=0.2)
    assert not report.ok
    assert report.render() == (
        f"probe {fake.url}/axis-cgi/mpeg2/video.cgi\n"
        "/axis-cgi/mpeg2/video.cgi: 401 Unauthorized: check credentials"
    )


def test_runs_under_uvloop() -> None:
    """The gateway serves under uvloop, whose transports are not asyncio.Transport."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> int:
        fake = FakeCamera([mpeg()])
        async with running(fake), streaming(CameraStream(camera_for(fake), StreamKind.MPEG2)) as s:
            await until(lambda: s.frames_in >= 5)
            return s.frames_in

    assert uvloop.run(scenario()) >= 5
