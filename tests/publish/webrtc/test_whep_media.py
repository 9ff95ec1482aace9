"""aiortc plays WHEP on loopback: the shared encode decodes cleanly, and is shared.

The camera is the embedded simulator: each picture carries a block code (frame number,
capture time) that survives the encode, and its audio is a 1 kHz tone. Counts are
taken against the encode's ring and the pictures' own timestamps, never against the
wall clock, so a busy machine only makes the tests slower.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc.codecs import get_decoder

from gateway.publish.webrtc import SESSIONS
from gateway.sim.pattern import read_block_code
from gateway.transcode.audio_codecs import AudioEncoding
from gateway.transcode.audio_rendition import audio_key
from gateway.transcode.encode import H264_KIND, h264_key
from tests.app.stream_client import api_camera
from tests.publish.axis_client import Gateway, gateway

from .whep_client import Player, whep_player
from .whep_helpers import sim_camera, until, webrtc_toml

FPS = 25
HZ = 90_000
TONE_HZ = 1000.0


@dataclass
class DecodeCounts:
    """What the players' decoders were given and made."""

    frames_in: int = 0
    frames_out: int = 0
    errors: int = 0


@contextlib.contextmanager
def counting_decoders(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, DecodeCounts]]:
    """Count every aiortc receiver's decodes and decode errors, by codec name."""
    counts: dict[str, DecodeCounts] = {}

    class Counting:
        def __init__(self, codec: Any) -> None:
            self.inner = get_decoder(codec)
            self.counts = counts.setdefault(codec.name, DecodeCounts())

        def decode(self, encoded_frame: Any) -> list[Any]:
            self.counts.frames_in += 1
            try:
                frames: list[Any] = self.inner.decode(encoded_frame)
            except av.FFmpegError:
                self.counts.errors += 1
                raise
            self.counts.frames_out += len(frames)
            return frames

    # The receivers' decoder threads look the factory up in their module at each start.
    monkeypatch.setattr("aiortc.rtcrtpreceiver.get_decoder", Counting)
    yield counts


@contextlib.contextmanager
def ffmpeg_errors() -> Iterator[list[tuple[int, str, str]]]:
    """Collect FFmpeg's error messages from every thread (the receivers decode in theirs)."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=False) as logs:
            yield logs
    finally:
        av.logging.set_level(previous)


def dominant_hz(samples: npt.NDArray[np.float64], rate: int) -> float:
    """Return the strongest frequency in ``samples``."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def webrtc_clients(camera: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the camera's ``/api`` client entries of kind ``webrtc``."""
    return [c for c in camera["clients"] if c["kind"] == "webrtc"]


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    async with gateway(webrtc_toml(sim_camera(fps=FPS))) as running:
        await running.live()
        yield running


