"""The hls.js harness's self-test: it plays the FFmpeg CLI's live HLS of the simulator.

Not a test of the gateway: it shows the harness (tests/web/hls_player.py) plays a real
live HLS stream in Chromium, reads the pictures' block codes, measures glass-to-player
latency and reports no error, so a failure of the gateway's HLS tests is the gateway's.
The FFmpeg stream (tests/web/ffmpeg_hls.py) is also what the gateway's HLS is measured
against.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.sim import SimOptions, SimServer
from tests.web.ffmpeg_hls import ffmpeg_hls, ffmpeg_path
from tests.web.hls_player import OpenPlayer

logger = logging.getLogger(__name__)

#: Far above what hls.js shows on 1 s segments (it holds three target durations back
#: from the live edge); this checks the measurement, not the stream.
MAX_LATENCY_NS = 15_000_000_000
#: Samples of the glass-to-player latency.
SAMPLES = 5


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    """Run the camera simulator (640x480 at 25 fps) on loopback."""
    server = SimServer(SimOptions(channels=1))
    await server.start()
    yield server
    await server.stop()


@pytest.mark.skipif(ffmpeg_path() is None, reason="no FFmpeg CLI on this machine")
async def test_harness_plays_ffmpeg_hls_and_measures_latency(
    hls_player: OpenPlayer, sim: SimServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = sim.url + "/axis-cgi/mjpg/video.cgi"
    directory = tmp_path / "hls"
    directory.mkdir()
    async with ffmpeg_hls(source, directory) as url:
        player = await hls_player(url)
        await player.wait_playing(2.0)
        samples = await player.latency_samples(SAMPLES)
        stats = await player.stats()
        errors = await player.errors()
        await player.close()

    frames = [shown.frame for shown in samples]
    assert frames == sorted(set(frames)), frames  # the code advances
    for shown in samples:
        assert 0 < shown.latency_ns < MAX_LATENCY_NS, shown
    assert stats.live is True
    assert stats.target_duration_s == 1
    assert stats.fragments_loaded >= 2
    assert stats.parts_loaded == 0  # FFmpeg writes no partial segments
    assert not stats.can_block_reload
    assert 0 < stats.latency_s < MAX_LATENCY_NS / 1e9
    assert stats.total_frames > 0
    assert errors == []

    latency_ms = [round(shown.latency_ns / 1e6) for shown in samples]
    request.node.user_properties.append(("glass_to_player_ms", latency_ms))
    logger.info(
        "hls.js %s on FFmpeg's HLS: glass-to-player %s ms, hls.latency %.2f s, buffer %.2f s",
        player.version,
        latency_ms,
        stats.latency_s,
        stats.buffer_s,
    )
