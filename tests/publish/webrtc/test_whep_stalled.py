"""A player that stops reading never delays the others, and its session is ended.

Three players watch one camera; one runs in a process of its own that the test freezes
(SIGSTOP): it reads nothing and sends no RTCP. The two others keep getting every frame
the encode makes (their sessions send as the ring fills, never cut back, and their
decoders see it all), and after ``consent_timeout`` the frozen player's session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from gateway.publish.webrtc import SESSIONS
from gateway.transcode.encode import h264_key
from tests.publish.axis_client import gateway

from .whep_client import whep_player
from .whep_helpers import sim_camera, until, webrtc_toml

FPS = 25
CONSENT_TIMEOUT = 3.0
ROOT = Path(__file__).resolve().parents[3]


@contextlib.asynccontextmanager
async def player_process(url: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``player_process`` on ``url``; kill it (stopped or not) when the block ends."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.publish.webrtc.player_process",
        url,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
        await process.wait()


async def read_until(process: asyncio.subprocess.Process, prefix: str) -> str:
    """Return the rest of the process's first output line starting with ``prefix``."""
    assert process.stdout is not None
    async with asyncio.timeout(30):
        while line := (await process.stdout.readline()).decode():
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
    raise AssertionError(f"the player process ended before {prefix!r}")


async def test_a_frozen_player_delays_no_one_and_is_ended() -> None:
    toml = webrtc_toml(
        sim_camera(fps=FPS, size="320x240"), webrtc=f"consent_timeout = {CONSENT_TIMEOUT}\n"
    )
    async with gateway(toml) as gw, aiohttp.ClientSession() as http:
        await gw.live()
        url = f"{gw.base}/whep/cam"
        sessions = gw.app[SESSIONS]
        async with (
            player_process(url) as process,
            whep_player(http, url, keep=False) as one,
            whep_player(http, url, keep=False) as two,
        ):
            location = await read_until(process, "session ")
            await read_until(process, "pictures ")
            await one.wait_pictures(5)
            await two.wait_pictures(5)
            frozen = sessions.live[location.rsplit("/", 1)[1]]
            others = [s for s in sessions.live.values() if s is not frozen]
            assert len(others) == 2
            encode = gw.media().renditions.get(h264_key())
            assert encode is not None
            os.kill(process.pid, signal.SIGSTOP)
            seq = encode.ring.next_seq
            pictures = [one.picture_count, two.picture_count]
            sent = [s.tracks[0].counters.frames for s in others]
            cuts = [s.snapshot()["cuts"] for s in others]

            await until(lambda: frozen.state == "closed", CONSENT_TIMEOUT + 10, "frozen ended")
            assert frozen.close_reason == f"no RTCP from the peer for {CONSENT_TIMEOUT:g} s"
            made = encode.ring.next_seq - seq
            assert made >= (CONSENT_TIMEOUT - 1.5) * FPS * 0.8
            # The others' sessions sent every frame as it came (a frame or two in
            # flight), never cut back to a keyframe for being late.
            for session, before, cut in zip(others, sent, cuts, strict=True):
                assert session.state == "connected"
                assert session.tracks[0].counters.frames - before >= made - 2
                snapshot = session.snapshot()
                assert (snapshot["cuts"], snapshot["skipped"]) == (cut, 0)
            # ... and their players decoded them as they came (the last few may still be
            # in the jitter buffer or the decoder thread; a loaded machine may hold a few
            # more), then all of them.
            for player, before in zip((one, two), pictures, strict=True):
                assert player.picture_count - before >= 0.9 * made - 5
                await player.wait_pictures(before + made - 2)
            assert set(sessions.live.values()) == set(others)
            assert sum(sessions.ended.values()) == 1