async def test_aiortc_decodes_video_and_opus_without_an_error(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with counting_decoders(monkeypatch) as decodes, ffmpeg_errors() as logs:
        async with (
            aiohttp.ClientSession() as http,
            whep_player(http, f"{gw.base}/whep/cam") as player,
        ):
            await player.wait_pictures(3 * FPS)
            await player.wait_sounds(3 * 50)
            pictures = list(player.pictures)
            sounds = list(player.sounds)
    assert decodes["H264"].errors == 0
    assert decodes["opus"].errors == 0
    assert decodes["H264"].frames_out >= len(pictures)
    assert [entry for entry in logs if entry[0] <= av.logging.ERROR] == []
    assert [r.getMessage() for r in caplog.records if r.name.startswith("aiortc")] == []
    # Every picture whole, at the camera's size, its block code readable and advancing.
    assert {(frame.width, frame.height) for frame, _ in pictures} == {(640, 480)}
    codes = []
    for frame, _ in pictures:
        code = read_block_code(frame.to_ndarray(format="gray"))
        if code is not None:
            assert frame.pts is not None
            codes.append((*code, frame.pts))
    assert len(codes) >= 0.95 * len(pictures)
    numbers = [number for number, _, _ in codes]
    assert all(b > a for a, b in itertools.pairwise(numbers)), "each picture once, in order"
    assert len(numbers) >= 0.9 * (numbers[-1] - numbers[0] + 1), "few pictures skipped"
    # The RTP timestamps follow the camera's capture times (one 90 kHz clock).
    (_, first_ns, first_pts), (_, last_ns, last_pts) = codes[0], codes[-1]
    assert abs((last_pts - first_pts) / HZ - (last_ns - first_ns) / 1e9) < 0.2
    # 48 kHz Opus of the simulator's tone, never silent.
    assert {frame.sample_rate for frame in sounds} == {48_000}
    samples = np.concatenate(
        [f.to_ndarray().reshape(-1, len(f.layout.channels))[:, 0] for f in sounds]
    )
    audio = samples.astype(np.float64) / 32768.0
    assert len(audio) >= 2.9 * 48_000
    assert dominant_hz(audio[48_000 // 2 :], 48_000) == pytest.approx(TONE_HZ, abs=5.0)
    for second in range(len(audio) // 48_000):
        chunk = audio[second * 48_000 : (second + 1) * 48_000]
        assert float(np.sqrt(np.mean(chunk**2))) > 0.05, f"silence in second {second}"


async def test_api_shows_the_session_and_its_round_trip_time(gw: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as http,
        whep_player(http, f"{gw.base}/whep/cam", keep=False) as player,
    ):
        await player.wait_pictures(10)
        await player.wait_sounds(10)
        camera = await api_camera(gw)
        assert camera["outputs"]["webrtc"]["sessions"] == 1
        assert camera["outputs"]["webrtc"]["connected"] == 1
        # What the offer admitted: a Constrained Baseline stream (profile_idc 66 with
        # constraint_set1_flag, RFC 6184 §8.1), level 3.1 at 640x480 and 25 fps.
        (h264,) = [e for e in camera["renditions"] if e["kind"] == H264_KIND]
        assert h264["codec"].lower().startswith("avc1.42")
        assert int(h264["codec"][7:9], 16) & 0x40
        assert int(h264["codec"][9:11], 16) == 31
        (entry,) = webrtc_clients(camera)
        assert entry["state"] == "connected"
        assert entry["remote"] == "127.0.0.1"
        assert player.location.rsplit("/", 1)[1].startswith(entry["session"])
        for kind in ("video", "audio"):
            figures = entry[kind]
            assert figures["frames"] > 0
            assert figures["packets"] >= figures["frames"]
            assert figures["bytes"] > figures["packets"] * 10
            assert figures["keyframe_requests"] == 0
        # Receiver reports come about once a second; the first with a sender report's
        # timestamp to echo gives the round-trip time.
        rtt = None
        for _ in range(100):  # at most 20 s of pictures
            rtt = webrtc_clients(await api_camera(gw))[0]["rtt_ms"]
            if rtt is not None:
                break
            await player.wait_pictures(player.picture_count + FPS // 5)
        assert isinstance(rtt, float)
        assert 0 <= rtt < 1000
    # Once the player is gone, so is its entry.
    await until(lambda: not gw.app[SESSIONS].live, 15, "session ended")
    camera = await api_camera(gw)
    assert camera["outputs"]["webrtc"]["sessions"] == 0
    assert webrtc_clients(camera) == []


async def test_ten_players_share_one_encode_and_its_payloads() -> None:
    async with (
        gateway(webrtc_toml(sim_camera(fps=FPS, size="320x240"))) as gw,
        aiohttp.ClientSession() as http,
        contextlib.AsyncExitStack() as stack,
    ):
        await gw.live()
        url = f"{gw.base}/whep/cam"
        players: list[Player] = [
            await stack.enter_async_context(whep_player(http, url, keep=False)) for _ in range(10)
        ]
        for player in players:
            await player.wait_pictures(5)
        media = gw.media()
        video = media.renditions.get(h264_key())
        audio = media.renditions.get(audio_key(AudioEncoding.OPUS))
        assert video is not None
        assert audio is not None
        camera = await api_camera(gw)
        prepared_before = camera["outputs"]["webrtc"]["payloads_prepared"]
        frames_before = video.ring.next_seq + audio.ring.next_seq
        counts = [p.picture_count for p in players]
        # Two seconds of the camera, every player receiving all along.
        for player, count in zip(players, counts, strict=True):
            await player.wait_pictures(count + 2 * FPS)
        camera = await api_camera(gw)
        prepared = camera["outputs"]["webrtc"]["payloads_prepared"] - prepared_before
        frames = video.ring.next_seq + audio.ring.next_seq - frames_before
        # Once per frame, not ten times: a frame published just before either count may
        # be prepared just after it (the sessions are a frame or two behind).
        assert frames > 2 * FPS
        assert abs(prepared - frames) <= 0.1 * frames + 5
        started = media.renditions.started
        assert (started[H264_KIND], started[AudioEncoding.OPUS.value]) == (1, 1)
        (h264,) = [e for e in camera["renditions"] if e["kind"] == H264_KIND]
        assert (h264["claims"], h264["consumers"]) == (10, 10)
        assert camera["outputs"]["webrtc"]["sessions"] == 10
        entries = webrtc_clients(camera)
        assert len(entries) == 10
        assert all(e["video"]["frames"] >= 2 * FPS for e in entries)
