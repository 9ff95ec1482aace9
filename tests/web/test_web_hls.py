"""hls.js in Chromium plays the gateway's LL-HLS: from parts in low-latency mode, from
whole segments without it, with the glass-to-player latency read off the pictures.

The camera is the embedded default config's simulator (``demo``); the harness
(tests/web/hls_player.py) and how latency is read (tests/web/frames.py) are tested on
their own against FFmpeg's HLS (test_hls_harness.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from tests.publish.hls.m3u8 import parse
from tests.web.hls_player import OpenPlayer, PlayerStats

logger = logging.getLogger(__name__)

#: Glass-to-player bounds, far above what is measured (~1 s from parts, ~3.5 s from
#: segments): these check that the player follows the live edge, not the tuning.
MAX_LOW_LATENCY_NS = 5_000_000_000
MAX_SEGMENT_LATENCY_NS = 10_000_000_000
#: Samples of the glass-to-player latency.
SAMPLES = 5
#: Segments a player without LL-HLS needs to start: HOLD-BACK (3 target durations)
#: from the end of the playlist, and one to play from.
HOLD_BACK_SEGMENTS = 4


async def warm_up(url: str, segments: int) -> None:
    """Start the demo camera's session and wait until its playlist has ``segments``."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/hls/demo/index.m3u8") as response:
            assert response.status == 200
            media = f"{url}/hls/demo/{(await response.text()).splitlines()[-1]}"
        complete = 0
        while complete < segments:
            async with session.get(media) as response:
                playlist = parse(await response.text())
            complete = len(playlist.complete)
            # A blocking reload for the next segment (§6.2.5.2).
            msn = playlist.media_sequence + complete
            async with session.get(f"{media}?_HLS_msn={msn}") as response:
                assert response.status == 200


async def hls_output(url: str) -> dict[str, Any]:
    """Return the demo camera's ``/api`` ``outputs.hls``."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/api/cameras/demo") as response,
    ):
        assert response.status == 200
        output: dict[str, Any] = (await response.json())["outputs"]["hls"]
        return output


async def play(
    hls_player: OpenPlayer, url: str, config: Mapping[str, object] | None = None
) -> tuple[list[int], PlayerStats]:
    """Play the demo camera; return glass-to-player latencies (ns) and hls.js's figures."""
    player = await hls_player(f"{url}/hls/demo/index.m3u8", config)
    await player.wait_playing(2.0)
    samples = await player.latency_samples(SAMPLES)
    stats = await player.stats()
    output = await hls_output(url)
    errors = await player.errors()
    await player.close()
    assert errors == []
    frames = [shown.frame for shown in samples]
    assert frames == sorted(set(frames)), frames  # the block code advances
    assert stats.live is True
    assert stats.can_block_reload
    assert stats.target_duration_s == 1
    assert stats.part_target_s == pytest.approx(0.2)
    assert stats.total_frames > 0
    # One player, counted by the connections that asked for playlists lately.
    assert output["state"] == "running"
    assert 1 <= output["viewers"] <= 3, output
    logger.info(
        "hls.js %s %s: glass-to-player %s ms, hls.latency %.2f s (target %s), buffer %.2f s,"
        " %d parts, %d segments, %d playlists, counted as %d viewers, cold start %s s",
        player.version,
        dict(config or {}),
        [round(s.latency_ns / 1e6) for s in samples],
        stats.latency_s,
        stats.target_latency_s,
        stats.buffer_s,
        stats.parts_loaded,
        stats.fragments_loaded,
        stats.playlist_updates,
        output["viewers"],
        output["cold_start_seconds"],
    )
    return [shown.latency_ns for shown in samples], stats


async def test_low_latency_hls_js_plays_from_parts(
    gateway_url: str, hls_player: OpenPlayer, request: pytest.FixtureRequest
) -> None:
    latencies, stats = await play(hls_player, gateway_url)
    for latency in latencies:
        assert 0 < latency < MAX_LOW_LATENCY_NS, latencies
    # Parts were loaded (blocking reloads follow each one) ...
    assert stats.parts_loaded >= 5
    assert stats.playlist_updates >= stats.parts_loaded // 2
    # ... and hls.js aims at PART-HOLD-BACK (0.6 s) behind the live edge.
    assert stats.target_latency_s is not None
    assert stats.target_latency_s < 1.5
    request.node.user_properties.append(
        ("glass_to_player_ms", [round(latency / 1e6) for latency in latencies])
    )


async def test_hls_js_without_low_latency_plays_whole_segments(
    gateway_url: str, hls_player: OpenPlayer, request: pytest.FixtureRequest
) -> None:
    # A running camera: at a cold start the playlist is one segment, shorter than
    # HOLD-BACK, and a player that starts from whole segments runs dry once.
    await warm_up(gateway_url, HOLD_BACK_SEGMENTS)
    latencies, stats = await play(hls_player, gateway_url, {"lowLatencyMode": False})
    for latency in latencies:
        assert 0 < latency < MAX_SEGMENT_LATENCY_NS, latencies
    assert stats.parts_loaded == 0
    assert stats.fragments_loaded >= 2
    request.node.user_properties.append(
        ("glass_to_player_ms", [round(latency / 1e6) for latency in latencies])
    )
