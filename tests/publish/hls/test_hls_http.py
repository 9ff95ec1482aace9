"""LL-HLS over HTTP on loopback: playlists, blocking reload, errors, caching, sessions, load.

The camera is the embedded simulator at 25 fps with its 1 kHz tone; the gateway's shared
H.264 and AAC encodes feed one segmenter (1 s segments, 0.2 s parts). Timing checks
compare the gateway's own stamps (``Part.completed_ns``, monotonic) with when answers
arrived, and every wait is on a condition with a generous bound, so a busy machine makes
the tests slower, not wrong.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from yarl import URL

from gateway.publish.axis import AxisSettings
from gateway.publish.hls.parts import PartStatus
from gateway.publish.hls.segmenter import Segmenter
from gateway.publish.hls.server import HLS_CAMERAS, HlsCamera
from gateway.sim import SimOptions, SimServer
from gateway.transcode.audio_codecs import AudioEncoding
from gateway.transcode.audio_rendition import audio_key
from gateway.transcode.encode import H264_KIND, h264_key
from tests.app.stream_client import api_camera, until
from tests.publish.axis_client import Gateway, camera_toml, gateway
from tests.publish.test_mp4 import TONE_HZ, dominant_hz, play

from .http_client import Viewer, blocking, get, get_raw, hint, part_url, parts, variant
from .m3u8 import parse, problems

logger = logging.getLogger(__name__)

FPS = 25
TOML = camera_toml(fps=FPS, extra="audio = true\n")
#: A short encode linger: the idle-stop test sees the encodes stop within a second.
SETTINGS = AxisSettings(encode_linger=0.5)
IMMUTABLE_MAX_AGE = 365 * 24 * 3600
FFMPEG = shutil.which("ffmpeg")
#: How late after its part's completion a held answer may arrive, median and worst (ns):
#: a wakeup, a render and loopback; polling every part target would show ~100 ms.
HELD_MEDIAN_NS = 60_000_000
HELD_WORST_NS = 1_000_000_000


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async with gateway(TOML, SETTINGS) as running:
        await running.live()
        yield running


def hls_camera(gw: Gateway, name: str = "cam") -> HlsCamera:
    """Return the camera's HLS side."""
    return gw.app[HLS_CAMERAS][name]


def segmenter_of(gw: Gateway) -> Segmenter:
    """Return the running session's segmenter."""
    segmenter = hls_camera(gw).segmenter
    assert segmenter is not None, "no HLS session running"
    return segmenter


async def open_session(session: aiohttp.ClientSession, gw: Gateway, name: str = "cam") -> str:
    """Ask for the camera's multivariant playlist; return its media playlist's URL."""
    answer = await get(session, f"{gw.base}/hls/{name}/index.m3u8")
    assert answer.status == 200, answer.text
    _, uri = variant(answer.text)
    return f"{gw.base}/hls/{name}/{uri}"


def assert_error(status: int, body: bytes, expected: int, message: str = "") -> None:
    """Assert an answer is ``expected`` with a one-line ``Error:`` body."""
    text = body.decode()
    assert status == expected, (status, text)
    assert text.startswith("Error: "), text
    assert text.endswith("\n"), text
    assert text.count("\n") == 1, text
    assert message in text


async def test_playlists_point_into_the_session_and_keep_the_rules(gw: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        asked = time.monotonic()
        answer = await get(session, f"{gw.base}/hls/cam/index.m3u8")
        cold_start = time.monotonic() - asked
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert answer.headers["Cache-Control"] == "no-cache"
        inf, uri = variant(answer.text)
        hls = (await api_camera(gw))["outputs"]["hls"]
        assert uri == f"{hls['session']}/media.m3u8"
        assert int(inf["BANDWIDTH"]) >= int(inf["AVERAGE-BANDWIDTH"]) > 10_000
        video, audio = inf["CODECS"].split(",")
        assert video.startswith("avc1.")
        assert len(video) == len("avc1.42c01f")
        assert audio == "mp4a.40.2"
        assert inf["RESOLUTION"] == "640x480"
        assert hls["state"] == "running"
        assert hls["starts"] == 1
        assert 0 < hls["cold_start_seconds"] <= cold_start
        figure = hls["cold_start_seconds"]
        logger.info("cold start: %.3f s to the first playlist (%s s in /api)", cold_start, figure)

        # The media playlist keeps RFC 8216bis's rules as it grows (a blocking reload
        # per segment, for three segments).
        media = f"{gw.base}/hls/cam/{uri}"
        answer = await get(session, media)
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert answer.headers["Cache-Control"] == "no-cache"
        # A cold start answers with the first segment complete (FFmpeg needs one), and
        # numbers from 1 (hls.js mistakes a part of segment 0 for none).
        assert parse(answer.text).complete[0].uri == "seg1.m4s"
        assert parse(answer.text).media_sequence == 1
        for _ in range(3):
            assert problems(answer.text) == [], answer.text
            after = parse(answer.text).media_sequence + len(parse(answer.text).complete)
            answer = await get(session, f"{media}?_HLS_msn={after}")
            assert answer.status == 200
            assert answer.headers["Cache-Control"].startswith("public, max-age=")
            assert f"seg{after}.m4s" in answer.text
        playlist = parse(answer.text)
        assert playlist.complete

        # Media files are immutable under their session's URL.
        base = media.rpartition("/")[0]
        (msn, index), segment = parts(answer.text)[-1], playlist.complete[-1].uri
        for name in ("init0.mp4", segment, f"part{msn}.{index}.m4s"):
            answer = await get(session, f"{base}/{name}")
            assert answer.status == 200, name
            assert answer.headers["Content-Type"] == "video/mp4"
            assert int(answer.headers["Content-Length"]) == len(answer.body) > 0
            directives = answer.headers["Cache-Control"].split(", ")
            assert "immutable" in directives
            assert "public" in directives
            assert f"max-age={IMMUTABLE_MAX_AGE}" in directives
        assert answer.body[4:8] == b"moof"


async def test_a_blocking_reload_is_answered_when_its_part_completes(gw: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        media = await open_session(session, gw)
        text = (await get(session, media)).text
        delays: list[int] = []
        for _ in range(10):
            msn, index = hint(text)
            answer = await get(session, blocking(media, msn, index))
            assert answer.status == 200
            assert answer.headers["Cache-Control"].startswith("public, max-age=")
            segmenter = segmenter_of(gw)
            # The hinted part, or the next segment's first when the segment ended first.
            part = segmenter.part(msn, index) or segmenter.part(msn + 1, 0)
            assert part is not None
            assert f'URI="part{part.msn}.{part.index}.m4s"' in answer.text
            assert part.completed_ns <= answer.arrived_ns
            if part.completed_ns > answer.sent_ns:  # held (not there yet when asked)
                delays.append(answer.arrived_ns - part.completed_ns)
            text = answer.text
    # Answered when the part completed: one wakeup later, not at a polling tick.
    assert len(delays) >= 7, delays
    assert statistics.median(delays) < HELD_MEDIAN_NS, delays
    assert max(delays) < HELD_WORST_NS, delays
    logger.info("held playlist answered %s ms after its part", [d // 1_000_000 for d in delays])


async def test_the_preload_hinted_part_is_sent_when_complete(gw: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        media = await open_session(session, gw)
        answer = await get(session, media)
        # A hint early in its segment: that part surely comes (a segment lasts ~5 parts).
        while not 1 <= hint(answer.text)[1] <= 3:
            answer = await get(session, blocking(media, *hint(answer.text)))
        msn, index = hint(answer.text)
        got = await get(session, part_url(media, msn, index))
        assert got.status == 200
        part = segmenter_of(gw).part(msn, index)
        assert part is not None
        assert got.body == b"".join(bytes(chunk) for chunk in part.chunks)
        assert got.sent_ns < part.completed_ns <= got.arrived_ns
        assert "immutable" in got.headers["Cache-Control"]
        # A part beyond the hint is not waited for.
        status, _, body = await get_raw(gw.port, URL(part_url(media, msn + 1, 3)).path)
        assert_error(status, body, 404, f"no part{msn + 1}.3.m4s in this session")


async def test_directive_errors_are_400(gw: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        media = URL(await open_session(session, gw)).path
        far = segmenter_of(gw).building_msn + 3
        for query, message in [
            ("_HLS_part=1", "_HLS_part without _HLS_msn"),
            (f"_HLS_msn={far}", "beyond what the server will wait for"),
            (f"_HLS_msn={far - 2}&_HLS_part=40", "beyond what the server will wait for"),
            ("_HLS_msn=-1", "_HLS_msn must be a decimal-integer"),
            ("_HLS_msn=1&_HLS_msn=2", "_HLS_msn given twice"),
            ("_HLS_skip=NO", "_HLS_skip must be YES or v2"),
        ]:
            status, _, body = await get_raw(gw.port, f"{media}?{query}")
            assert_error(status, body, 400, message)


async def test_names_outside_the_session_are_404_without_a_traceback(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    async with aiohttp.ClientSession() as session:
        media = URL(await open_session(session, gw)).path
    base = media.rpartition("/")[0]
    caplog.set_level(logging.INFO)
    for target, message in [
        (f"{base}/seg99999.m4s", "no seg99999.m4s in this session"),
        (f"{base}/init7.mp4", "no init7.mp4 in this session"),
        (f"{base}/seg01.m4s", "no such HLS resource"),
        (f"{base}/index.m3u8", "no such HLS resource"),
        (f"{base}/media.m3u8.bak", "no such HLS resource"),
        (f"{base}/%2e%2e", "no such HLS resource"),
        (f"{base}/..%2fmedia.m3u8", "no such HLS resource"),
        (f"{base}/%2e%2e/media.m3u8", "no such HLS resource"),
        (f"{base}/../media.m3u8", "no such HLS resource"),
        (f"{base}/../../index.m3u8", "no such HLS resource"),
        (f"{base}/part{'1' * 60}.0.m4s", "no such HLS resource"),
        (f"{base}/{'x' * 4000}", "no such HLS resource"),
        ("/hls/cam/00000000/seg0.m4s", "no such HLS session"),
        ("/hls/cam/0123456789abcdef0/seg0.m4s", "no such HLS resource"),
        ("/hls/cam/not-hex/seg0.m4s", "no such HLS resource"),
        ("/hls/%2e%2e/index.m3u8", "no camera '..'"),
        ("/hls/nothere/index.m3u8", "no camera 'nothere'"),
    ]:
        status, head, body = await get_raw(gw.port, target)
        assert_error(status, body, 404, message)
        # An error must not be kept by a CDN in front (it would answer every viewer).
        assert head.get("cache-control") == "no-store", target
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


async def test_a_stalled_camera_gets_503_after_three_target_durations() -> None:
    # The camera sends 3 s of pictures on its connection, then nothing (and the ingest
    # waits a minute before it calls that a stall).
    sim = SimServer(SimOptions(channels=1, quirks=frozenset({"stall-after=75"})))
    await sim.start("127.0.0.1", 0)
    toml = (
        f'[[cameras]]\nname = "cam"\nsource = "{sim.url}"\nmjpeg = true\nfps = {FPS}\n'
        'resolution = "640x480"\nstall_timeout = 60.0\n'
    )
    try:
        async with gateway(toml, SETTINGS) as gw, aiohttp.ClientSession() as session:
            await gw.live()
            media = await open_session(session, gw)
            ring = gw.media().renditions.get(h264_key())
            assert ring is not None
            # Stalled: the ingest has every picture sent, and the encode has no more.
            await until(lambda: gw.ingest().frames_in >= 75, within=30)
            await stable(lambda: ring.ring.frames_published, seconds=0.5)
            text = (await get(session, media)).text
            msn, index = hint(text)
            loop = asyncio.get_running_loop()
            started = loop.time()
            held, part = await asyncio.gather(
                get(session, blocking(media, msn, index)), get(session, part_url(media, msn, index))
            )
            waited = loop.time() - started
    finally:
        await sim.stop()
    assert_error(held.status, held.body, 503, "did not reach the requested part in time")
    assert_error(part.status, part.body, 503, "the part did not come in time")
    # Three target durations (3 s), then the answer.
    assert 3.0 <= waited < 6.0, waited


async def stable(value: Any, seconds: float, within: float = 20.0) -> None:
    """Wait until ``value()`` stayed the same for ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last, since = value(), loop.time()
    while loop.time() - since < seconds:
        assert loop.time() < deadline, "never settled"
        await asyncio.sleep(0.05)
        if (now := value()) != last:
            last, since = now, loop.time()


async def test_idle_stop_releases_the_encodes_and_an_old_playlist_redirects() -> None:
    idle = 0.8  # shorter than a cold start (~1 s) and a blocking reload: held is not idle
    async with gateway(TOML + f"[hls]\nidle_seconds = {idle}\n", SETTINGS) as gw:
        await gw.live()
        media = gw.media()
        async with aiohttp.ClientSession() as session:
            old = await open_session(session, gw)
            first = await api_camera(gw)
            answer = await get(session, old)
            assert answer.status == 200
            # The segment after the one in progress: 1 to 2 s away.
            playlist = parse(answer.text)
            msn = playlist.media_sequence + len(playlist.complete) + 1
            answer = await get(session, f"{old}?_HLS_msn={msn}")
            assert answer.status == 200
            assert answer.arrived_ns - answer.sent_ns > idle * 1e9
            last_request = time.monotonic()
        assert first["outputs"]["hls"]["state"] == "running"
        states = {e["kind"]: e["state"] for e in first["renditions"]}
        assert states == {"pcm": "active", "h264": "active", "aac": "active"}

        # No request for idle_seconds: the session stops and lets go of the encodes.
        await until(lambda: hls_camera(gw).segmenter is None, within=10)
        assert time.monotonic() - last_request >= idle - 0.05
        assert {e["state"] for e in media.renditions.stats(H264_KIND)} <= {"lingering"}
        hls = (await api_camera(gw))["outputs"]["hls"]
        assert (hls["state"], hls["viewers"], hls["starts"]) == ("idle", 0, 1)
        await until(lambda: media.renditions.get(h264_key()) is None, within=10)
        await until(lambda: media.renditions.get(audio_key(AudioEncoding.AAC)) is None)
        assert media.renditions.stopped[H264_KIND] == 1
        kinds = {e["kind"] for e in (await api_camera(gw))["renditions"]}
        assert kinds == {"pcm"}
        # The old session's media files are gone ...
        status, _, body = await get_raw(gw.port, URL(part_url(old, 0, 0)).path)
        assert_error(status, body, 404, "no such HLS session")

        # ... and its playlist (directives and all) leads to a new session.
        async with aiohttp.ClientSession() as session:
            answer = await get(session, blocking(old, 5, 0))
            assert answer.status == 302
            assert answer.headers["Cache-Control"] == "no-store"
            location = URL(old).join(URL(answer.headers["Location"]))
            again = await get(session, str(location))
        hls = (await api_camera(gw))["outputs"]["hls"]
        assert (hls["state"], hls["starts"]) == ("running", 2)
        assert hls["session"] != first["outputs"]["hls"]["session"]
        assert location.path == f"/hls/cam/{hls['session']}/media.m3u8"
        assert location.query == {}
        assert again.status == 200
        assert problems(again.text) == []
        assert media.renditions.started[H264_KIND] == 2


async def test_twenty_viewers_share_one_segmenter_and_one_encode(gw: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        media = await open_session(session, gw)
    viewers = [Viewer(media) for _ in range(20)]
    runs = [asyncio.create_task(viewer.run(wanted=10)) for viewer in viewers]
    try:
        # While they watch: one session, one encode read by one cursor (the segmenter's).
        await until(lambda: all(len(v.fetched) >= 3 for v in viewers), within=30)
        camera = await api_camera(gw)
        counted = camera["outputs"]["hls"]["viewers"]
        async with aiohttp.ClientSession() as session:
            metrics = (await get(session, f"{gw.base}/metrics")).text
        await asyncio.gather(*runs)
    finally:
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
    (h264,) = [e for e in camera["renditions"] if e["kind"] == H264_KIND]
    assert (h264["claims"], h264["consumers"]) == (1, 1)
    assert gw.media().renditions.started[H264_KIND] == 1
    assert camera["outputs"]["hls"]["starts"] == 1
    # A viewer is a connection that asked for a media playlist lately: the 20 (and, for
    # a few seconds, a viewer's second connection had its first one closed).
    assert 20 <= counted <= 21, counted
    assert f'gateway_hls_viewers{{camera="cam"}} {float(counted)}' in metrics.splitlines()
    logger.info("20 viewers counted as %d", counted)
    for viewer in viewers:
        assert viewer.failures == []
        assert len(viewer.fetched) >= 10
        for (m1, i1), (m2, i2) in itertools.pairwise(viewer.fetched):
            assert (m2, i2) in ((m1, i1 + 1), (m1 + 1, 0)), viewer.fetched


async def test_held_requests_cost_no_task_of_their_own(gw: Gateway) -> None:
    """200 blocked playlist requests: one aiohttp task per connection, nothing more."""
    async with aiohttp.ClientSession() as session:
        media = await open_session(session, gw)
        # Right after a segment starts, so the wanted part is ~1.6 s away.
        playlist = parse((await get(session, media)).text)
        msn = playlist.media_sequence + len(playlist.complete) + 1
        assert (await get(session, blocking(media, msn, 0))).status == 200
    waiting = count_waiting(hls_camera(gw))
    target = URL(blocking(media, msn + 1, 3)).path_qs
    before = tasks()
    connections = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(200)]
    try:
        for _, writer in connections:
            writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await until(lambda: waiting() >= 200, within=10, every=0.01)
        grown = tasks() - before
        answers = await asyncio.gather(*(reader.read() for reader, _ in connections))
    finally:
        for _, writer in connections:
            writer.close()
    # aiohttp runs each connection in a task, and each request in one more; the wait
    # for the part adds nothing to that (the test's earlier connections may have ended).
    assert grown[REQUEST_TASK] == 200, grown
    assert 195 <= grown[CONNECTION_TASK] <= 200, grown
    assert grown.keys() <= {REQUEST_TASK, CONNECTION_TASK}, grown
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert f'URI="part{msn + 1}.3.m4s"'.encode() in answer
    logger.info("200 held requests: tasks %s before, %s more while held", before, grown)


def count_waiting(camera: HlsCamera) -> Callable[[], int]:
    """Count the requests held in ``camera.changed`` from now on; return the count's reader."""
    waiting = 0
    original = camera.changed

    async def counted(within: float) -> bool:
        nonlocal waiting
        waiting += 1
        try:
            return await original(within)
        finally:
            waiting -= 1

    camera.changed = counted  # type: ignore[method-assign]
    return lambda: waiting


async def test_a_viewer_that_leaves_while_held_costs_no_error(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    async with aiohttp.ClientSession() as session:
        media = await open_session(session, gw)
        text = (await get(session, media)).text
    msn, index = hint(text)
    waiting = count_waiting(hls_camera(gw))
    handlers = tasks()[REQUEST_TASK]
    targets = [URL(part_url(media, msn, index)).path, URL(blocking(media, msn, index)).path_qs]
    connections = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in targets]
    for target, (_, writer) in zip(targets, connections, strict=True):
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await until(lambda: waiting() == len(targets))
    for _, writer in connections:
        writer.transport.abort()  # gone before the part comes
    # Their handlers return once the part came (the simulator's streams are requests too).
    await until(lambda: tasks()[REQUEST_TASK] <= handlers)
    assert segmenter_of(gw).part_status(msn, index) is not PartStatus.PENDING
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


#: The coroutines of aiohttp's task per connection and per request.
CONNECTION_TASK = "RequestHandler.start"
REQUEST_TASK = "RequestHandler._handle_request"


def tasks() -> Counter[str]:
    """Return the running tasks counted by their coroutine's name."""
    return Counter(getattr(task.get_coro(), "__qualname__", "?") for task in asyncio.all_tasks())


@pytest.mark.skipif(FFMPEG is None, reason="no ffmpeg CLI on this machine")
async def test_ffmpeg_plays_ten_seconds_with_its_tone_then_delta_updates(gw: Gateway) -> None:
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        played = await asyncio.to_thread(play, f"{gw.base}/hls/cam/index.m3u8", 10.0)
    finally:
        av.logging.set_level(previous)
    assert played.problems == []
    assert played.size == (640, 480)
    assert played.pictures == len(played.video_pts)
    assert all(b > a for a, b in itertools.pairwise(played.video_pts))
    assert 0.85 * 10 * FPS <= played.pictures <= 10 * FPS + 3
    numbers = [number for number, _, _ in played.codes]
    assert len(numbers) >= 0.95 * played.pictures
    assert all(b > a for a, b in itertools.pairwise(numbers))
    assert len(numbers) >= 0.9 * (numbers[-1] - numbers[0] + 1)
    assert played.audio_rate == 48_000
    sound = np.concatenate(played.audio)
    assert len(sound) >= 9 * played.audio_rate
    rate = played.audio_rate
    assert dominant_hz(sound[rate // 2 :], rate) == pytest.approx(TONE_HZ, abs=2.0)

    # Over 10 s of segments: a delta update leaves out those beyond the Skip Boundary.
    async with aiohttp.ClientSession() as session:
        media = await open_session(session, gw)
        full = await get(session, media)
        msn, index = hint(full.text)
        delta = await get(session, f"{blocking(media, msn, index)}&_HLS_skip=YES")
    assert delta.status == 200
    assert problems(delta.text) == [], delta.text
    whole, skipped = parse(full.text), parse(delta.text)
    assert whole.skipped == 0
    assert skipped.skipped >= 1
    assert skipped.media_sequence == whole.media_sequence
    first = skipped.segments[0].uri
    assert first == f"seg{whole.media_sequence + skipped.skipped}.m4s"
    assert first in [s.uri for s in whole.segments]
    # Everything from the Skip Boundary on is listed: the delta is the playlist's tail.
    assert sum(s.duration or 0 for s in skipped.complete) >= 6 - 1
